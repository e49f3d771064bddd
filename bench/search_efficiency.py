"""Does the two-stage search earn its keep? A search-efficiency study (issue 11).

Methods, each given the same compute budget in training samples processed (wall time reported beside it):

1. two_stage: this project's Stage 1 (the space, low fidelity, successive halving; it starts from the default
   configuration and, in the demo space, DEMO_PRIORS) then Stage 2 (space narrowed from Stage 1 by
   `narrow.narrow_space`, full fidelity, median pruner), studies made by `hpo.prepare_study`, trials run by
   `hpo.Objective`; the budget is split between the stages (`--stage1-share`). two_stage_half: the same with half the
   budget (the goal's "reaches TPE's final test macro-F1 with <= 0.5x its compute", measured directly).
2. tpe: single-stage Optuna TPE over the same space, the library's median pruner, full data and epochs.
   tpe_seeded: the same, its first trials the configurations two-stage's Stage 1 starts from: what the two-stage
   structure adds beyond its seeds.
3. random: random search over the same space, no pruning, full data and epochs.
4. hf_peer: `transformers.Trainer.hyperparameter_search(backend="optuna")` with its DEFAULT space (learning rate,
   epochs 1-5, seed, batch size) and default settings (evaluation at the end only, so nothing is pruned), on the same
   model as the base configuration (its frozen layers frozen) with the project's head (plain BCE); labelled as the
   HF peer with its own space.
5. default: the default configuration trained once per seed; and the TF-IDF floor (`baseline.tfidf_baseline`).

Protocol: every method x seed has its own temporary SQLite storage; seed s is the sampler's seed and the search's
training seed; the data split is the same for all (`run.load_splits(None, 0)`, the demo corpus, 700/150/150 posts).
Each method picks its configuration on validation only (the cross-fitted validation macro-F1 over posts, the
project's objective with `objective='criteria'`); the picked configuration is then re-trained with a fresh seed and
scored on test by `export.export_best` (the HF peer's pick: re-trained by Trainer, scored by `run.evaluate`, the same
thresholds-on-validation rule). A trial is started only if its full cost fits what is left of the budget, so no method
spends more than the budget.

Samples: complete trials report `TrainResult.samples_seen` (evaluation_report.json); a pruned trial's count is its
last validation pass's epoch x the posts it trained on (exact up to a partial last batch); the HF peer counts optimiser
steps x batch.

    python bench/search_efficiency.py            # full study (3 seeds; 43.6 min on 2 cores of an AMD EPYC with AVX512-bf16)
    python bench/search_efficiency.py --quick    # CI-sized check of the same code path (tiny encoder, ~1 min)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from dataaug_multi_both.baseline import tfidf_baseline
from dataaug_multi_both.config import config_from_dict
from dataaug_multi_both.core import UserError, set_offline
from dataaug_multi_both.export import best_trial, export_best, seed_stats
from dataaug_multi_both.demo_job import DEMO_BASE, DemoStage, demo_space
from dataaug_multi_both.hpo import STAGES, Objective, SearchJob, prepare_study
from dataaug_multi_both.model import build_model, classify_from, encoder_depth, frozen_depth, load_tokenizer, resolve_backbone
from dataaug_multi_both.narrow import load_report, save_space
from dataaug_multi_both.run import evaluate, load_splits, run_config
from dataaug_multi_both.space import CatKnob, base_space, params_to_config
from dataaug_multi_both.thresholds import crossfit_macro_f1
from dataaug_multi_both.trainer import frozen_features

METHODS = ("two_stage", "two_stage_half", "tpe", "tpe_seeded", "random", "hf_peer", "default")
LABELS = {
    "two_stage": "two-stage (this project)",
    "two_stage_half": "two-stage (this project) with half the budget",
    "tpe": "single-stage TPE + median pruner",
    "tpe_seeded": "single-stage TPE + median pruner, starting from two-stage's seed configurations",
    "random": "random search, no pruning",
    "hf_peer": "HF Trainer.hyperparameter_search (its own default space)",
    "default": "default configuration",
    "tfidf": "TF-IDF + logistic regression floor",
}


class Ctx:
    """What every method shares: data, backbone, base configuration, budget."""

    def __init__(self, a):
        self.a = a
        self.splits = load_splits(None, 0)
        self.backbone = a.backbone
        self.bb = resolve_backbone(a.backbone)
        self.n_train = len(self.splits.train)
        self.base = {**(DEMO_BASE if a.space == "demo" else {})}
        self.base.update(
            max_layers=a.layers,
            max_seq_length=a.seq,
            task="criteria",
            objective="criteria",
            epochs=a.full_epochs,
            data_fraction=1.0,
            evals_per_epoch=a.evals_per_epoch,
            precision="auto",
        )
        self.full_cost = a.full_epochs * self.n_train  # samples of one unpruned full-fidelity trial
        self.budget = int(round(a.budget * self.full_cost))
        full = base_space(2, max_seq_lengths=(a.seq,), tasks=("criteria",))  # the full space, both stages' knobs
        # the demo's space (what a few minutes can learn in), with Stage 2's thresholds knob: the same for every Optuna method
        self.space = demo_space().replace(CatKnob("max_seq_length", (a.seq,))).replace(full["task"]) if a.space == "demo" else full
        if a.space == "demo":
            self.space = type(self.space)(list(self.space) + [full["decision_thresholds_per_class"]])
        self.root = Path(tempfile.mkdtemp(prefix="search_eff_"))

    def job(self, name, seed, stage=1, **kw):
        d = self.root / f"{name}_s{seed}"
        d.mkdir(parents=True, exist_ok=True)
        return SearchJob(
            stage=stage,
            storage=f"sqlite:///{d}/optuna.db",
            backbone=self.backbone,
            experiments_dir=str(d / "exp"),
            max_seq_lengths=(self.a.seq,),
            sampler_seed=seed,
            **kw,
        )


def trial_samples(t, job, n_train) -> int:
    """Training samples a finished trial processed (see the module docstring)."""
    rep = Path(job.experiments_dir) / job.study_name / f"trial_{t.number}" / "evaluation_report.json"
    if t.state == TrialState.COMPLETE and rep.is_file():
        return int(json.loads(rep.read_text())["samples_seen"])
    rec = t.user_attrs.get("record") or {}
    cfg = rec.get("config") or {}
    used = max(1, int(round(cfg.get("data_fraction", 1.0) * n_train)))
    at = t.user_attrs.get("pruned_at")
    if at:
        return int(round(at["epoch"] * used))
    return 0  # failed before training


def run_trials(ctx, job, study, space, seed, stage_budget, log, stage_name, ledger, spent0):
    """Run `job`'s trials one by one while an unpruned trial still fits `stage_budget`; append to `ledger`."""
    obj = Objective(job, space, seed)
    cost = job.base["epochs"] * job.base["data_fraction"] * ctx.n_train
    spent = 0
    while spent + cost <= stage_budget + 1e-9:
        t0 = time.time()
        obj.last_trial_id = None
        study.optimize(obj, n_trials=1, catch=(Exception,))
        if obj.last_trial_id is None:
            break
        t = study._storage.get_trial(obj.last_trial_id)
        n = trial_samples(t, job, ctx.n_train)
        spent += n
        ok = t.state == TrialState.COMPLETE and t.value is not None
        ledger.append(
            {
                "stage": stage_name,
                "trial": t.number,
                "state": t.state.name,
                "samples": n,
                "cum_samples": spent0 + spent,
                "seconds": round(time.time() - t0, 1),
                "value": t.value if ok else None,
                "full_fidelity": job.base["epochs"] == ctx.base["epochs"] and job.base["data_fraction"] == 1.0,
            }
        )
        log(
            f"    {stage_name} #{t.number} {t.state.name.lower():8s} {n:5d} samples "
            f"{'' if not ok else f'val {t.value:.4f}'} ({time.time() - t0:.0f}s)"
        )
        if t.state == TrialState.FAIL and "error" in t.user_attrs:
            log(f"      error: {t.user_attrs['error']}")
    return spent


