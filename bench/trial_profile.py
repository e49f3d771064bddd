"""Where a search trial's time goes: one fresh process runs Stage 1 trials and then a Stage 2 trial of the demo.

Each trial's wall time is split into process start and imports (first trial only), model load (reading and copying
the pretrained encoder), tokenisation, the frozen-bottom cache, training steps (forward, backward, optimiser step),
validation passes, test predictions, threshold tuning (cross-fitted scoring and the final thresholds), the
checkpoint, and storage writes (Optuna reports/attributes and the evaluation report); "other" is what is left
(building the optimiser, Optuna's sampler and pruner, ...). Training steps are the trainer's wall time less the
parts timed inside it (model load, tokenisation, the cache, predictions), so a pruned trial is counted too. It prints the share of training steps (goal: >= 85 %).

    python bench/trial_profile.py [--recipe demo|old] [--stage1-trials 3] [--stage1-epochs 1] [--stage2-epochs 2]

With `--recipe demo` Stage 1 holds the demo's space and starts with its default and priors (`demo_job.DemoStage`).
`--recipe old` profiles the demo as it was before issue 10 (MiniLM cut to 4 layers, 96 tokens, half the posts,
4 validation passes per epoch, nothing frozen); `demo` the budgeted demo's configuration (`demo_job.DEMO_BASE`).
"""

import argparse
import collections
import contextlib
import os
import sys
import tempfile
import time

T_START = float(os.environ.get("PROFILE_T0", time.time()))  # set by the parent: includes interpreter start
import optuna  # noqa: E402

from dataaug_multi_both import hpo, model, run, trainer  # noqa: E402
from dataaug_multi_both.core import set_offline  # noqa: E402

T_IMPORTED = time.time()
SPENT: collections.Counter = collections.Counter()


def timed(owner, name, bucket):
    """Wrap owner.name so its wall time is added to SPENT[bucket] (outermost call only)."""
    fn = getattr(owner, name)
    depth = [0]

    def wrapper(*a, **k):
        depth[0] += 1
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                SPENT[bucket] += time.perf_counter() - t

    setattr(owner, name, wrapper)


def instrument():
    """Time the parts of a trial where they happen, without changing what they do."""
    timed(trainer, "build_model", "model load")
    timed(trainer, "encode_texts", "tokenisation")
    timed(trainer, "frozen_features", "frozen-bottom cache")
    timed(trainer, "load_tokenizer", "model load")
    timed(run, "crossfit_macro_f1", "threshold tuning")
    timed(run, "tune_thresholds", "threshold tuning")
    timed(run, "classification_metrics", "threshold tuning")
    timed(model, "save_classifier", "checkpoint")
    timed(hpo, "atomic_write_json", "storage writes")
    timed(hpo, "prune_checkpoints", "checkpoint")
    for m in ("report", "set_user_attr", "should_prune"):
        timed(optuna.trial.Trial, m, "storage writes")
    orig_train = trainer.train

    def train(*a, **k):  # training steps = the trainer's wall minus the parts timed inside it (a pruned trial too)
        before = {b: SPENT[b] for b in INSIDE_TRAIN}
        t = time.perf_counter()
        try:
            return orig_train(*a, **k)
        finally:
            inside = sum(SPENT[b] - before[b] for b in INSIDE_TRAIN)
            SPENT["training steps"] += time.perf_counter() - t - inside

    run.train = train
    timed(trainer, "predict_probs", "validation passes (and the test pass)")


INSIDE_TRAIN = ("model load", "tokenisation", "frozen-bottom cache", "validation passes (and the test pass)")
ORDER = (
    "process start + imports",
    "model load",
    "tokenisation",
    "frozen-bottom cache",
    "training steps",
    "validation passes (and the test pass)",
    "threshold tuning",
    "checkpoint",
    "storage writes",
    "other",
)


def show(title, wall, spent):
    """Print one trial's breakdown and return the training share."""
    parts = dict(spent)
    parts["other"] = max(0.0, wall - sum(parts.values()))
    print(f"\n{title}: {wall:.1f}s wall (load {os.getloadavg()[0]:.1f})")
    for k in ORDER:
        if parts.get(k):
            print(f"  {k:<38} {parts[k]:7.1f}s  {parts[k] / wall:6.1%}")
    share = parts.get("training steps", 0.0) / wall
    print(f"  training steps share: {share:.1%} (goal >= 85%)", flush=True)
    return share


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=("demo", "old"), default="demo")
    p.add_argument("--stage1-trials", type=int, default=3)
    p.add_argument("--stage1-epochs", type=float, default=1.0)
    p.add_argument("--stage2-epochs", type=float, default=2.0)
    a = p.parse_args()
    set_offline()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    instrument()
    from dataaug_multi_both.demo_job import DEMO_BASE

    if a.recipe == "demo":
        base, seqs = {**DEMO_BASE, "data_fraction": 1.0}, (DEMO_BASE["max_seq_length"],)
        e1, e2 = {"evals_per_epoch": 2}, {"evals_per_epoch": 1}
        s1 = {"min_resource": 1, "reduction_factor": 2}
    else:
        base, seqs = {"max_layers": 4}, (96,)
        e1, e2 = {"evals_per_epoch": 4}, {"evals_per_epoch": 2}
        s1 = {"min_resource": 4, "reduction_factor": 2}
    d = tempfile.mkdtemp()
    common = dict(storage=f"sqlite:///{d}/o.db", experiments_dir=d, max_seq_lengths=seqs, backbone="minilm")
    first, shares = True, []
    for stage in (1, 2):
        n = a.stage1_trials if stage == 1 else 1
        for i in range(n):
            extra = (
                {**s1, "base": {**base, "epochs": a.stage1_epochs, **e1}}
                if stage == 1
                else {"top_k": 6, "enqueue": 1, "base": {**base, "epochs": a.stage2_epochs, **e2}}
            )
            job = hpo.SearchJob(stage=stage, n_trials=i + 1, **common, **extra)
            if a.recipe == "demo" and stage == 1 and i == 0:  # the demo's space, default and priors, as run_demo seeds them
                from dataaug_multi_both.demo_job import DemoStage

                hpo.prepare_study(job, DemoStage())
            SPENT.clear()
            t = time.time()
            if first:
                SPENT["process start + imports"] = T_IMPORTED - T_START
                t = T_IMPORTED
            with contextlib.redirect_stderr(sys.stderr):
                hpo.run_stage(job)
            wall = time.time() - t + (T_IMPORTED - T_START if first else 0.0)
            shares.append(
                show(f"Stage {stage} trial {i} ({'first in its process' if first else 'warm process'}, recipe {a.recipe})", wall, SPENT)
            )
            first = False
    print(f"\ntraining-steps shares: {', '.join(f'{s:.1%}' for s in shares)}")


if __name__ == "__main__":
    main()
