#!/usr/bin/env python
"""Soak the search's crash and concurrency promises: N separate worker processes share one study of tiny-model
trials while random SIGKILLs hit them; a killed worker is replaced at once, as a supervisor would.

Prints, per storage: trials done, storage errors, stuck trials, duplicate configurations, disk used and wall time.
Usage: python bench/soak.py [--trials 200] [--workers 4] [--kills 10] [--storage sqlite postgresql]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

ERRORS = re.compile(r"database is locked|OperationalError|IntegrityError|UniqueViolation|DeadlockDetected|Traceback")
PG_ADMIN = os.environ.get("DMB_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


def _worker(storage, data, exp, trials, log):
    cmd = [sys.executable, "-m", "dataaug_multi_both.cli.hpo", "stage1", "--storage", storage, "--backbone", "tiny",
           "--data-dir", str(data), "--experiments-dir", str(exp), "--max-seq-length", "64", "--epochs", "1",
           "--evals-per-epoch", "2", "--min-resource", "1", "--trials", str(trials), "--no-progress",
           "--heartbeat-interval", "5", "--heartbeat-grace", "15"]
    return subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "DMB_PRECISION": "fp32"})


def soak(kind, trials, workers, kills, seed):
    from dataaug_multi_both.demo import generate_demo_corpus
    from dataaug_multi_both.storage import _STORAGES, backend_for, open_storage

    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="dmb-soak-"))
    data, exp = generate_demo_corpus(tmp / "data", n_posts=240, seed=0), tmp / "exp"
    admin = None
    if kind == "sqlite":
        storage = f"sqlite:///{tmp}/optuna.db"
    else:
        import sqlalchemy

        name = f"dmb_soak_{uuid.uuid4().hex[:8]}"
        admin = sqlalchemy.create_engine(backend_for(PG_ADMIN).sqlalchemy_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        storage = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    logs = [open(tmp / f"worker{i}.log", "w") for i in range(workers + kills)]
    t0 = time.time()
    procs = [_worker(storage, data, exp, trials, logs[i]) for i in range(workers)]
    started, killed, exits = workers, 0, []
    # kills spread over the expected run: a random live worker, at a random moment
    kill_at = sorted(rng.uniform(5, 5 + trials * 1.2) for _ in range(kills))
    while any(p.poll() is None for p in procs):
        time.sleep(0.2)
        if kill_at and time.time() - t0 >= kill_at[0]:
            kill_at.pop(0)
            live = [i for i, p in enumerate(procs) if p.poll() is None]
            if live:
                i = rng.choice(live)
                os.killpg(procs[i].pid, signal.SIGKILL)
                procs[i].wait()
                killed += 1
                procs[i] = _worker(storage, data, exp, trials, logs[started])
                started += 1
        exits += [p.returncode for p in procs if p.poll() is not None and p.returncode not in (None, -9)]
    wall = time.time() - t0
    for f in logs:
        f.close()
    text = "".join((tmp / f"worker{i}.log").read_text() for i in range(started))
    study = optuna.load_study(study_name="stage1_broad", storage=open_storage(storage))
    ts = study.get_trials(deepcopy=False)
    done = [t for t in ts if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    configs = [json.dumps(t.params, sort_keys=True) for t in done]
    exp_bytes = sum(f.stat().st_size for f in exp.rglob("*") if f.is_file())
    if kind == "sqlite":
        db_bytes = sum(f.stat().st_size for f in tmp.glob("optuna.db*") if f.is_file())
    else:
        import sqlalchemy

        with admin.connect() as c:
            db_bytes = c.execute(sqlalchemy.text(f"SELECT pg_database_size('{storage.rsplit('/', 1)[1]}')")).scalar()
    out = {"storage": kind, "target": trials, "workers": workers, "kills": killed, "wall_s": round(wall, 1),
           "trials_done": len(done), "failed_rerun": sum(t.state == TrialState.FAIL for t in ts),
           "stuck": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in ts),
           "storage_errors": len(ERRORS.findall(text)), "duplicate_configs": len(configs) - len(set(configs)),
           "worker_exit_codes": sorted(set(exits)), "experiments_mb": round(exp_bytes / 2**20, 2),
           "database_mb": round(db_bytes / 2**20, 2), "trials_per_hour": round(len(done) / wall * 3600)}
    if admin is not None:
        import sqlalchemy

        for key in [k for k in _STORAGES if k[0] == storage]:
            _STORAGES.pop(key).engine.dispose()
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{storage.rsplit("/", 1)[1]}" WITH (FORCE)'))
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--storage", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for kind in a.storage:
        r = soak(kind, a.trials, a.workers, a.kills, a.seed)
        print(json.dumps(r))
        print(f"{kind}: {r['trials_done']}/{r['target']} trials done by {r['workers']} workers with {r['kills']} SIGKILLs "
              f"in {r['wall_s']:.0f}s; storage errors {r['storage_errors']}, stuck {r['stuck']}, duplicate configurations "
              f"{r['duplicate_configs']}, failed and re-run {r['failed_rerun']}; disk: experiments {r['experiments_mb']} MB, "
              f"database {r['database_mb']} MB", flush=True)


if __name__ == "__main__":
    main()
