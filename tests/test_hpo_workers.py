"""Workers that crash, start together or run on several machines: nothing stuck, nothing repeated, nothing lost.

Every test runs against SQLite and, where it matters for several machines, the real PostgreSQL on 127.0.0.1:5432.
"""
import json
import shutil
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

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
    for bad in ("database is locked", "OperationalError", "IntegrityError", "UniqueViolation", "Traceback"):
        assert bad not in text, text[-3000:]


def _pg_available() -> bool:
    try:
        import sqlalchemy

        from dataaug_multi_both.storage import backend_for

        with sqlalchemy.create_engine(backend_for(PG_URL).sqlalchemy_url).connect():
            return True
    except Exception:
        return False


needs_pg = pytest.mark.skipif(not _pg_available() and os.environ.get("CI") != "true",
                              reason="no PostgreSQL on 127.0.0.1:5432")


class _FreshPgDatabase:
    """A new, empty PostgreSQL database for one test (created and dropped through the `test` database)."""

    def __init__(self):
        import sqlalchemy

        from dataaug_multi_both.storage import backend_for

        self.name = f"dmb_{uuid.uuid4().hex[:10]}"
        self._admin = sqlalchemy.create_engine(backend_for(PG_URL).sqlalchemy_url, isolation_level="AUTOCOMMIT")
        self.url = PG_URL.rsplit("/", 1)[0] + "/" + self.name

    def __enter__(self):
        import sqlalchemy

        with self._admin.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc):
        import sqlalchemy

        with self._admin.connect() as c:
            c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


def _stage1_cmd(storage, demo_dir, exp, trials, *extra, seq=64):
    return [PYTHON, "-m", "dataaug_multi_both.cli.hpo", "stage1", "--storage", storage, "--backbone", "tiny",
            "--data-dir", str(demo_dir), "--experiments-dir", str(exp), "--max-seq-length", str(seq), "--no-progress",
            "--trials", str(trials), *extra]


def _configs(study):
    return [json.dumps(t.params, sort_keys=True) for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))]


def test_four_workers_in_one_run_hit_the_target_without_storage_errors(tmp_path, demo_dir, capfd):
    from dataaug_multi_both.hpo import TrialRecord, run_stage

    storage = f"sqlite:///{tmp_path}/optuna.db"
    summary = run_stage(_job(tmp_path, demo_dir, storage=storage, n_trials=8, jobs=4))
    out, err = capfd.readouterr()
    _no_storage_errors(out + err)
    study = optuna.load_study(study_name="stage1_broad", storage=storage)
    assert summary["done"] == 8 and summary["counts"]["FAIL"] == 0 and summary["counts"]["RUNNING"] == 0
    assert len(set(_configs(study))) == 8  # each worker has its own sampler seed
    assert len({TrialRecord.load(t).sampler_seed for t in study.trials}) >= 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_cold_start_processes_started_together_on_a_new_storage(tmp_path, demo_dir, backend):
    """4 processes on a new SQLite file (2 on a new PostgreSQL database) at the same instant: exact target, no errors."""
    if backend == "postgresql" and not _pg_available() and os.environ.get("CI") != "true":
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    n_proc, target = (4, 12) if backend == "sqlite" else (2, 6)
    db = _FreshPgDatabase() if backend == "postgresql" else None
    storage = db.__enter__() if db else f"sqlite:///{tmp_path}/new.db"
    try:
        cmd = _stage1_cmd(storage, demo_dir, tmp_path / "exp", target, "--epochs", "1", "--evals-per-epoch", "2",
                          "--min-resource", "9")
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n_proc)]
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err[-3000:]
            _no_storage_errors(out + err)
        from dataaug_multi_both.hpo import TrialRecord
        from dataaug_multi_both.storage import open_storage

        study = optuna.load_study(study_name="stage1_broad", storage=open_storage(storage))
        states = [t.state for t in study.trials]
        assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == target
        assert TrialState.RUNNING not in states and TrialState.WAITING not in states
        configs = _configs(study)
        assert len(set(configs)) >= 0.95 * len(configs), configs  # distinct work across separate processes
        assert len({TrialRecord.load(t).worker["pid"] for t in study.trials}) >= 2  # the work was shared
    finally:
        if db:
            from dataaug_multi_both.storage import _STORAGES

            for key in [k for k in _STORAGES if k[0] == storage]:
                _STORAGES.pop(key).engine.dispose()
            db.__exit__()