def median_pruner(ctx):
    """Stage 2's median rule as the library sets it (`hpo.NarrowStage.pruner`): 5 startup trials, one epoch of warm-up.
    The same pruner for two-stage's Stage 2 and single-stage TPE."""
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=ctx.a.evals_per_epoch)


def new_study(job, sampler, pruner, space):
    """A plain Optuna study holding `space` and the objective, as `prepare_study` stores them."""
    study = optuna.create_study(storage=job.storage, study_name=job.study_name, direction="maximize", sampler=sampler, pruner=pruner)
    save_space(study, space)
    study.set_user_attr("objective", "criteria")
    study.set_user_attr("stage", job.stage)
    return study


_RETRAINED: dict = {}  # (the pick's whole stored configuration, re-train seed) -> what export_pick measured


def export_pick(ctx, job, seed, log):
    """Re-train the study's best trial with a fresh seed and score test, as `export` does. Two methods that pick the same
    configuration in the same seed (TPE and random search draw the same configurations during TPE's random start-up)
    share one re-training: same configuration, data and seed give the same model on the CPU."""
    _, best = best_trial(job.storage, job.study_name)
    cfg = (best.user_attrs.get("record") or {}).get("config")
    key = (json.dumps(cfg, sort_keys=True, default=str), 1000 + seed) if cfg else None
    if key in _RETRAINED:
        hit = {**_RETRAINED[key], "trial": best.number, "search_val": best.value, "retrain_shared": True}
        log(f"    export: trial {best.number} is a configuration already re-trained with seed {1000 + seed}: test {hit['test']:.4f} (shared)")
        return hit
    ex = export_best(
        job.storage,
        job.study_name,
        seeds=1,
        base_seed=1000 + seed,
        experiments_dir=job.experiments_dir,
        out_dir=Path(job.experiments_dir) / job.study_name / "export",
    )
    r = ex["per_seed"][0]
    log(
        f"    export: trial {ex['trial']} re-trained: val {r.get('val_macro_f1', float('nan')):.4f} test {r.get('test_macro_f1', float('nan')):.4f}"
    )
    out = {
        "trial": ex["trial"],
        "search_val": ex["search_value"],
        "retrain_val": r.get("val_macro_f1"),
        "test": r.get("test_macro_f1"),
        "params": ex["params"],
        "retrain_seconds": r.get("seconds"),
    }
    if key is not None:
        _RETRAINED[key] = out
    return out


# ---------------------------------------------------------------------------------------------- the methods


