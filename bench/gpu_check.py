"""One prepared check for a GPU machine: the AMP probe, what 'auto' resolves to, and fp32 / bf16 / fp16 training steps.

    python bench/gpu_check.py [--out DIR] [--batch 64] [--seq 256] [--steps 30]

Builds a small BERT (MiniLM-L6 shape, randomly initialised from a BertConfig: nothing is downloaded), then for each
precision the GPU offers runs warm-up steps and timed forward/backward/AdamW steps through the project's own
`amp.autocast` and `amp.make_grad_scaler`, and prints samples/s, peak memory and the final loss. Exit code 0 when
every loss is finite and every precision behaved as resolved; 1 otherwise. On a machine without CUDA it prints
"no CUDA" and exits 0 (or, with --allow-cpu, runs a tiny fp32/bf16 version on the CPU to check the script itself).
With --out DIR it also writes DIR/gpu_check.json.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

from dataaug_multi_both import amp
from dataaug_multi_both.core import atomic_write_json, set_offline

NUM_LABELS = 9


def build(seed: int, small: bool):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=128 if small else 384,
        num_hidden_layers=2 if small else 6,
        num_attention_heads=4 if small else 12,
        intermediate_size=512 if small else 1536,
        max_position_embeddings=512,
    )
    enc = BertModel(cfg, add_pooling_layer=False)
    head = torch.nn.Linear(cfg.hidden_size, NUM_LABELS)
    return torch.nn.ModuleDict({"enc": enc, "head": head})


def run_mode(name: str, device: str, args, small: bool) -> dict:
    import torch

    prec = amp.resolve_precision(name, device)
    if prec.name != name:
        return {
            "requested": name,
            "resolved": prec.name,
            "skipped": True,
            "reason": prec.reason,
        }
    model = build(args.seed, small).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    scaler = amp.make_grad_scaler(prec)
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=g).to(device)
    mask = torch.ones_like(ids)
    mask[: args.batch // 2, args.seq // 2 :] = 0  # some padding, as real batches have
    y = (torch.rand(args.batch, NUM_LABELS, generator=g) < 0.2).float().to(device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    logits_dtype, losses = None, []

    def step():
        nonlocal logits_dtype
        with amp.autocast(prec):
            h = model["enc"](input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            logits = model["head"]((h * m).sum(1) / m.sum(1).clamp(min=1))
            logits_dtype = logits.dtype
            loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        return loss.detach()

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(args.steps):
        losses.append(step())
    sync()
    dt = time.perf_counter() - t
    losses = [float(v) for v in losses]
    expect = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        name
    ]
    out = {
        "requested": name,
        "resolved": prec.name,
        "reason": prec.reason,
        "samples_per_s": round(args.batch * args.steps / dt, 1),
        "step_ms": round(dt / args.steps * 1e3, 2),
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "loss_finite": all(math.isfinite(v) for v in losses),
        "logits_dtype": str(logits_dtype).replace("torch.", ""),
        "dtype_ok": logits_dtype == expect,
        "grad_scaler": scaler.is_enabled(),
        "grad_scale": float(scaler.get_scale()) if scaler.is_enabled() else None,
    }
    if device.startswith("cuda"):
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="directory for gpu_check.json")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=30, help="timed steps per precision")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--allow-cpu",
        action="store_true",
        help="without CUDA, run a tiny fp32/bf16 check on the CPU",
    )
    args = p.parse_args(argv)
    set_offline()
    import torch

    t = time.perf_counter()
    info = amp.probe(benchmark=not torch.cuda.is_available())
    print(amp.capability_table(info))
    print(f"(probe took {time.perf_counter() - t:.2f}s)")
    report = {"probe": info, "args": vars(args)}
    if not info["cuda_available"]:
        print(
            f"\nno CUDA: torch {info['torch']} sees no GPU, so there is nothing to check on the GPU here."
        )
        if not args.allow_cpu:
            return 0
        device, modes, small = "cpu", ("fp32", "bf16"), True
        args.batch, args.seq, args.steps, args.warmup = (
            min(args.batch, 8),
            min(args.seq, 32),
            min(args.steps, 3),
            1,
        )
        print("--allow-cpu: checking the script itself with a tiny model on the CPU\n")
    else:
        device, modes, small = "cuda", ("fp32", "bf16", "fp16"), False
        print(
            f"\nTF32 matmul allowed: {torch.backends.cuda.matmul.allow_tf32} (fp32 numbers below are "
            f"{'TF32' if torch.backends.cuda.matmul.allow_tf32 else 'true fp32'})"
        )
    auto = amp.resolve_precision("auto", device)
    print(f"auto on {device}: {auto.name} ({auto.reason})")
    report["auto"] = auto.as_dict()
    ok = (
        auto.name == ("bf16" if info["bf16_supported"] else "fp16")
        if device == "cuda"
        else True
    )
    report["modes"] = {}
    for name in modes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = run_mode(name, device, args, small)
        if device == "cuda":
            torch.cuda.empty_cache()  # the mode's model and optimiser went with run_mode's frame
        report["modes"][name] = r
        if r.get("skipped"):
            print(f"{name:>5}: skipped ({r['reason']})")
            ok &= not (
                device == "cuda" and name in ("fp32", "fp16")
            )  # these always exist on a GPU
            continue
        good = (
            r["loss_finite"]
            and r["dtype_ok"]
            and r["grad_scaler"] == (name == "fp16" and device == "cuda")
        )
        ok &= good
        print(
            f"{name:>5}: {r['samples_per_s']:>9.1f} samples/s  {r['step_ms']:>8.2f} ms/step  loss {r['first_loss']:.4f} -> "
            f"{r['last_loss']:.4f}  logits {r['logits_dtype']}  scaler {'on' if r['grad_scaler'] else 'off'}"
            + (f"  peak {r['peak_memory_gib']} GiB" if "peak_memory_gib" in r else "")
            + ("" if good else "  <-- FAILED")
        )
    base = report["modes"]["fp32"].get("samples_per_s")
    for name in modes[1:]:
        r = report["modes"][name]
        if base and r.get("samples_per_s"):
            r["speedup_vs_fp32"] = round(r["samples_per_s"] / base, 2)
            print(f"{name} speed-up over fp32: {r['speedup_vs_fp32']}x")
    report["ok"] = bool(ok)
    if args.out:
        path = atomic_write_json(Path(args.out) / "gpu_check.json", report)
        print(f"wrote {path}")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
