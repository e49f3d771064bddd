"""The budgeted demo job: a calibrated plan, both stages, the export over two seeds, the closing lines, within its budget."""

import time

from dataaug_multi_both.demo_job import Speed, plan_demo, run_demo, run_stage_within
from dataaug_multi_both.hpo import SearchJob, prepare_study, trials_done

TINY = {"freeze_n_layers": 1, "max_seq_length": 64, "head_hidden_dim": 32, "learning_rate": 1e-3}


def test_demo_fits_its_budget_and_prints_floor_and_lift(demo_dir, tmp_path):
    lines = []
    t = time.time()
    out = run_demo(
        f"sqlite:///{tmp_path}/o.db", tmp_path, time_budget=45, model="tiny", data_dir=str(demo_dir), log=lines.append, base=TINY
    )
    took = time.time() - t
    # the last trial and the minimum job (3 Stage 1 trials, 1 Stage 2 trial, 2 seeds) may run past the deadline on a busy machine
    assert took < 45 * 4, (took, lines)
    assert len(out["export_summary"]["seeds"]) == 2
    assert sum(out["stage1"]["counts"].values()) >= 3 and out["stage2"]["counts"]["COMPLETE"] >= 1
    assert lines[-3].startswith("exported model, test macro-F1 over 2 seeds:")
    assert lines[-2].startswith("TF-IDF + logistic regression floor, same split:")
    assert lines[-1].startswith("lift over the floor:") and "nan" not in lines[-2] + lines[-1]
    assert out["plan"]["seeds"] == 2 and out["speed"]["post_seconds"] > 0


def test_stage_within_starts_nothing_after_the_deadline(demo_dir, tmp_path):
    base = {**TINY, "epochs": 0.5, "evals_per_epoch": 1}
    job = SearchJob(
        stage=1,
        storage=f"sqlite:///{tmp_path}/o.db",
        n_trials=50,
        backbone="tiny",
        data_dir=str(demo_dir),
        experiments_dir=str(tmp_path),
        base=base,
        max_seq_lengths=(64,),
    )
    # the deadline has passed before the first trial (a deadline a second ahead let a fast machine fit a third trial)
    s = run_stage_within(job, deadline=time.time() - 1, estimate=5, min_trials=2)
    assert trials_done(prepare_study(job)[0]) == 2 and s["ran_now"] == 2  # min_trials ran, then the clock stopped it
    # resumed with min_trials already stored: before a trial of its own has run, the estimate decides whether one fits
    s = run_stage_within(job, deadline=time.time() + 60, estimate=3600, min_trials=2)
    assert trials_done(prepare_study(job)[0]) == 2 and s["ran_now"] == 0


def test_plan_shrinks_with_a_slower_machine():
    fast = plan_demo(Speed(0.01, 0.5, 3.0, 700), 500)
    slow = plan_demo(Speed(0.05, 0.5, 3.0, 700), 500)
    assert slow.stage2_epochs < fast.stage2_epochs and slow.seeds == fast.seeds == 2
    assert sum(slow.seconds.values()) <= 500 * 1.05