def m_two_stage(ctx, seed, log, budget_share=1.0, name="two_stage"):
    a = ctx.a
    budget = budget_share * ctx.budget
    b1 = a.stage1_share * budget
    j1 = ctx.job(
        name,
        seed,
        stage=1,
        study_name="stage1_broad",
        n_trials=10_000,
        min_resource=1,
        reduction_factor=a.reduction_factor,
        base={
            **ctx.base,
            "seed": seed,
            "epochs": a.full_epochs * a.s1_epochs,
            "data_fraction": a.s1_fraction,
            "evals_per_epoch": max(1, round(a.s1_evals / (a.full_epochs * a.s1_epochs))),
        },
    )
    # the full space with the default configuration enqueued first; the demo space adds DEMO_PRIORS after it
    study1, space1 = prepare_study(j1, DemoStage() if a.space == "demo" else None)
    study1 = optuna.load_study(
        study_name=j1.study_name,
        storage=j1.storage,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=STAGES[1].pruner(j1),
    )
    ledger: list = []
    s1 = run_trials(ctx, j1, study1, space1, seed, b1, log, "stage1", ledger, 0)
    j2 = dataclasses.replace(
        j1,
        stage=2,
        study_name="stage2_exploit",
        stage1_study="stage1_broad",
        top_k=a.top_k,
        enqueue=a.enqueue,
        base={**ctx.base, "seed": seed},
    )
    try:
        study2, space2 = prepare_study(j2)  # narrowed from Stage 1, its best configurations enqueued
    except UserError as e:  # too small a budget for Stage 1 to narrow from: recorded, no pick
        log(f"    stage2 not started: {e}")
        return ledger, j2, {"stage1_samples": s1, "stage2_error": str(e), "fidelity_pairs": []}
    study2 = optuna.load_study(
        study_name=j2.study_name,
        storage=j2.storage,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=median_pruner(ctx),
    )
    run_trials(ctx, j2, study2, space2, seed, budget - s1, log, "stage2", ledger, s1)
    report = load_report(study2) or {}
    shares = {k: v["share_kept"] for k, v in report.get("knobs", {}).items()}
    pairs = []
    for t in study2.get_trials(deepcopy=False):
        if "stage1_trial" in t.user_attrs and t.state == TrialState.COMPLETE and t.value is not None:
            pairs.append({"stage1_trial": t.user_attrs["stage1_trial"], "stage1": t.user_attrs["stage1_value"], "stage2": t.value})
    extra = {
        "volume_kept": float(np.prod(list(shares.values()))) if shares else None,
        "share_kept": shares,
        "ranking": report.get("ranking", {}).get("text"),
        "fidelity_pairs": pairs,
        "stage1_samples": s1,
    }
    return ledger, j2, extra


def m_two_stage_half(ctx, seed, log):
    return m_two_stage(ctx, seed, log, budget_share=0.5, name="two_stage_half")


def m_tpe(ctx, seed, log):
    j = ctx.job("tpe", seed, stage=2, study_name="tpe", n_trials=10_000, base={**ctx.base, "seed": seed})
    study = new_study(j, optuna.samplers.TPESampler(seed=seed), median_pruner(ctx), ctx.space)
    ledger: list = []
    run_trials(ctx, j, study, ctx.space, seed, ctx.budget, log, "tpe", ledger, 0)
    return ledger, j, {}


def m_tpe_seeded(ctx, seed, log):
    """TPE whose first trials are the configurations two-stage's Stage 1 starts from (the default, and the demo's priors):
    what the two-stage structure adds beyond those seeds."""
    j = ctx.job("tpe_seeded", seed, stage=2, study_name="tpe_seeded", n_trials=10_000, base={**ctx.base, "seed": seed})
    study = new_study(j, optuna.samplers.TPESampler(seed=seed), median_pruner(ctx), ctx.space)
    seeds = (DemoStage() if ctx.a.space == "demo" else STAGES[1]).seed_trials(j, ctx.space)
    for t in seeds:
        study.enqueue_trial(t["params"], user_attrs=t["user_attrs"])
    ledger: list = []
    run_trials(ctx, j, study, ctx.space, seed, ctx.budget, log, "tpe_seeded", ledger, 0)
    return ledger, j, {}


def m_random(ctx, seed, log):
    j = ctx.job("random", seed, stage=2, study_name="random", n_trials=10_000, base={**ctx.base, "seed": seed})
    study = new_study(j, optuna.samplers.RandomSampler(seed=seed), optuna.pruners.NopPruner(), ctx.space)
    ledger: list = []
    run_trials(ctx, j, study, ctx.space, seed, ctx.budget, log, "random", ledger, 0)
    return ledger, j, {}


class CachedBottom(torch.nn.Module):
    """The classifier with plain BCE inside forward (as the peer bench's `Wrapped`), its frozen bottom's output served
    from the project's per-process cache (`trainer.frozen_features`, the same cache and key the project's trials use).
    The arithmetic is the same model's with the frozen layers run without dropout, as the project's trainer runs them;
    it changes the HF peer's wall time, not its samples, its search or its scores' meaning."""

    def __init__(self, m, key, pad_id):
        super().__init__()
        self.m, self.key, self.pad_id = m, key, pad_id

    def forward(self, input_ids, attention_mask, labels=None):
        n = attention_mask.sum(1).tolist()  # right padding (DataCollatorWithPadding's default)
        ids = [row[:k].tolist() for row, k in zip(input_ids, n)]
        ff = frozen_features(self.m, ids, self.pad_id, self.key, input_ids.device.type)
        logits = classify_from(self.m, ff.collate(np.arange(len(ids)), input_ids.shape[1]).to(input_ids.device), attention_mask, ff.start)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
        return out


def _hf_parts(ctx):
    from transformers import DataCollatorWithPadding

    from dataaug_multi_both.trainer import encode_texts

    cfg = config_from_dict(ctx.base)
    tok = load_tokenizer(ctx.bb)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peer_hf_trainer import Wrapped  # the peer bench's wrapper: the classifier with plain BCE inside forward

    def rows(c):
        ids = encode_texts(tok, c.texts, cfg.max_seq_length)
        return [{"input_ids": x, "attention_mask": [1] * len(x), "labels": [float(v) for v in y]} for x, y in zip(ids, c.labels)]

    def model_init(trial=None):
        m = build_model(cfg, ctx.bb, len(ctx.splits.train.label_names))
        key = (ctx.bb, cfg.seed if ctx.bb == "tiny" else None)  # the trainer's cache key: a random 'tiny' bottom depends on the seed
        return CachedBottom(m, key, tok.pad_token_id or 0) if ctx.a.hf_cache and frozen_depth(m) else Wrapped(m)

    coll = DataCollatorWithPadding(tok, pad_to_multiple_of=cfg.pad_to_multiple_of)
    return rows, model_init, coll


