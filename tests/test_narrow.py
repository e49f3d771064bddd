"""Search space and Stage 2 narrowing, checked against studies made by plain Optuna code."""

import json
import math
import uuid

import numpy as np
import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

from dataaug_multi_both.config import TrainConfig
from dataaug_multi_both.core import UserError
from dataaug_multi_both.narrow import (
    clip_params,
    load_report,
    load_space,
    narrow_space,
    ranked_trials,
    save_space,
    within,
)
from dataaug_multi_both.space import (
    CatKnob,
    FloatKnob,
    IntKnob,
    SearchSpace,
    base_space,
    knob_fields,
    params_to_config,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {
    "learning_rate": FloatDistribution(5e-6, 3e-3, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "warmup_ratio": FloatDistribution(0.0, 0.2),
    "head_hidden_dim": IntDistribution(256, 768, step=64),
    "optimizer": CategoricalDistribution(["adam", "adamw", "sgd"]),
    "momentum": FloatDistribution(0.0, 0.95),
    "pooling": CategoricalDistribution(["cls", "mean", "max"]),
    "task": CategoricalDistribution(["both", "criteria"]),
    "evidence_loss_weight": FloatDistribution(0.1, 3.0, log=True),
    "evidence_pooling": CategoricalDistribution(["mean", "max"]),
}


def plain_study(rows, direction="maximize"):
    """A study built with plain Optuna calls; each row is (params, value), value None = failed trial."""
    study = optuna.create_study(direction=direction)
    for params, value in rows:
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        dists = {k: DISTS[k] for k in params}
        study.add_trial(
            create_trial(params=params, distributions=dists, value=value, state=state)
        )
    return study


def random_stage1(seed, n=80):
    """A Stage 1 study over the full base space with a synthetic objective (learning rate near 1e-4 wins)."""
    space = base_space(1)
    rng = np.random.default_rng(seed)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed)
    )

    def objective(trial):
        p = space.suggest(trial)
        return (
            -abs(math.log10(p["learning_rate"]) + 4)
            - p["dropout"]
            + 0.05 * rng.standard_normal()
        )

    study.optimize(objective, n_trials=n)
    return study


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_narrowed_never_wider_than_base_and_keeps_min_width(seed):
    study = random_stage1(seed)
    base = base_space(2)
    space, report = narrow_space(study.trials, base, top_k=20, min_width=0.1)
    assert space.names == base.names
    best = ranked_trials(study.trials)[0].params
    for k in base:
        new = space[k.name]
        assert within(new, k), k.name
        if isinstance(k, CatKnob):
            if k.name in best:
                assert new.contains(best[k.name]), (
                    k.name
                )  # the best trial's choice always survives
        else:
            f = math.log if k.log else float
            assert f(new.high) - f(new.low) >= 0.1 * (f(k.high) - f(k.low)) - 1e-9, (
                k.name
            )
    json.dumps(report)  # the plots read it as JSON


def test_log_knob_band_is_taken_in_log_space():
    lrs = [float(v) for v in np.logspace(-5, -3, 11)]
    rows = [({"learning_rate": lr}, float(i)) for i, lr in enumerate(lrs)]
    space, report = narrow_space(plain_study(rows).trials, base_space(2), top_k=11)
    lo, hi = np.exp(np.quantile(np.log(lrs), [0.1, 0.9]))
    assert space["learning_rate"].low == pytest.approx(lo, rel=1e-9)
    assert space["learning_rate"].high == pytest.approx(hi, rel=1e-9)
    assert not any(
        "edge" in n or "widened" in n for n in report["knobs"]["learning_rate"]["notes"]
    )
    # one small and two large rates: the log band starts near the small one, a linear band would not
    rows = [
        ({"learning_rate": lr}, v) for lr, v in ((1e-5, 3.0), (1e-3, 2.0), (1e-3, 1.0))
    ]
    space, _ = narrow_space(plain_study(rows).trials, base_space(2))
    assert space["learning_rate"].low == pytest.approx(10**-4.6, rel=1e-9)
    assert space["learning_rate"].low < np.quantile([1e-5, 1e-3, 1e-3], 0.1) / 5


def test_edge_crowded_by_best_trials_is_kept():
    drops = [0.0, 0.005, 0.01, 0.2, 0.22, 0.24, 0.26, 0.28, 0.3, 0.32]
    rows = [({"dropout": d}, 1.0) for d in drops]
    space, report = narrow_space(plain_study(rows).trials, base_space(2), top_k=10)
    assert space["dropout"].low == 0.0
    assert space["dropout"].high < 0.5
    assert report["knobs"]["dropout"]["notes"][0].startswith("low edge kept: 3 of 10")
    # without the crowd the low edge moves in
    rows = [({"dropout": d}, 1.0) for d in drops[3:]]
    space, _ = narrow_space(plain_study(rows).trials, base_space(2), top_k=10)
    assert space["dropout"].low > 0.2


