"""Search throughput and disk use, measured with real tiny-model trials on the demo corpus.

    python bench/hpo_throughput.py [--trials 12] [--disk-trials 100]

1. trials/hour of Stage 1 with 1 worker and with 2 workers (same trial count, fresh SQLite study each), and the ratio;
2. disk use of the experiments directory after `--disk-trials` Stage 1 trials with the default best-k = 1
   checkpoints (reports of every trial + one checkpoint), to show it stays bounded.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from dataaug_multi_both.demo import generate_demo_corpus
from dataaug_multi_both.hpo import SearchJob, run_stage


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def stage(tmp: Path, data: Path, trials: int, jobs: int, name: str, model: str = "tiny", layers=None, prune: bool = True) -> dict:
    base = {"epochs": 1, "evals_per_epoch": 2, **({"max_layers": layers} if layers else {})}
    job = SearchJob(stage=1, storage=f"sqlite:///{tmp}/{name}.db", study_name=name, n_trials=trials, jobs=jobs,
                    backbone=model, data_dir=str(data), experiments_dir=str(tmp / "exp"), max_seq_lengths=(64,),
                    base=base, min_resource=2 if prune else 99)
    t0 = time.time()
    s = run_stage(job)
    s["wall"] = time.time() - t0
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--disk-trials", type=int, default=100)
    p.add_argument("--model", default="tiny", help="backbone of the throughput runs (pruning off, so both do the same work)")
    p.add_argument("--max-layers", type=int)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = generate_demo_corpus(tmp / "data", n_posts=400, seed=0)
    one = stage(tmp, data, a.trials, 1, "w1", a.model, a.max_layers, prune=False)
    two = stage(tmp, data, a.trials, 2, "w2", a.model, a.max_layers, prune=False)
    r1, r2 = a.trials / one["wall"] * 3600, a.trials / two["wall"] * 3600
    print(f"backbone {a.model} (layers {a.max_layers or 'all'}), seq 64, 1 epoch on half of 280 training posts, pruning off")
    print(f"1 worker : {a.trials} trials in {one['wall']:.0f}s = {r1:.0f} trials/hour  {one['counts']}")
    print(f"2 workers: {a.trials} trials in {two['wall']:.0f}s = {r2:.0f} trials/hour  {two['counts']}")
    print(f"ratio 2 workers / 1 worker: {r2 / r1:.2f}")
    if a.disk_trials:
        shutil.rmtree(tmp / "exp", ignore_errors=True)
        d = stage(tmp, data, a.disk_trials, 2, "disk")
        exp = tmp / "exp" / "disk"
        ck = list(exp.glob("trial_*/checkpoint"))
        print(f"after {a.disk_trials} trials ({d['counts']}) in {d['wall']:.0f}s: experiments dir {du(exp) / 1e6:.1f} MB, "
              f"{len(ck)} checkpoint(s) of {sum(du(c) for c in ck) / 1e6:.1f} MB, "
              f"{len(list(exp.glob('trial_*/evaluation_report.json')))} reports, "
              f"database {Path(tmp / 'disk.db').stat().st_size / 1e6:.1f} MB")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
