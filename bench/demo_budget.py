"""The budgeted demo (`demo_job.run_demo`), run N times in fresh processes: wall time, exported test macro-F1, TF-IDF floor, lift.

Each run is a new process (as `make demo` is), with its own storage and experiments directory under a temporary
directory. The machine's load average is printed beside each run, since a shared machine stretches wall times.

    python bench/demo_budget.py [--runs 3] [--time-budget 600] [--model minilm]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, sys
from dataaug_multi_both.demo_job import run_demo
out = run_demo(sys.argv[1], sys.argv[2], time_budget=float(sys.argv[3]), model=sys.argv[4])
ex = out['export_summary']
print('RESULT ' + json.dumps({'seconds': out['seconds'], 'test_mean': ex['test_mean'], 'test_std': ex['test_std'],
      'floor': out['tfidf'].get('test_macro_f1', float('nan')), 'plan': out['plan'], 'speed': out['speed'],
      'stage1': out['stage1']['counts'], 'stage2': out['stage2']['counts'], 'params': ex['params']}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--time-budget", type=float, default=600)
    p.add_argument("--model", default="minilm")
    a = p.parse_args()
    rows = []
    for r in range(a.runs):
        d = tempfile.mkdtemp(prefix="demo_budget_")
        load0, t = os.getloadavg()[0], time.time()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, f"sqlite:///{d}/optuna.db", d, str(a.time_budget), a.model], capture_output=True, text=True
        )
        wall = time.time() - t
        print(proc.stdout, end="")
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        res = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
        rows.append({**res, "wall": wall})
        print(
            f"run {r + 1}: {wall:.0f}s wall (budget {a.time_budget:.0f}s; load {load0:.1f} -> {os.getloadavg()[0]:.1f}), "
            f"test macro-F1 {res['test_mean']:.4f} ± {res['test_std']:.4f}, floor {res['floor']:.4f}, "
            f"lift {res['test_mean'] - res['floor']:+.4f}",
            flush=True,
        )
    if rows:
        import numpy as np

        print(
            f"\n{len(rows)} run(s): wall {np.mean([r['wall'] for r in rows]):.0f}s (max {max(r['wall'] for r in rows):.0f}s), "
            f"test macro-F1 {np.mean([r['test_mean'] for r in rows]):.4f} (runs: {', '.join(format(r['test_mean'], '.4f') for r in rows)}), "
            f"lift {np.mean([r['test_mean'] - r['floor'] for r in rows]):+.4f}"
        )


if __name__ == "__main__":
    main()