def test_identical_values_are_widened_to_min_width():
    rows = [({"warmup_ratio": 0.1, "head_hidden_dim": 512}, float(i)) for i in range(5)]
    space, report = narrow_space(plain_study(rows).trials, base_space(2), min_width=0.2)
    assert (space["warmup_ratio"].low, space["warmup_ratio"].high) == pytest.approx(
        (0.08, 0.12)
    )
    assert "widened" in report["knobs"]["warmup_ratio"]["notes"][0]
    hd = space["head_hidden_dim"]
    assert (hd.low, hd.high) == (
        448,
        576,
    )  # 512 -/+ 51.2, rounded outward onto the 64 grid


def test_best_trials_rare_choice_is_kept_after_frequent_ones():
    rows = [({"optimizer": "sgd", "momentum": 0.5}, 10.0)]
    rows += [({"optimizer": "adamw"}, 5.0)] * 4 + [({"optimizer": "adam"}, 4.0)] * 3
    space, _ = narrow_space(
        plain_study(rows).trials, base_space(2), top_k=8, top_categories=2
    )
    assert space["optimizer"].choices == ("adamw", "adam", "sgd")
    space, _ = narrow_space(
        plain_study(rows).trials, base_space(2), top_k=8, top_categories=1
    )
    assert space["optimizer"].choices == ("adamw", "sgd")


def test_conditional_knob_narrowed_only_from_trials_that_have_it():
    rows = [({"optimizer": "sgd", "momentum": m}, 1.0) for m in (0.6, 0.65, 0.7, 0.75)]
    rows += [({"optimizer": "adamw"}, 2.0)] * 6
    space, report = narrow_space(plain_study(rows).trials, base_space(2), top_k=10)
    assert report["knobs"]["momentum"]["values"] == [0.6, 0.65, 0.7, 0.75]
    assert 0.6 <= space["momentum"].low < space["momentum"].high <= 0.75
    # in the top 6 no trial used SGD: momentum keeps its base range
    space, report = narrow_space(plain_study(rows).trials, base_space(2), top_k=6)
    assert space["momentum"] == base_space(2)["momentum"]
    assert "base range kept" in report["knobs"]["momentum"]["notes"][0]


def test_knob_never_sampled_keeps_base():
    rows = [({"dropout": d}, d) for d in (0.1, 0.2, 0.3)]
    space, report = narrow_space(plain_study(rows).trials, base_space(2))
    for name in ("learning_rate", "decision_thresholds_per_class", "pooling"):
        assert space[name] == base_space(2)[name]
        assert report["knobs"][name]["notes"] == [
            "the stored study never sampled it: base range kept"
        ]


def test_fewer_than_top_k_uses_all_and_says_so():
    rows = [({"dropout": d}, d) for d in (0.1, 0.2, 0.3, 0.4)] + [
        ({"dropout": 0.45}, None)
    ]
    _, report = narrow_space(plain_study(rows).trials, base_space(2), top_k=50)
    assert (
        report["top_k"] == 4 and report["n_complete"] == 4 and report["n_trials"] == 5
    )
    assert report["notes"] == [
        "only 4 complete trials, fewer than top_k=50: narrowed from all of them"
    ]
    assert report["best_value"] == 0.4


def test_too_few_complete_trials_is_a_user_error():
    rows = [({"dropout": 0.1}, 0.5), ({"dropout": 0.2}, 0.6), ({"dropout": 0.3}, None)]
    with pytest.raises(
        UserError,
        match=r"at least 3 complete Stage 1 trials .* has 2 \(of 3 trials\).*more --trials",
    ):
        narrow_space(plain_study(rows).trials, base_space(2))


def test_minimize_direction_ranks_low_values_first():
    rows = [({"dropout": d}, d) for d in (0.05, 0.1, 0.15, 0.4, 0.45, 0.5)]
    space, _ = narrow_space(
        plain_study(rows, "minimize").trials,
        base_space(2),
        top_k=3,
        direction="minimize",
    )
    assert space["dropout"].high <= 0.15


def test_json_round_trip_of_spaces_and_report():
    for space in (
        base_space(1),
        base_space(2),
        base_space(2, max_seq_lengths=[32, 64]),
    ):
        assert SearchSpace.from_json(space.to_json()) == space
    space, report = narrow_space(random_stage1(3, n=30).trials, base_space(2), top_k=10)
    back = SearchSpace.from_json(json.loads(json.dumps(space.to_json())))
    assert back == space
    assert isinstance(back["decision_thresholds_per_class"].choices[0], bool)
    assert json.loads(json.dumps(report)) == report


def test_clip_params_moves_a_configuration_into_the_space():
    base = base_space(2)
    space = base.replace(CatKnob("optimizer", ("adamw", "adam"))).replace(
        FloatKnob("learning_rate", 1e-5, 1e-4, log=True)
    )
    space = space.replace(IntKnob("head_hidden_dim", 384, 512, step=64))
    p = {
        "learning_rate": 1e-3,
        "optimizer": "sgd",
        "momentum": 0.9,
        "head_hidden_dim": 700,
        "stale": 1,
    }
    q = clip_params(p, space, best={"optimizer": "adam"})
    assert (
        q["learning_rate"] == 1e-4
        and q["optimizer"] == "adam"
        and q["head_hidden_dim"] == 512
    )
    assert "momentum" not in q and "stale" not in q
    assert all(space[k].contains(v) for k, v in q.items())
    # an Optuna study with the narrowed space replays it exactly
    study = optuna.create_study()
    study.enqueue_trial(q)
    study.optimize(lambda t: len(space.suggest(t)), n_trials=1)
    assert study.trials[0].params == q


