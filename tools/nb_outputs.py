#!/usr/bin/env python
"""Keep saved notebook outputs free of this machine: no temporary or home paths, no Optuna log lines, no tqdm warnings or saved progress-bar widgets;
and give every notebook the python3 kernelspec, so JupyterLab opens it without asking for a kernel.

    python tools/nb_outputs.py [NOTEBOOK ...]          # fix in place (default: every nbs/*.ipynb)
    python tools/nb_outputs.py --check [NOTEBOOK ...]  # list what is wrong, exit 1 if anything is

`tools/nbsync run`, `tools/nbsync to-nb` and `tools/run_notebooks.py --save` run the fix after saving;
`tests/test_notebooks_clean.py` runs the check as part of the test command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WIDGET = "application/vnd.jupyter.widget-view+json"  # a live widget (a tqdm bar in JupyterLab): nothing to show once saved
KERNELSPEC = {"display_name": "python3", "language": "python", "name": "python3"}

# a whole output line that is noise from this machine's libraries
NOISE_LINE = re.compile(
    r"^(\x1b\[\d+m)?\[[IWD] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\]"  # Optuna's logger: [I 2026-11-28 15:24:03,591] ...
    r"|TqdmWarning|IProgress not found|from \.autonotebook import tqdm as notebook_tqdm"
)
# a path that names this machine, replaced by a neutral placeholder
PATHS = [
    (re.compile(r"/(?:private/)?tmp/(?:pytest-of-[^/\s'\"]+/)?[A-Za-z0-9_.-]*tmp[A-Za-z0-9_]*"), "<tmp>"),
    (re.compile(r"/tmp/[A-Za-z0-9_.-]+"), "<tmp>"),
    (re.compile(r"/(?:root|home/[^/\s'\"]+)/\.cache"), "~/.cache"),
    (re.compile(r"/[^\s'\"]*/site-packages/"), "<site-packages>/"),
    (re.compile(r"/work/[^\s'\"]*"), "<path>"),
]
# what --check refuses in an output
BAD = re.compile(r"/tmp/|/work/|/root/|/home/|site-packages/|TqdmWarning|IProgress not found|\[[IWD] \d{4}-\d\d-\d\d \d\d:\d\d")


def _texts(o: dict):
    "(container, key) pairs holding an output's text."
    if "text" in o: yield o, "text"
    for k in (o.get("data") or {}):
        if k.startswith("text/") or k == "application/json": yield o["data"], k


def _join(v) -> str:
    return "".join(v) if isinstance(v, list) else v if isinstance(v, str) else json.dumps(v)


def fix(nb: dict) -> dict:
    "Drop noise lines and outputs, neutralise machine paths, set the kernelspec."
    nb.setdefault("metadata", {})["kernelspec"] = dict(KERNELSPEC)
    nb["metadata"].pop("widgets", None)
    for c in nb.get("cells", []):
        keep = []
        for o in c.get("outputs", []):
            if WIDGET in (o.get("data") or {}): continue  # its text/plain is a frozen progress bar: noise once saved
            if o.get("output_type") == "stream":
                lines = [ln for ln in _join(o["text"]).splitlines(keepends=True) if not NOISE_LINE.search(ln)]
                if not "".join(lines).strip(): continue
                o["text"] = lines
            for box, k in _texts(o):
                if k == "application/json": continue
                t = _join(box[k])
                for pat, rep in PATHS: t = pat.sub(rep, t)
                box[k] = t.splitlines(keepends=True) if isinstance(box[k], list) else t
            keep.append(o)
        if "outputs" in c: c["outputs"] = keep
    return nb


def problems(nb: dict) -> list[str]:
    "What --check reports for one notebook."
    out = []
    ks = (nb.get("metadata") or {}).get("kernelspec") or {}
    if ks.get("name") != "python3": out.append("no python3 kernelspec")
    if (nb.get("metadata") or {}).get("widgets"): out.append("saved widget state in the notebook metadata")
    for i, c in enumerate(nb.get("cells", [])):
        for o in c.get("outputs", []):
            if WIDGET in (o.get("data") or {}): out.append(f"cell {i}: a saved widget (it shows as nothing once the kernel is gone)")
            for box, k in _texts(o):
                m = BAD.search(_join(box[k]))
                if m: out.append(f"cell {i}: {m.group(0)!r} in a saved output")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path)
    p.add_argument("--check", action="store_true", help="report, change nothing; exit 1 if any notebook needs fixing")
    a = p.parse_args(argv)
    files = a.notebooks or sorted((REPO / "nbs").glob("*.ipynb"))
    bad = 0
    for f in files:
        nb = json.loads(f.read_text(encoding="utf-8"))
        if a.check:
            for msg in problems(nb):
                print(f"{f}: {msg}"); bad += 1
        else:
            new = json.dumps(fix(nb), indent=1, ensure_ascii=False) + "\n"
            if new != f.read_text(encoding="utf-8"): f.write_text(new, encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
