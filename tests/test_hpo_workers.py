"""Several worker processes on one study: SQLite without storage errors, PostgreSQL, and a worker killed mid-trial."""
import os
import signal
import subprocess
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from conftest import PG_URL, PYTHON

FAST = {"epochs": 1, "evals_per_epoch": 2}


def _job(tmp_path, demo_dir, **kw):
    from dataaug_multi_both.hpo import SearchJob

    args = dict(stage=1, backbone="tiny", data_dir=str(demo_dir), experiments_dir=str(tmp_path / "exp"),
                max_seq_lengths=(64,), base=dict(FAST), min_resource=3)
    args.update(kw)
    return SearchJob(**args)


def _no_storage_errors(text: str):
    for bad in ("database is locked", "OperationalError", "Traceback"):
        assert bad not in text, text[-3000:]


def test_four_sqlite_workers_hit_the_target_without_storage_errors(tmp_path, demo_dir, capfd):
    from dataaug_multi_both.hpo import run_stage

    storage = f"sqlite:///{tmp_path}/optuna.db"
    summary = run_stage(_job(tmp_path, demo_dir, storage=storage, n_trials=8, jobs=4))
    out, err = capfd.readouterr()
    _no_storage_errors(out + err)
    study = optuna.load_study(study_name="stage1_broad", storage=storage)
    assert len(study.trials) == 8  # exactly the target: the gate stops every worker there
    assert summary["counts"]["FAIL"] == 0
    assert all("error" not in t.user_attrs for t in study.trials)
    # the workers sampled different configurations (each has its own sampler seed)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 8


def _pg_available() -> bool:
    try:
        import sqlalchemy

        from dataaug_multi_both.hpo import driver_url

        with sqlalchemy.create_engine(driver_url(PG_URL)).connect():
            return True
    except Exception:
        return False


@pytest.mark.skipif(not _pg_available() and os.environ.get("CI") != "true", reason="no PostgreSQL on 127.0.0.1:5432")
def test_postgresql_workers_in_separate_processes(tmp_path, demo_dir, capfd):
    from dataaug_multi_both.hpo import run_stage

    name = f"pg_{uuid.uuid4().hex[:8]}"
    try:
        summary = run_stage(_job(tmp_path, demo_dir, storage=PG_URL, study_name=name, n_trials=4, jobs=2))
        out, err = capfd.readouterr()
        _no_storage_errors(out + err)
        assert sum(summary["counts"].values()) == 4 and summary["counts"]["FAIL"] == 0
    finally:
        from dataaug_multi_both.hpo import open_storage

        optuna.delete_study(study_name=name, storage=open_storage(PG_URL))


def test_sigkilled_worker_is_failed_by_heartbeat_and_rerun(tmp_path, demo_dir):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    env = {**os.environ, "DMB_HEARTBEAT_INTERVAL": "1", "DMB_HEARTBEAT_GRACE": "3"}
    cmd = [PYTHON, "-m", "dataaug_multi_both.cli.hpo", "stage1", "--storage", storage, "--model", "tiny",
           "--data-dir", str(demo_dir), "--experiments-dir", str(tmp_path / "exp"), "--max-seq-length", "64",
           "--epochs", "3", "--evals-per-epoch", "2", "--min-resource", "9", "--trials", "3", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait for a trial to be running, then kill the worker mid-trial
            time.sleep(0.5)
            try:
                study = optuna.load_study(study_name="stage1_broad", storage=storage)
            except KeyError:
                continue
            if any(t.state == TrialState.RUNNING for t in study.trials):
                break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    study = optuna.load_study(study_name="stage1_broad", storage=storage)
    killed = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert len(killed) == 1  # the stale trial the kill left behind

    time.sleep(4)  # past the grace period: the next worker fails it and re-runs its configuration
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="stage1_broad", storage=storage)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.RUNNING) == 0
    assert study.trials[killed[0].number].state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert retried and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retried[0].params == killed[0].params
    assert len(study.trials) == 3
