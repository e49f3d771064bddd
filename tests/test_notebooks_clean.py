"Notebooks open in JupyterLab without asking for a kernel, and their saved outputs name nothing of the machine that ran them."
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from nb_outputs import fix, problems  # noqa: E402

NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_kernelspec_and_clean_outputs(nb):
    found = problems(json.loads(nb.read_text(encoding="utf-8")))
    assert not found, f"{nb.name}: {found}; run `python tools/nb_outputs.py {nb.relative_to(ROOT)}` (then nbdev_clean)"


def test_fix_removes_what_the_check_refuses():
    nb = {"metadata": {}, "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [
        {"output_type": "stream", "name": "stderr", "text": [
            "/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n",
            "  from .autonotebook import tqdm as notebook_tqdm\n"]},
        {"output_type": "stream", "name": "stderr", "text": ["\x1b[32m[I 2026-11-28 15:24:03,591]\x1b[0m A new study created\n", "kept\n"]},
        {"output_type": "execute_result", "execution_count": None, "metadata": {},
         "data": {"text/plain": ["PosixPath('/root/.cache/x/amp.json')"]}},
        {"output_type": "stream", "name": "stdout", "text": ["report: /tmp/tmpwv600_y1/evaluation_report.json\n"]},
        {"output_type": "display_data", "metadata": {}, "data": {"text/plain": ["HBox(children=(FloatProgress(value=0.0),))"],
                                                                  "application/vnd.jupyter.widget-view+json": {"model_id": "x"}}}]}]}
    assert len(problems(nb)) == 6
    out = fix(nb)
    assert problems(out) == []
    outs = out["cells"][0]["outputs"]
    assert [o.get("text") or o["data"]["text/plain"] for o in outs] == [
        ["kept\n"], ["PosixPath('~/.cache/x/amp.json')"], ["report: <tmp>/evaluation_report.json\n"]]


def test_nbdev_clean_keeps_the_kernelspec(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps(fix({"cells": [], "metadata": {"foo": 1}, "nbformat": 4, "nbformat_minor": 5})))
    subprocess.run([str(Path(sys.executable).parent / "nbdev_clean"), "--fname", str(nb)], check=True, cwd=ROOT)
    assert json.loads(nb.read_text())["metadata"] == {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
