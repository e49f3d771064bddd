"""Stage 2 narrows from any stored Stage 1 study with these parameter names, even one written by plain Optuna code."""
import math

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution


def test_stage2_from_a_study_written_by_plain_optuna(tmp_path, demo_dir):
    from dataaug_multi_both.hpo import SearchJob, run_stage
    from dataaug_multi_both.narrow import load_report, load_space

    storage = f"sqlite:///{tmp_path}/optuna.db"
    s1 = optuna.create_study(storage=storage, study_name="old_stage1", direction="maximize")
    dists = {"learning_rate": FloatDistribution(5e-6, 3e-3, log=True), "dropout": FloatDistribution(0.0, 0.5),
             "optimizer": CategoricalDistribution(["adam", "adamw", "sgd"])}
    for i in range(8):  # no search_space user attr, only three of the knobs: an older or foreign Stage 1
        params = {"learning_rate": 1e-4 * (1 + i), "dropout": 0.05 * i, "optimizer": ["adamw", "adam"][i % 2]}
        s1.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=0.3 + 0.01 * i))

    summary = run_stage(SearchJob(stage=2, storage=storage, stage1_study="old_stage1", study_name="s2", n_trials=2,
                                  backbone="tiny", data_dir=str(demo_dir), experiments_dir=str(tmp_path / "exp"),
                                  max_seq_lengths=(64,), top_k=5, enqueue=1, base={"epochs": 1, "evals_per_epoch": 2}))
    assert sum(summary["counts"].values()) == 2
    s2 = optuna.load_study(study_name="s2", storage=storage)
    space, report = load_space(s2), load_report(s2)
    lr = space["learning_rate"]
    # Q10-Q90 of the top-5 stored values (4e-4..8e-4) in log space: inside that band, far narrower than the base range
    assert 4e-4 <= lr.low < 5e-4 and 7e-4 < lr.high <= 8e-4 * 1.2 and math.log(lr.high / lr.low) < 0.2 * math.log(3e-3 / 5e-6)
    assert set(space["optimizer"].choices) <= {"adam", "adamw"}
    assert "decision_thresholds_per_class" in space  # Stage 2 adds its own knob
    assert report["knobs"]["weight_decay"]["notes"]  # a knob the old study never sampled keeps its base range, noted
    first = s2.trials[0]
    assert first.user_attrs.get("stage1_trial") == 7 and first.params["optimizer"] == "adam"
    # a Stage 1 study made before the `task` knob trained the post head alone: it counts as task=criteria
    assert space["task"].choices == ("criteria",) and s2.user_attrs["objective"] == "criteria"
    assert all(t.params["task"] == "criteria" for t in s2.trials)