def _hf_args(out, seed, **kw):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=out,
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        disable_tqdm=True,
        **kw,
    )


def m_hf_peer(ctx, seed, log):
    from transformers import Trainer, TrainerCallback

    rows, model_init, coll = _hf_parts(ctx)
    d = ctx.root / f"hf_peer_s{seed}"
    d.mkdir(parents=True, exist_ok=True)
    train_rows, val_rows = rows(ctx.splits.train), rows(ctx.splits.val)
    yv = ctx.splits.val.labels
    ledger: list = []
    state = {"spent": 0, "trial_samples": 0, "t0": 0.0, "skips": 0, "in_epoch": 0}

    def compute_metrics(p):  # the project's validation metric, so every method is picked and drawn on one scale
        probs = 1 / (1 + np.exp(-p.predictions))
        return {"macro_f1": crossfit_macro_f1(yv, probs, "global")}

    class Budget(TrainerCallback):
        def on_train_begin(self, args, st, control, **kw):
            cost = int(round(args.num_train_epochs * ctx.n_train))  # posts it will see
            state["trial_samples"], state["t0"] = 0, time.time()
            if state["spent"] + cost > ctx.budget:  # does not fit what is left: not run (and no samples spent)
                trial = trainer._trial
                trial.set_user_attr("skipped", f"needs {cost} samples, {ctx.budget - state['spent']} left")
                state["skips"] += 1
                if ctx.budget - state["spent"] < ctx.n_train or state["skips"] >= 20:
                    trial.study.stop()
                raise optuna.TrialPruned("over budget")
            state["skips"] = 0

        def on_epoch_begin(self, args, st, control, **kw):
            state["in_epoch"] = 0

        def on_step_end(self, args, st, control, **kw):  # steps x batch, the last batch of an epoch counted as it is
            n = min(args.per_device_train_batch_size * args.gradient_accumulation_steps, ctx.n_train - state["in_epoch"])
            state["in_epoch"] += n
            state["trial_samples"] += n

    trainer = Trainer(
        model_init=model_init,
        args=_hf_args(str(d / "out"), seed),
        train_dataset=train_rows,
        eval_dataset=val_rows,
        data_collator=coll,
        compute_metrics=compute_metrics,
        callbacks=[Budget()],
    )

    class Ledger:
        def __call__(self, study, t, st, values):
            if study._storage.get_trial(t._trial_id).user_attrs.get("skipped"):
                return
            state["spent"] += state["trial_samples"]
            value = values[0] if values else None
            ok = st == TrialState.COMPLETE and value is not None
            t.value = value if ok else None
            ledger.append(
                {
                    "stage": "hf",
                    "trial": t.number,
                    "state": st.name,
                    "samples": state["trial_samples"],
                    "cum_samples": state["spent"],
                    "seconds": round(time.time() - state["t0"], 1),
                    "value": t.value if ok else None,
                    "full_fidelity": True,
                    "params": t.params,
                }
            )
            log(f"    hf #{t.number} {st.name.lower()} {state['trial_samples']} samples val {value if ok else float('nan'):.4f} {t.params}")

    # Trainer passes create_study's keyword arguments through; study.optimize takes no callbacks from it, so the ledger
    # is kept by wrapping the sampler's after_trial hook (called once per finished trial).
    sampler = optuna.samplers.TPESampler(seed=seed)  # Optuna's default sampler, seeded
    orig = sampler.after_trial
    led = Ledger()

    def after_trial(study, trial, st, values):
        orig(study, trial, st, values)
        led(study, trial, st, values)

    sampler.after_trial = after_trial  # type: ignore[method-assign]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            best = trainer.hyperparameter_search(
                direction="maximize",
                backend="optuna",
                n_trials=100,
                storage=f"sqlite:///{d}/optuna.db",
                study_name="hf_peer",
                sampler=sampler,
            )
        except ValueError:  # no trial completed: none fitted the budget
            best = None
    done = [r for r in ledger if r["value"] is not None]
    if not done or best is None:
        log("    hf: no trial fitted the budget")
        return ledger, None, {"pick": None}
    # re-train the pick with a fresh seed, score test with thresholds tuned on validation (run.evaluate)
    p = dict(best.hyperparameters)
    t0 = time.time()
    rt = Trainer(
        model_init=model_init,
        args=_hf_args(
            str(d / "retrain"),
            1000 + seed,
            learning_rate=p["learning_rate"],
            num_train_epochs=p["num_train_epochs"],
            per_device_train_batch_size=p["per_device_train_batch_size"],
        ),
        train_dataset=train_rows,
        data_collator=coll,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt.train()
        pv = rt.predict(val_rows).predictions
        pt = rt.predict(rows(ctx.splits.test)).predictions
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    ev = evaluate(ctx.splits, sig(pv), sig(pt), "global")
    log(f"    export: hf trial {best.run_id} re-trained: val {ev['val_macro_f1']:.4f} test {ev['test_macro_f1']:.4f}")
    pick = {
        "trial": int(best.run_id),
        "search_val": best.objective,
        "retrain_val": ev["val_macro_f1"],
        "test": ev["test_macro_f1"],
        "params": p,
        "retrain_seconds": round(time.time() - t0, 1),
    }
    return ledger, None, {"pick": pick}


def m_default(ctx, seed, log):
    rep, res = run_config(config_from_dict({**ctx.base, "seed": seed}), ctx.splits, ctx.bb)
    log(f"    default: val {rep['val_macro_f1']:.4f} test {rep['test_macro_f1']:.4f} ({rep['durations']['total_seconds']:.0f}s)")
    return rep, res.samples_seen


def fidelity_study(ctx, n, log):
    """`n` configurations drawn at random from the shared space, each trained at Stage 1's fidelity and at full fidelity
    (same training seed): how well the cheap score ranks the full one over the whole space, not only Stage 1's top."""
    a = ctx.a
    depth = encoder_depth(ctx.bb, ctx.base["max_layers"])
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=12345))
    low = {**ctx.base, "epochs": a.full_epochs * a.s1_epochs, "data_fraction": a.s1_fraction}
    rows = []
    for i in range(n):
        params = ctx.space.suggest(draw.ask())
        row = {"params": params}
        for name, base in (("stage1", low), ("full", ctx.base)):
            cfg, _ = params_to_config(params, config_from_dict({**base, "seed": 0}), depth)
            t0 = time.time()
            rep, _res = run_config(cfg, ctx.splits, ctx.bb, predict_test=False)
            row[name], row[f"{name}_seconds"] = rep["objective_value"], round(time.time() - t0, 1)
        rows.append(row)
        log(f"    fidelity #{i}: stage1 {row['stage1']:.4f} ({row['stage1_seconds']:.0f}s)  full {row['full']:.4f} ({row['full_seconds']:.0f}s)")
    x, y = [r["stage1"] for r in rows], [r["full"] for r in rows]
    top = sorted(range(n), key=lambda i: -x[i])[: max(1, n // 4)]
    return {
        "definition": (
            "configurations drawn uniformly from the shared space (RandomSampler, seed 12345), each trained once at Stage 1's "
            "fidelity (epochs x share, data share) and once at full fidelity with training seed 0; scores are the search "
            "objective on validation"
        ),
        "n": n,
        "spearman": spearman(x, y),
        "stage1_top_quarter_full_ranks": [sorted(y, reverse=True).index(y[i]) + 1 for i in top],
        "stage1_seconds_total": round(sum(r["stage1_seconds"] for r in rows), 1),
        "full_seconds_total": round(sum(r["full_seconds"] for r in rows), 1),
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------- the study


def curve(ledger):
    """Best-so-far full-fidelity validation score after each trial, against samples spent."""
    best, pts = None, []
    for r in ledger:
        if r["full_fidelity"] and r["value"] is not None:
            best = r["value"] if best is None else max(best, r["value"])
        pts.append([r["cum_samples"], best])
    return pts


def first_reach(pts, target):
    return next((s for s, b in pts if b is not None and b >= target - 1e-12), None)


def spearman(x, y):
    from scipy.stats import spearmanr

    if len(x) < 3:
        return None
    r = spearmanr(x, y).statistic
    return None if r is None or not math.isfinite(r) else float(r)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI-sized check of every code path, in about a minute: the tiny random "
                   "encoder (its scores mean nothing), 1 seed, budget 4 full trials of 0.5 epoch, seq 64 (--backbone minilm: ~7 min)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per method (default 3; quick 1)")
    p.add_argument("--budget", type=float, default=None, help="samples per method x seed, in full-fidelity trials (default 6; quick 4)")
    p.add_argument("--full-epochs", type=float, default=None, help="epochs of a full-fidelity trial (default 3; quick 0.5)")
    p.add_argument("--seq", type=int, default=None, help="max_seq_length (default 128: the demo posts' 90th percentile is 115 tokens; quick 64)")
    p.add_argument("--layers", type=int, default=None, help="encoder layers kept (max_layers; default all)")
    p.add_argument("--space", choices=("demo", "full"), default="demo",
                   help="demo: the demo's base configuration (4 frozen layers, lr 1e-3) and space (demo_job.demo_space, with its priors in "
                        "Stage 1); full: the library defaults and space.base_space (a 2-layer cut of MiniLM scored below the TF-IDF floor there)")
    p.add_argument("--evals-per-epoch", type=int, default=2, help="validation passes per epoch of a full-fidelity trial")
    p.add_argument("--backbone", default=None, help="minilm (packaged; the default) or tiny (random, for tests; --quick's default)")
    p.add_argument("--stage1-share", type=float, default=0.25, help="share of the two-stage budget Stage 1 gets")
    p.add_argument("--s1-epochs", type=float, default=1 / 3, help="Stage 1 trial length as a share of the full epochs")
    p.add_argument("--s1-fraction", type=float, default=0.5, help="Stage 1 share of the training posts")
    p.add_argument("--s1-evals", type=int, default=4, help="validation passes in a Stage 1 trial (the successive-halving rungs)")
    p.add_argument("--reduction-factor", type=int, default=2, help="Stage 1 successive halving")
    p.add_argument("--top-k", type=int, default=6, help="Stage 1 trials the narrowing rests on")
    p.add_argument("--enqueue", type=int, default=3, help="Stage 1 best configurations re-run first in Stage 2")
    p.add_argument("--methods", default=",".join(METHODS) + ",fidelity",
                   help=f"comma-separated, from {', '.join(METHODS)} and fidelity (random configurations at both fidelities)")
    p.add_argument("--fidelity-configs", type=int, default=None, help="configurations the fidelity part trains twice (default 10: a rank correlation over fewer says little; quick 3)")
    p.add_argument("--hf-cache", action=argparse.BooleanOptionalAction, default=True,
                   help="serve the HF peer's frozen bottom from the project's cache (the same arithmetic; at 64 tokens its search took 0.52x the wall time, 1 run); "
                        "--no-hf-cache runs Trainer on the plain model")
    p.add_argument("--update", action="store_true", help="merge what this run measures into the JSON at --out (same settings) "
                   "instead of replacing it")
    p.add_argument("--out", default="bench/results/search_efficiency.json")
    a = p.parse_args()
    q = a.quick
    a.backbone = a.backbone or ("tiny" if q else "minilm")
    a.seeds = a.seeds or (1 if q else 3)
    a.budget = a.budget or (4.0 if q else 6.0)
    a.full_epochs = a.full_epochs or (0.5 if q else 3.0)
    a.seq = a.seq or (64 if q else 128)
    a.fidelity_configs = a.fidelity_configs or (3 if q else 10)
    set_offline()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    import transformers

    transformers.logging.set_verbosity_error()
    t_start, load0 = time.time(), os.getloadavg()
    ctx = Ctx(a)
    methods = [m for m in a.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS and m != "fidelity"]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}, fidelity")
    log = lambda s: print(s, flush=True)  # noqa: E731

    # a time estimate from a short calibration run of the default configuration (its samples count nowhere)
    from dataaug_multi_both.demo_job import calibrate

    speed = calibrate({**ctx.base}, ctx.splits, ctx.bb, share=0.1 if not q else 0.03)
    searches = sum(m in methods for m in ("two_stage", "tpe", "tpe_seeded", "random", "hf_peer")) + 0.5 * ("two_stage_half" in methods)
    samples = a.seeds * (searches * ctx.budget + (searches + ("default" in methods)) * ctx.full_cost * 1.5)
    trials = a.seeds * (searches * a.budget * 2.5 + searches + 1)
    est = samples * speed.post_seconds + trials * (speed.fixed_seconds + 2 * a.full_epochs * speed.eval_seconds)
    log(
        f"search efficiency: {a.backbone} x{a.layers or 'all'} layers, {a.space} space, seq {a.seq}, {ctx.n_train} training posts, full trial = "
        f"{a.full_epochs:g} epoch ({ctx.full_cost:.0f} samples), budget {a.budget:g} full trials = {ctx.budget} samples per "
        f"method x seed, {a.seeds} seed(s), methods {', '.join(methods)}"
    )
    log(
        f"calibration: {1 / speed.post_seconds:.1f} training posts/s, {speed.fixed_seconds:.1f}s fixed per trial; "
        f"estimated {est / 60:.0f} min (load {load0[0]:.1f}; a busy machine runs longer)"
    )
    out = {
        "settings": {
            "backbone": a.backbone,
            "layers": a.layers,
            "max_seq_length": a.seq,
            "n_train": ctx.n_train,
            "n_val": len(ctx.splits.val),
            "n_test": len(ctx.splits.test),
            "full_epochs": a.full_epochs,
            "full_trial_samples": ctx.full_cost,
            "budget_full_trials": a.budget,
            "budget_samples": ctx.budget,
            "seeds": list(range(a.seeds)),
            "quick": q,
            "stage1": {
                "share_of_budget": a.stage1_share,
                "epochs_share": a.s1_epochs,
                "data_fraction": a.s1_fraction,
                "reduction_factor": a.reduction_factor,
            },
            "stage2": {
                "top_k": a.top_k,
                "enqueue": a.enqueue,
                "pruner": "median (5 startup trials, one epoch of warm-up), as TPE's",
            },
            "task": "criteria",
            "objective": "cross-fitted validation macro-F1 over posts",
            "precision": "auto",
            "space": (
                "demo_job.demo_space() + decision_thresholds_per_class, max_seq_length fixed, task=criteria; base DEMO_BASE"
                if a.space == "demo"
                else "space.base_space(2) with max_seq_length fixed and task=criteria"
            )
            + " (the same for two_stage, tpe, random; two-stage's Stage 1 starts with the default configuration"
            + (" and DEMO_PRIORS)" if a.space == "demo" else ")"),
            "space_knobs": {k.name: dataclasses.asdict(k) for k in ctx.space} if dataclasses.is_dataclass(next(iter(ctx.space))) else None,
            "base": ctx.base,
            "hf_space": "transformers default_hp_space_optuna: learning_rate 1e-6..1e-4 log, num_train_epochs 1..5, seed 1..40, batch 4..64, "
            "on the same model as the base configuration (its frozen layers frozen), fp32 (Trainer's default), plain BCE, no length grouping",
            "samples_counting": "complete trials: TrainResult.samples_seen; pruned: epoch at the pruning pass x posts trained on; HF: steps x batch (an epoch's last, partial batch counted as it is)",
            "pick_and_test": "pick = best search-time validation objective; re-trained once with seed 1000+s and scored on test (export.export_best; HF: Trainer + run.evaluate)",
            "calibration": dataclasses.asdict(speed),
            "estimate_minutes": round(est / 60, 1),
        },
        "methods": {},
        "labels": LABELS,
    }
    fns = {"two_stage": m_two_stage, "two_stage_half": m_two_stage_half, "tpe": m_tpe, "tpe_seeded": m_tpe_seeded, "random": m_random, "hf_peer": m_hf_peer}
    for m in methods:
        if m in ("default", "fidelity"):
            continue
        runs = []
        for s in range(a.seeds):
            log(f"[{m}] seed {s} (elapsed {(time.time() - t_start) / 60:.1f} min, load {os.getloadavg()[0]:.1f})")
            t0 = time.time()
            ledger, job, extra = fns[m](ctx, s, log)
            search_seconds = time.time() - t0
            pick = (
                extra.pop("pick", None)
                if m == "hf_peer"
                else (export_pick(ctx, job, s, log) if any(r["value"] is not None and r["full_fidelity"] for r in ledger) else None)
            )
            runs.append(
                {
                    "seed": s,
                    "samples": ledger[-1]["cum_samples"] if ledger else 0,
                    "search_seconds": round(search_seconds, 1),
                    "n_trials": len(ledger),
                    "states": {st: sum(r["state"] == st for r in ledger) for st in ("COMPLETE", "PRUNED", "FAIL")},
                    "best_val": max((r["value"] for r in ledger if r["full_fidelity"] and r["value"] is not None), default=None),
                    "pick": pick,
                    "test": pick["test"] if pick else None,
                    "retrain_val": pick["retrain_val"] if pick else None,
                    "curve": curve(ledger),
                    "trials": ledger,
                    **extra,
                }
            )
            if job is not None:
                shutil.rmtree(Path(job.experiments_dir), ignore_errors=True)
        out["methods"][m] = {"label": LABELS[m], "runs": runs}
    if "default" in methods:
        runs = []
        for s in range(a.seeds):
            log(f"[default] seed {s}")
            t0 = time.time()
            rep, n = m_default(ctx, s, log)
            runs.append(
                {
                    "seed": s,
                    "samples": n,
                    "search_seconds": round(time.time() - t0, 1),
                    "best_val": rep["val_macro_f1"],
                    "test": rep["test_macro_f1"],
                    "retrain_val": rep["val_macro_f1"],
                    "curve": [[n, rep["val_macro_f1"]]],
                }
            )
        out["methods"]["default"] = {"label": LABELS["default"], "runs": runs}
    sp = ctx.splits
    tf = [
        tfidf_baseline(
            sp.train.texts, sp.train.labels, sp.val.texts, sp.val.labels, sp.test.texts, sp.test.labels, sp.train.label_names, seed=s
        )
        for s in range(a.seeds)
    ]
    out["tfidf"] = {
        "label": LABELS["tfidf"],
        "val": seed_stats([t["val_macro_f1"] for t in tf]),
        "test": seed_stats([t["test_macro_f1"] for t in tf]),
    }

    if "fidelity" in methods:
        log(f"[fidelity] {a.fidelity_configs} random configurations at both fidelities (elapsed {(time.time() - t_start) / 60:.1f} min)")
        out["fidelity"] = fidelity_study(ctx, a.fidelity_configs, log)
    if a.update and Path(a.out).is_file():  # merge into an earlier run with the same settings
        old = json.loads(Path(a.out).read_text())
        keys = ("backbone", "layers", "max_seq_length", "full_epochs", "budget_samples", "quick", "stage1", "stage2", "base")
        diff = [k for k in keys if old["settings"].get(k) != json.loads(json.dumps(out["settings"].get(k), default=float))]
        if diff:
            raise SystemExit(f"error: --update: {a.out} was measured with other settings ({', '.join(diff)}): rerun without --update")
        out["methods"] = {**old["methods"], **out["methods"]}
        if "fidelity" not in out and "fidelity" in old:
            out["fidelity"] = old["fidelity"]
        out["earlier_runs"] = old.get("earlier_runs", []) + [{**old["run"], "methods": list(old["methods"])}]
        out["settings"]["calibration"] = old["settings"]["calibration"]

    # ---- summaries
    for d in out["methods"].values():
        rs = d["runs"]
        d["best_val"] = seed_stats([r["best_val"] for r in rs if r["best_val"] is not None])
        d["test"] = seed_stats([r["test"] for r in rs if r["test"] is not None])
        d["retrain_val"] = seed_stats([r["retrain_val"] for r in rs if r["retrain_val"] is not None])
        d["samples"] = seed_stats([r["samples"] for r in rs])
        d["search_seconds"] = seed_stats([r["search_seconds"] for r in rs])
    summ: dict = {}
    tpe = out["methods"].get("tpe")
    if tpe and tpe["best_val"]["n"]:
        target_val, target_test = tpe["best_val"]["mean"], tpe["test"]["mean"]
        tpe_samples = tpe["samples"]["mean"]
        reach = {}
        for m, d in out["methods"].items():
            if m == "default":
                continue
            per = [first_reach(r["curve"], target_val) for r in d["runs"]]
            ok = [x for x in per if x is not None]
            reach[m] = {
                "per_seed_samples": per,
                "per_seed_ratio": [None if x is None else x / tpe_samples for x in per],
                "seeds_reached": len(ok),
                "mean_ratio_of_reached": float(np.mean(ok) / tpe_samples) if ok else None,
            }
        summ["compute_to_reach"] = {
            "definition": (
                "samples at which the method's best-so-far FULL-FIDELITY validation objective (search-time, cross-fitted "
                "macro-F1; Stage 1 values excluded) first reaches single-stage TPE's final best validation objective "
                "(mean over TPE's seeds); ratio = those samples / TPE's mean samples spent. The cheaper, validation-based "
                "definition (no re-training at each best-so-far change)."
            ),
            "tpe_final_val_mean": target_val,
            "tpe_final_test_mean": target_test,
            "tpe_samples_mean": tpe_samples,
            "methods": reach,
        }
    ts = out["methods"].get("two_stage")
    if ts:
        pairs = [pp for r in ts["runs"] for pp in r.get("fidelity_pairs", [])]
        summ["fidelity_rank"] = {
            "definition": (
                "Spearman rank correlation between a configuration's Stage 1 score (the value it was ranked by: validation "
                "objective at the shared rung) and its Stage 2 score (full fidelity) over the Stage 1 configurations that "
                "Stage 2 re-ran first (clipped into the narrowed space), pooled over seeds; these are Stage 1's TOP "
                "configurations, so the range is restricted"
            ),
            "n": len(pairs),
            "spearman": spearman([pp["stage1"] for pp in pairs], [pp["stage2"] for pp in pairs]),
            "per_seed": [
                spearman([pp["stage1"] for pp in r.get("fidelity_pairs", [])], [pp["stage2"] for pp in r.get("fidelity_pairs", [])])
                for r in ts["runs"]
            ],
            "pairs": pairs,
        }
        vols = [r["volume_kept"] for r in ts["runs"] if r.get("volume_kept") is not None]
        summ["volume_kept"] = {
            "definition": "product over the Stage 2 space's knobs of the share narrowing kept (range on the knob's log or linear scale; choices for categoricals), narrow.narrow_space's share_kept",
            "per_seed": vols,
            "mean": float(np.mean(vols)) if vols else None,
            "geo_mean": float(np.exp(np.mean(np.log(vols)))) if vols and all(v > 0 for v in vols) else None,
        }
    # the goal: two-stage reaches TPE's final test macro-F1 with <= 0.5x its compute, beats HF peer and random at equal compute
    if ts and tpe and ts["test"]["n"] and tpe["test"]["n"]:
        g = summ.get("compute_to_reach", {}).get("methods", {}).get("two_stage", {})
        ratio = g.get("mean_ratio_of_reached")
        all_reached = g.get("seeds_reached") == len(ts["runs"])
        beats = {
            m: (ts["test"]["mean"] > out["methods"][m]["test"]["mean"]) if out["methods"].get(m, {}).get("test", {}).get("n") else None
            for m in ("hf_peer", "random")
        }
        half = out["methods"].get("two_stage_half", {}).get("test", {})
        summ["goal"] = {
            "two_stage_test_mean": ts["test"]["mean"],
            "two_stage_half_test_mean": half.get("mean") if half.get("n") else None,
            "tpe_test_mean": tpe["test"]["mean"],
            "two_stage_test_at_full_budget_ge_tpe": ts["test"]["mean"] >= tpe["test"]["mean"],
            # the goal as the issue states it: two-stage given HALF the budget, its pick re-trained and scored on test,
            # reaches single-stage TPE's final test macro-F1 (mean over seeds)
            "half_budget_test_ge_tpe": bool(half.get("n")) and half["mean"] >= tpe["test"]["mean"],
            # the anytime view of the full-budget run: when its best-so-far full-fidelity validation score first reached TPE's
            "compute_ratio_to_reach_tpe_val": ratio,
            "reached_in_every_seed": all_reached,
            "half_compute_met_on_val_curve": bool(all_reached and ratio is not None and ratio <= 0.5),
            "beats_at_equal_compute": beats,
        }
        tps = out["methods"].get("tpe_seeded", {}).get("test", {})
        if tps.get("n"):  # not part of the goal: the same comparisons against TPE given two-stage's seed configurations
            summ["goal"]["vs_tpe_seeded"] = {
                "tpe_seeded_test_mean": tps["mean"],
                "two_stage_test_ge": ts["test"]["mean"] >= tps["mean"],
                "two_stage_half_test_ge": bool(half.get("n")) and half["mean"] >= tps["mean"],
            }
        summ["goal"]["met"] = bool(summ["goal"]["half_budget_test_ge_tpe"] and all(v is True for v in beats.values()))
    out["summary"] = summ
    load1 = os.getloadavg()
    out["run"] = {
        "wall_seconds": round(time.time() - t_start, 1),
        "load_start": [round(x, 2) for x in load0],
        "load_end": [round(x, 2) for x in load1],
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_name(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "methods": methods,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, default=float) + "\n")
    shutil.rmtree(ctx.root, ignore_errors=True)
    print_table(out)
    log(f"wrote {a.out}; wall {out['run']['wall_seconds'] / 60:.1f} min, load {load0[0]:.1f} -> {load1[0]:.1f}")


def _cpu_name():
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return None


def _f(s):
    return "   -   " if not s or not s.get("n") else f"{s['mean']:.4f}±{s['std']:.4f}"


def print_table(out):
    print(f"\n{'method':<12} {'best val':>15} {'test':>15} {'samples':>8} {'wall s':>7}  test per seed")
    for m, d in out["methods"].items():
        per = ", ".join("-" if r["test"] is None else f"{r['test']:.3f}" for r in d["runs"])
        print(f"{m:<12} {_f(d['best_val']):>15} {_f(d['test']):>15} {d['samples']['mean']:8.0f} {d['search_seconds']['mean']:7.0f}  {per}")
    print(f"{'tfidf':<12} {_f(out['tfidf']['val']):>15} {_f(out['tfidf']['test']):>15}")
    s = out["summary"]
    if "compute_to_reach" in s:
        for m, r in s["compute_to_reach"]["methods"].items():
            print(
                f"compute to reach TPE's final val {s['compute_to_reach']['tpe_final_val_mean']:.4f}: {m:<10} per seed {r['per_seed_ratio']}"
            )
    if "fidelity_rank" in s:
        print(f"Stage1<->Stage2 Spearman: {s['fidelity_rank']['spearman']} over {s['fidelity_rank']['n']} configurations")
    if "fidelity" in out:
        f = out["fidelity"]
        print(f"random configurations at both fidelities: Spearman {f['spearman']} over {f['n']}; Stage 1's top quarter ranks "
              f"{f['stage1_top_quarter_full_ranks']} at full fidelity")
    if "volume_kept" in s:
        print(f"volume kept by narrowing: {s['volume_kept']['per_seed']}")
    if "goal" in s:
        print(f"goal: {json.dumps(s['goal'])}")


if __name__ == "__main__":
    sys.exit(main())
