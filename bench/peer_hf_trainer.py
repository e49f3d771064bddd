"""The project's trainer (`run.run_config`, what `cli.train` runs) side by side with Hugging Face's `transformers.Trainer`.

Same demo data and split, same model (the packaged MiniLM cut to its first `--layers` layers, mean pooling, the same
MLP head), same sequence length, batch, epochs, learning rate and precision (fp32), dynamic padding in both. The runs
alternate (project, HF, project, HF, ...) so that a busy machine slows both alike. Both evaluate on validation once per
epoch (the project's trainer scores every epoch to prune and to tune thresholds; the peer with `eval_strategy="epoch"`,
as a user who picks a checkpoint or tunes thresholds runs it), then predict test. Printed per run: wall seconds
(model build to test predictions) and test macro-F1; then the wall-time ratio project / HF.

Two project variants: `equal` matches the peer knob for knob (post head only, one learning rate, plain BCE, threshold 0.5 on test,
no freezing, random batches); `defaults` uses the project's defaults (head learning rate x20, weighted BCE, thresholds tuned on
validation, the evidence head, length-grouped batches). The peer always uses plain BCE, one learning rate and threshold 0.5. With `--grouped` a second knob-for-knob
pair runs with length-grouped batches on both sides (the project's `group_by_length`, `Trainer`'s `train_sampling_strategy="group_by_length"`,
both sorting posts by length inside chunks of 50 batches).

    python bench/peer_hf_trainer.py [--layers 2] [--epochs 1] [--seq 128] [--batch 16] [--rounds 2]
"""

import argparse
import dataclasses
import os
import tempfile
import time
import warnings

import numpy as np
import torch

from dataaug_multi_both.config import config_from_dict
from dataaug_multi_both.core import set_offline
from dataaug_multi_both.model import build_model, load_tokenizer, resolve_backbone
from dataaug_multi_both.run import load_splits, run_config
from dataaug_multi_both.thresholds import classification_metrics
from dataaug_multi_both.trainer import encode_texts


def project(cfg, splits, tuned: bool):
    """Wall seconds and test macro-F1 of the project's run (thresholds tuned on validation, or 0.5)."""
    t = time.perf_counter()
    rep, res = run_config(cfg, splits, resolve_backbone("minilm"))
    wall = time.perf_counter() - t
    if tuned:
        return wall, rep["test_macro_f1"]
    pred = (res.test_probs >= 0.5).astype(int)
    return wall, classification_metrics(splits.test.labels, pred, splits.train.label_names)["macro_f1"]


class Wrapped(torch.nn.Module):
    """The same DSMClassifier with the loss inside forward, as `Trainer` expects."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, labels=None):
        logits = self.m(input_ids, attention_mask)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
        return out


def peer(cfg, splits, grouped: bool = False):
    """Wall seconds and test macro-F1 of `transformers.Trainer` on the same model, data and knobs."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    t = time.perf_counter()
    tok = load_tokenizer("minilm")
    model = Wrapped(build_model(cfg, resolve_backbone("minilm"), 9))

    def rows(c):
        ids = encode_texts(tok, c.texts, cfg.max_seq_length)
        return [{"input_ids": x, "attention_mask": [1] * len(x), "labels": y.tolist()} for x, y in zip(ids, c.labels)]

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=int(cfg.warmup_ratio * np.ceil(len(splits.train) / cfg.batch_size) * cfg.epochs),
        lr_scheduler_type="linear",
        max_grad_norm=cfg.gradient_clip_val,
        eval_strategy="epoch",  # one validation pass per epoch, as the project's run (evals_per_epoch=1)
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        bf16=False,
        fp16=False,
        train_sampling_strategy="group_by_length" if grouped else "random",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows(splits.train),
        eval_dataset=rows(splits.val),
        data_collator=DataCollatorWithPadding(tok, pad_to_multiple_of=cfg.pad_to_multiple_of),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
        logits = trainer.predict(rows(splits.test)).predictions
    wall = time.perf_counter() - t
    pred = (1 / (1 + np.exp(-logits)) >= 0.5).astype(int)
    return wall, classification_metrics(splits.test.labels, pred, splits.train.label_names)["macro_f1"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--grouped", action="store_true", help="also run both sides with length-grouped batches")
    a = p.parse_args()
    try:
        import accelerate  # noqa: F401  -- transformers.Trainer needs it on PyTorch
    except ImportError:
        raise SystemExit(
            "error: transformers.Trainer needs accelerate>=1.1.0, which this environment lacks: "
            "pip install 'accelerate>=1.1.0' (`make install` pins it with the dev tools)"
        ) from None
    set_offline()
    splits = load_splits(None, 0)
    knobs = dict(
        max_layers=a.layers,
        epochs=a.epochs,
        max_seq_length=a.seq,
        batch_size=a.batch,
        learning_rate=a.lr,
        precision="fp32",
        evals_per_epoch=1,
        seed=42,
    )
    # the peer has no evidence head and batches at random (its default sampler)
    equal = config_from_dict({**knobs, "head_lr_scale": 1.0, "loss_type": "bce", "task": "criteria", "group_by_length": False})
    defaults = config_from_dict(knobs)
    equal_grouped = config_from_dict({**dataclasses.asdict(equal), "group_by_length": True})
    print(
        f"{a.layers}-layer MiniLM, {a.epochs:g} epoch(s), seq {a.seq}, batch {a.batch}, lr {a.lr:g}, fp32, "
        f"{len(splits.train)} training posts, {torch.get_num_threads()} threads"
    )
    # one short untimed run of each first: a process's first training run pays one-time costs (kernel set-up, file
    # reads) that fell on whichever side ran first (round 1 measured 1.52 where round 2 measured 0.92)
    warm = config_from_dict({**dataclasses.asdict(equal), "epochs": 0.05})
    project(warm, splits, tuned=False)
    peer(warm, splits)
    runs = [
        ("project (equal)", lambda: project(equal, splits, tuned=False)),
        ("HF Trainer", lambda: peer(equal, splits)),
        ("project (defaults)", lambda: project(defaults, splits, tuned=True)),
    ]
    if a.grouped:
        runs += [
            ("project (grouped)", lambda: project(equal_grouped, splits, tuned=False)),
            ("HF Trainer (grouped)", lambda: peer(equal, splits, grouped=True)),
        ]
    walls: dict = {name: [] for name, _ in runs}
    f1s: dict = {k: [] for k in walls}
    for r in range(a.rounds):
        for name, fn in runs:
            w, f = fn()
            walls[name].append(w)
            f1s[name].append(f)
            print(f"round {r + 1} {name:<20} {w:6.1f}s  test macro-F1 {f:.4f}  (load {os.getloadavg()[0]:.1f})", flush=True)
    pairs = [("project (equal)", "HF Trainer", "at equal configuration")]
    if a.grouped:
        pairs.append(("project (grouped)", "HF Trainer (grouped)", "both length-grouped"))
    print()
    for mine, theirs, what in pairs:
        ratios = [p / h for p, h in zip(walls[mine], walls[theirs])]
        print(
            f"wall ratio project / HF Trainer {what}, per round: {', '.join(f'{x:.2f}' for x in ratios)} "
            f"(median {np.median(ratios):.2f}; sums {sum(walls[mine]):.1f}s / {sum(walls[theirs]):.1f}s; goal <= 1.0)"
        )
    for k in walls:
        print(f"{k:<20} median wall {np.median(walls[k]):6.1f}s  test macro-F1 mean {np.mean(f1s[k]):.4f}")


if __name__ == "__main__":
    main()
