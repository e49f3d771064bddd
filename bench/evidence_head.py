"""Does the evidence head help, hurt or cost? `task=criteria` against `task=both` on one configuration, several seeds.

The configuration is the demo's (`demo_job.DEMO_BASE`: the packaged MiniLM, its 4 bottom layers frozen and cached,
learning rate 1e-3, head x20, 128 tokens, length-grouped batches of 16) for `--epochs` epochs on the demo corpus's
split. For every seed both tasks train on the same posts in the same order (the runs alternate, criteria then both,
so a busy machine slows both alike). Printed and written to `--out`:

- post-level validation (cross-fitted) and test macro-F1 of each task: does sharing the encoder with the evidence head
  help, hurt or neither;
- evidence test macro-F1 and recall@1 / @3 of `task=both`, beside the TF-IDF + logistic-regression sentence floor;
- training throughput (posts per second of optimiser-step time, `TrainResult.train_seconds`: forward, backward and
  step, the frozen bottom's one-off pass and validation excluded) with and without the evidence head, paired per seed;
- evidence sentences lost to truncation.

    python bench/evidence_head.py [--seeds 3] [--epochs 4] [--out bench/results/evidence_head.json]

No search runs here: this is one configuration, so the figures say what the head does at the demo's recipe, not at
every point of the space.
"""

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

from dataaug_multi_both.baseline import tfidf_baseline
from dataaug_multi_both.config import config_from_dict
from dataaug_multi_both.core import set_offline, versions
from dataaug_multi_both.demo_job import DEMO_BASE
from dataaug_multi_both.export import seed_stats
from dataaug_multi_both.model import resolve_backbone
from dataaug_multi_both.run import load_splits, run_config
from dataaug_multi_both.sentences import evidence_floor, sentence_labels


def stats(xs):
    """`export.seed_stats` (mean, sample std, min, max: what every ± in the README is) and the per-seed values."""
    xs = [float(x) for x in xs]
    return {**seed_stats(xs), "values": xs}