def _wait_for(pred, timeout=300, every=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError("timed out waiting")


def _new_running_trial(storage, seen):
    """A predicate: a trial other than those in `seen` is running and has reported a validation pass."""
    def check():
        from dataaug_multi_both.storage import open_storage

        try:
            study = optuna.load_study(study_name="stage1_broad", storage=open_storage(storage))
        except Exception:
            return None
        return [t.number for t in study.get_trials(deepcopy=False)
                if t.state == TrialState.RUNNING and t.intermediate_values and t.number not in seen][:1]

    return check


# A worker whose checkpoint save stalls after its files are written, so a test can kill it mid-save.
SLOW_SAVE = ("import sys, time, safetensors.torch as st; f = st.save_file; "
             "st.save_file = lambda *a, **k: (f(*a, **k), time.sleep(120)); "
             "from dataaug_multi_both.cli.hpo import main; main(sys.argv[1:])")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_three_times_and_during_a_save_then_resume(tmp_path, demo_dir, backend):
    if backend == "postgresql" and not _pg_available() and os.environ.get("CI") != "true":
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    from dataaug_multi_both.model import load_classifier
    from dataaug_multi_both.storage import _STORAGES, open_storage

    target, exp = 4, tmp_path / "exp"
    db = _FreshPgDatabase() if backend == "postgresql" else None
    storage = db.__enter__() if db else f"sqlite:///{tmp_path}/optuna.db"
    try:
        args = _stage1_cmd(storage, demo_dir, exp, target, "--epochs", "3", "--evals-per-epoch", "2", "--min-resource", "9",
                           seq=32)[3:]
        seen: set = set()
        for _ in range(3):  # killed mid-trial, three times
            p = subprocess.Popen([PYTHON, "-m", "dataaug_multi_both.cli.hpo", *args], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, start_new_session=True)
            try:
                seen.add(_wait_for(_new_running_trial(storage, seen))[0])
                assert p.poll() is None, p.stderr.read().decode()[-2000:]
            finally:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        p = subprocess.Popen([PYTHON, "-c", SLOW_SAVE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)  # killed during a checkpoint save
        try:
            _wait_for(lambda: list(exp.glob("stage1_broad/trial_*/.checkpoint.*.tmp/encoder/*.safetensors")), timeout=400)
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        assert list(exp.glob("stage1_broad/trial_*/.checkpoint.*.tmp"))  # the kill left a half-written save behind

        t0 = time.time()  # the resume reclaims the dead workers' trials at once (same machine) and finishes the stage
        again = subprocess.run([PYTHON, "-m", "dataaug_multi_both.cli.hpo", *args, "--json"], capture_output=True,
                               text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        _no_storage_errors(again.stdout + again.stderr)
        summary = json.loads(again.stdout)
        study = optuna.load_study(study_name="stage1_broad", storage=open_storage(storage))
        states = [t.state for t in study.trials]
        assert TrialState.RUNNING not in states and TrialState.WAITING not in states
        assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == target == summary["done"]
        assert states.count(TrialState.FAIL) == 4  # the four kills, each re-run, none counted
        retried = [t for t in study.trials if "failed_trial" in t.system_attrs]
        assert retried and all(t.params == study.trials[t.system_attrs["failed_trial"]].params for t in retried)
        assert not list(exp.rglob("*.tmp"))  # no temporary folder or file remains
        for t in study.trials:  # every report loads and says what the storage says
            rep = exp / "stage1_broad" / f"trial_{t.number}" / "evaluation_report.json"
            if rep.exists():
                assert json.loads(rep.read_text())["state"] == t.state.name, t.number
        cks = list(exp.glob("stage1_broad/trial_*/checkpoint"))
        assert len(cks) == 1 and all(load_classifier(c) for c in cks)
        assert time.time() - t0 < 300
    finally:
        if db:
            for key in [k for k in _STORAGES if k[0] == storage]:
                _STORAGES.pop(key).engine.dispose()
            db.__exit__()


@needs_pg
def test_a_password_in_the_url_is_never_written(tmp_path, demo_dir):
    """Trust auth ignores the password, so a URL with one works; it must appear in no file and no stored attribute."""
    from dataaug_multi_both.hpo import run_stage
    from dataaug_multi_both.storage import open_storage

    url = PG_URL + "?password=s3cr3t-pw"
    name = f"pw_{uuid.uuid4().hex[:8]}"
    try:
        run_stage(_job(tmp_path, demo_dir, storage=url, study_name=name, n_trials=1))
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        stored = json.dumps([study.user_attrs] + [t.user_attrs for t in study.trials], default=str)
        assert "s3cr3t" not in stored
        for f in (tmp_path / "exp").rglob("*.json"):
            assert "s3cr3t" not in f.read_text(), f
    finally:
        optuna.delete_study(study_name=name, storage=open_storage(url))


def test_a_worker_whose_trials_keep_failing_stops_with_the_error(tmp_path, demo_dir, monkeypatch):
    """Failed trials do not count towards the target, so a broken configuration must stop the worker, not loop."""
    from dataaug_multi_both import hpo
    from dataaug_multi_both.core import UserError

    def boom(*a, **k):
        raise RuntimeError("kaboom in training")

    monkeypatch.setattr(hpo, "run_config", boom)
    with pytest.raises(UserError, match="3 trials in a row failed.*kaboom"):
        hpo.run_stage(_job(tmp_path, demo_dir, storage=f"sqlite:///{tmp_path}/o.db", n_trials=5))


def test_pruners_fire_with_the_default_settings(tmp_path, demo_dir):
    """ASHA (Stage 1) and the median rule (Stage 2) prune real trials at their default rungs."""
    from dataaug_multi_both.hpo import run_stage

    from dataaug_multi_both.demo import generate_demo_corpus

    storage = f"sqlite:///{tmp_path}/o.db"
    small = generate_demo_corpus(tmp_path / "small", n_posts=120, seed=1)
    common = dict(storage=storage, experiments_dir=str(tmp_path / "exp"), data_dir=str(small), max_seq_lengths=(32,))
    s1 = run_stage(_job(tmp_path, demo_dir, n_trials=12, min_resource=1, reduction_factor=3,
                        base={"epochs": 1, "evals_per_epoch": 4}, **common))
    assert s1["counts"]["PRUNED"] >= 4, s1["counts"]  # ASHA keeps about the top third at each rung
    study = optuna.load_study(study_name="stage1_broad", storage=storage)
    assert all(t.user_attrs["pruned_at"]["index"] >= 1 for t in study.trials if t.state == TrialState.PRUNED)
    # 7 trials after the 5 startup ones: the sampler's seed is new per process, and on a CPU where the barely-trained
    # tiny models tie, 3 of them once all stayed at or above the median (CI, stop 14)
    run_stage(_job(tmp_path, demo_dir, stage=2, n_trials=12, top_k=6, enqueue=2,
              base={"epochs": 2, "evals_per_epoch": 2}, **common))
    study2 = optuna.load_study(study_name="stage2_exploit", storage=storage)
    pruned = [t for t in study2.trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.intermediate_values) for t in study2.trials]  # the median rule, after 5 startup trials and one warm-up epoch
    assert all(t.number >= 5 and max(t.intermediate_values) >= 2 for t in pruned)


def test_export_from_the_storage_alone(tmp_path, demo_dir):
    """`scripts/export_best.py --storage URL --study-name S` works without the search's experiments directory:
    every trial's record (configuration, backbone, data, split seed, labels) is stored in the study itself."""
    from dataaug_multi_both.hpo import run_stage

    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_stage(_job(tmp_path, demo_dir, storage=storage, n_trials=2, min_resource=9, base={"epochs": 1, "evals_per_epoch": 1}))
    shutil.rmtree(tmp_path / "exp")  # another machine: only the storage is shared
    proc = subprocess.run([PYTHON, "scripts/export_best.py", "--storage", storage, "--study-name", "stage1_broad",
                           "--n-seeds", "1", "--experiments-dir", str(tmp_path / "elsewhere"), "--out", str(tmp_path / "export")],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "export" / "export_summary.json").read_text())
    assert summary["seeds"] == [1] and 0 <= summary["test_mean"] <= 1
    assert summary["data"]["data_dir"] == str(demo_dir)  # read from the trial's record, not from a file
