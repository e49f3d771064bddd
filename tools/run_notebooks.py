#!/usr/bin/env python
"""Run notebooks top to bottom in a real Jupyter kernel (nbclient), as JupyterLab would, slow cells included.

    python tools/run_notebooks.py [NOTEBOOK ...] [--timeout 1800] [--save] [--slow-only]

Without names it runs every notebook in nbs/; with --slow-only, only those with cells flagged `#| slow` (the cells
`nbdev_test` skips: CI runs these here and every other cell through `make test`). Copies are executed (nbs/ is untouched) unless --save is given, which
writes the outputs back and cleans the notebook with nbdev_clean (how the tutorial's figures are saved for the docs).
Prints each notebook's time; exits 1 if any cell raises.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent


def run(path: Path, timeout: int, save: bool) -> float:
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    if save:
        nbformat.write(nb, path)
        subprocess.run([sys.executable, str(REPO / "tools" / "nb_outputs.py"), str(path)], check=True)  # no machine paths or log noise
        subprocess.run([str(Path(sys.executable).parent / "nbdev_clean"), "--fname", str(path)], check=True)
    return time.time() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    p.add_argument("--save", action="store_true", help="write outputs back into the notebooks")
    p.add_argument("--slow-only", action="store_true", help="only notebooks with cells flagged slow")
    a = p.parse_args()
    paths = [Path(n) for n in a.notebooks] or sorted((REPO / "nbs").glob("[0-9]*.ipynb")) + [REPO / "nbs" / "index.ipynb"]
    if a.slow_only:
        paths = [q for q in paths if any(c.cell_type == "code" and c.source.lstrip().startswith("#| slow") for c in nbformat.read(q, as_version=4).cells)]
    failed = []
    for path in paths:
        try:
            print(f"{path.name:28s} {run(path, a.timeout, a.save):7.1f}s", flush=True)
        except Exception as e:  # a failing cell: report it, go on with the others
            print(f"{path.name:28s} FAILED: {str(e).strip().splitlines()[-1][:300]}", flush=True)
            failed.append(path.name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