def test_params_to_config_maps_and_adjusts():
    cfg, adj = params_to_config(
        {
            "batch_accum": "32x4",
            "freeze_n_layers": 3,
            "reinit_last_n_layers": 2,
            "decision_thresholds_per_class": True,
        },
        TrainConfig(epochs=2, data_fraction=0.5, seed=7),
        depth=3,
        max_batch=20,
    )
    assert (cfg.batch_size, cfg.grad_accum, cfg.effective_batch) == (16, 8, 128)
    assert (cfg.freeze_n_layers, cfg.reinit_last_n_layers) == (2, 1)
    assert cfg.threshold_mode == "per_class"
    assert (cfg.epochs, cfg.data_fraction, cfg.seed) == (2, 0.5, 7)
    assert adj["batch_size"]["requested"] == 32 and adj["batch_size"]["used"] == 16
    assert adj["grad_accum"] == {
        "requested": 4,
        "used": 8,
        "why": adj["batch_size"]["why"],
    }
    assert set(adj) == {
        "batch_size",
        "grad_accum",
        "freeze_n_layers",
        "reinit_last_n_layers",
    }
    _, adj = params_to_config(
        {"batch_accum": "8x4", "freeze_n_layers": 1},
        TrainConfig(),
        depth=6,
        max_batch=8,
    )
    assert adj == {}


def test_every_knob_of_the_stage2_space_is_consumed():
    base = TrainConfig()
    for k in base_space(2):
        values = k.choices[:2] if isinstance(k, CatKnob) else (k.low, k.high)
        c0, c1 = (params_to_config({k.name: v}, base, depth=12)[0] for v in values)
        assert any(getattr(c0, f) != getattr(c1, f) for f in knob_fields(k.name)), (
            k.name
        )
    # a whole sampled configuration maps, including every conditional knob at once
    everything = {
        k.name: (k.choices[-1] if isinstance(k, CatKnob) else k.centre())
        for k in base_space(2)
    }
    cfg, _ = params_to_config(everything, base, depth=12)
    assert (
        cfg.loss_type == "hybrid_weighted_bce_focal"
        and cfg.threshold_mode == "per_class"
    )


def test_space_is_stored_on_an_rdb_study(tmp_path):
    space, report = narrow_space(random_stage1(4, n=40).trials, base_space(2))
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(storage=url, study_name="stage2")
    save_space(study, space, report)
    again = optuna.load_study(storage=url, study_name="stage2")
    assert load_space(again) == space and load_report(again) == report
    with pytest.raises(UserError, match="already holds a different search space"):
        save_space(again, base_space(2))


def test_space_is_stored_on_postgresql():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        psycopg2.connect(
            host="127.0.0.1", port=5432, dbname="test", connect_timeout=2
        ).close()
    except psycopg2.OperationalError:
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    url = "postgresql+psycopg2://127.0.0.1:5432/test"  # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3
    name = f"test-narrow-{uuid.uuid4().hex[:8]}"
    space, report = narrow_space(random_stage1(5, n=60).trials, base_space(2))
    study = optuna.create_study(storage=url, study_name=name)
    try:
        save_space(study, space, report)
        again = optuna.load_study(storage=url, study_name=name)
        assert load_space(again) == space and load_report(again) == report
    finally:
        optuna.delete_study(storage=url, study_name=name)


def test_stage2_narrows_the_evidence_knobs_from_task_both_trials():
    # Stage 1 trials with task=both carry the evidence knobs; criteria trials do not (the knobs are conditional)
    both = [({"task": "both", "evidence_loss_weight": w, "evidence_pooling": p}, 2.0 + w)
            for w, p in ((0.8, "mean"), (1.0, "max"), (1.2, "mean"), (1.5, "mean"), (0.9, "mean"))]
    rows = both + [({"task": "criteria"}, 1.0)] * 3
    base = base_space(2)
    space, report = narrow_space(plain_study(rows).trials, base, top_k=8, top_categories=1)
    w = space["evidence_loss_weight"]
    assert base["evidence_loss_weight"].low < w.low and w.high < base["evidence_loss_weight"].high   # narrowed, not kept
    assert 0.8 <= w.low < w.high <= 1.5
    assert sorted(report["knobs"]["evidence_loss_weight"]["values"]) == [0.8, 0.9, 1.0, 1.2, 1.5]    # the 5 task=both trials
    assert space["evidence_pooling"].choices == ("mean",)                       # 4 of 5 and the best trial used mean
    assert space["task"].choices == ("both",)                                   # 5 of 8 and the best trial