def cpu_name() -> str:
    """The CPU's model name (the figures are ratios measured on it)."""
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="training seeds per task")
    p.add_argument("--epochs", type=float, default=4, help="epochs of each run (the demo's export trains 4-6)")
    p.add_argument("--backbone", default="minilm", help="minilm (packaged) or tiny (random, for a smoke run)")
    p.add_argument("--out", default="bench/results/evidence_head.json")
    a = p.parse_args()
    set_offline()
    warnings.filterwarnings("ignore")
    splits = load_splits(None, 0)
    bb = resolve_backbone(a.backbone)
    base = {**DEMO_BASE, "epochs": a.epochs, "evals_per_epoch": 1, "objective": "criteria", "data_fraction": 1.0}
    t_start = time.time()
    print(
        f"evidence head: {a.backbone}, demo recipe ({base['freeze_n_layers']} frozen layers, lr {base['learning_rate']:g}, "
        f"seq {base['max_seq_length']}), {a.epochs:g} epochs, {len(splits.train)} training posts, {a.seeds} seeds, cpu {cpu_name()}",
        flush=True,
    )
    # one short untimed run of each task first: the frozen bottom's one-off pass and the process's first-run costs
    for task in ("criteria", "both"):
        run_config(config_from_dict({**base, "task": task, "epochs": 0.05}), splits, bb, predict_test=False)
    runs: dict = {"criteria": [], "both": []}
    for s in range(a.seeds):
        for task in ("criteria", "both"):
            rep, res = run_config(config_from_dict({**base, "task": task, "seed": s}), splits, bb)
            row = {
                "seed": s,
                "val_macro_f1": rep["val_macro_f1"],
                "test_macro_f1": rep["test_macro_f1"],
                "train_seconds": res.train_seconds,
                "samples_seen": res.samples_seen,
                "posts_per_second": res.samples_seen / res.train_seconds,
                "total_seconds": rep["durations"]["total_seconds"],
                "precision": res.precision,
            }
            if task == "both":
                row.update({k: rep[k] for k in rep if "evidence" in k and k.startswith(("val_", "test_"))})
                row["evidence_counts"] = rep.get("evidence_counts")
            runs[task].append(row)
            ev = f" evidence test {row['test_evidence_macro_f1']:.4f} r@3 {row['test_evidence_recall_at_3']:.3f}" if task == "both" else ""
            print(
                f"seed {s} {task:<8} post val {row['val_macro_f1']:.4f} test {row['test_macro_f1']:.4f}{ev}  "
                f"{row['posts_per_second']:.1f} posts/s ({row['train_seconds']:.1f}s of steps, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    sp = splits
    floor_post = tfidf_baseline(
        sp.train.texts, sp.train.labels, sp.val.texts, sp.val.labels, sp.test.texts, sp.test.labels, sp.train.label_names
    )
    floor_ev = evidence_floor(
        sp.train.texts, sentence_labels(sp.train), sp.val.texts, sentence_labels(sp.val), sp.test.texts, sentence_labels(sp.test)
    )
    ratio = [b["posts_per_second"] / c["posts_per_second"] for c, b in zip(runs["criteria"], runs["both"])]
    out = {
        "settings": {
            "backbone": a.backbone,
            "config": {**base, "tasks": ["criteria", "both"]},
            "seeds": list(range(a.seeds)),
            "n_train": len(sp.train),
            "n_val": len(sp.val),
            "n_test": len(sp.test),
            "throughput": "posts per second of optimiser-step time (TrainResult.train_seconds), paired per seed",
        },
        "criteria": {k: stats([r[k] for r in runs["criteria"]]) for k in ("val_macro_f1", "test_macro_f1", "posts_per_second")},
        "both": {
            k: stats([r[k] for r in runs["both"]])
            for k in (
                "val_macro_f1",
                "test_macro_f1",
                "posts_per_second",
                "test_evidence_macro_f1",
                "test_evidence_recall_at_1",
                "test_evidence_recall_at_3",
            )
        },
        "post_test_gain_both_minus_criteria": stats(
            [b["test_macro_f1"] - c["test_macro_f1"] for c, b in zip(runs["criteria"], runs["both"])]
        ),
        "throughput_ratio_both_over_criteria": stats(ratio),
        "floor": {
            "post_val_macro_f1": floor_post["val_macro_f1"],
            "post_test_macro_f1": floor_post["test_macro_f1"],
            **{k: v for k, v in floor_ev.items() if k.startswith("test_")},
        },
        "truncation": runs["both"][0]["evidence_counts"],
        "runs": runs,
        "run": {
            "wall_seconds": round(time.time() - t_start, 1),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_end": os.getloadavg(),
            "versions": versions(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, default=float) + "\n")
    f = lambda d: f"{d['mean']:.3f} ± {d['std']:.3f}"  # noqa: E731
    print(f"\n{'':<10} {'post val':>15} {'post test':>15} {'evidence test':>15} {'recall@1':>9} {'recall@3':>9} {'posts/s':>8}")
    c, b, fl = out["criteria"], out["both"], out["floor"]
    print(
        f"{'criteria':<10} {f(c['val_macro_f1']):>15} {f(c['test_macro_f1']):>15} {'-':>15} {'-':>9} {'-':>9} {c['posts_per_second']['mean']:8.1f}"
    )
    print(
        f"{'both':<10} {f(b['val_macro_f1']):>15} {f(b['test_macro_f1']):>15} {f(b['test_evidence_macro_f1']):>15} "
        f"{b['test_evidence_recall_at_1']['mean']:9.3f} {b['test_evidence_recall_at_3']['mean']:9.3f} {b['posts_per_second']['mean']:8.1f}"
    )
    print(
        f"{'TF-IDF':<10} {fl['post_val_macro_f1']:15.3f} {fl['post_test_macro_f1']:15.3f} {fl['test_evidence_macro_f1']:15.3f} "
        f"{fl['test_evidence_recall_at_1']:9.3f} {fl['test_evidence_recall_at_3']:9.3f}"
    )
    g = out["post_test_gain_both_minus_criteria"]
    r = out["throughput_ratio_both_over_criteria"]
    print(
        f"post test macro-F1, both - criteria, per seed: {', '.join(f'{x:+.3f}' for x in g['values'])}\n"
        f"throughput both / criteria per seed: {', '.join(f'{x:.3f}' for x in r['values'])} (goal >= 0.90: the head costs <= 10 %)\n"
        f"wall {out['run']['wall_seconds']:.0f}s; written {a.out}"
    )


if __name__ == "__main__":
    main()
