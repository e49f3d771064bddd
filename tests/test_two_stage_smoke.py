"""CPU smoke test of the whole search through the real command line: Stage 1, Stage 2, report."""
import json

import optuna

from conftest import run_cli

SMALL = ["--model", "tiny", "--max-seq-length", "64", "--epochs", "1", "--evals-per-epoch", "2", "--no-progress"]


def test_stage1_then_stage2_then_report(tmp_path, demo_dir):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    common = ["--storage", storage, "--experiments-dir", str(tmp_path / "exp"), "--data-dir", str(demo_dir)]

    s1 = run_cli("cli.hpo", "stage1", *common, *SMALL, "--trials", "5", "--min-resource", "3")
    assert s1.returncode == 0, s1.stderr[-3000:]
    s2 = run_cli("cli.hpo", "stage2", *common, *SMALL, "--trials", "3", "--top-k", "5", "--enqueue", "2")
    assert s2.returncode == 0, s2.stderr[-3000:]

    st1 = optuna.load_study(study_name="stage1_broad", storage=storage)
    st2 = optuna.load_study(study_name="stage2_exploit", storage=storage)
    assert len(st1.trials) == 5 and len(st2.trials) == 3
    # Stage 2 re-ran Stage 1's best configurations first, inside the narrowed space it stored
    enqueued = [t for t in st2.trials if "stage1_trial" in t.user_attrs]
    assert len(enqueued) == 2
    assert "narrowing_report" in st2.user_attrs and "search_space" in st2.user_attrs
    # every finished trial wrote its report; exactly one checkpoint (best k = 1) is kept per study
    done = [t for t in st1.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in done:
        rep = json.loads((tmp_path / "exp" / "stage1_broad" / f"trial_{t.number}" / "evaluation_report.json").read_text())
        assert rep["trial"] == t.number and abs(rep["objective_value"] - t.value) < 1e-9
        # the demo corpus has sentence annotations: task both, ranked by the mean of post and evidence macro-F1
        assert rep["task"] == "both" and rep["objective"] == "mean"
        assert abs(t.value - (rep["val_macro_f1"] + rep["val_evidence_macro_f1"]) / 2) < 1e-9
        assert t.user_attrs["val_evidence_macro_f1"] == rep["val_evidence_macro_f1"]
        assert rep["derived"]["effective_batch_size"] in (16, 32, 64, 128)
        hp, peaks = rep["hyperparameters"], rep["derived"]["peak_learning_rates"]  # the rates the optimiser had, per group
        assert abs(peaks["head"] - hp["learning_rate"] * hp["head_lr_scale"]) < 1e-12 and "effective_learning_rate" not in rep["derived"]
    assert st1.user_attrs["objective"] == "mean" and st2.user_attrs["objective"] == "mean"
    assert len(list((tmp_path / "exp" / "stage1_broad").glob("trial_*/checkpoint"))) == 1

    rep = run_cli("cli.hpo", "report", "--storage", storage, "--study-name", "stage2_exploit",
                  "--experiments-dir", str(tmp_path / "exp"))
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "COMPLETE" in rep.stdout or "complete" in rep.stdout
    assert (tmp_path / "exp" / "stage2_exploit" / "report.html").exists()
