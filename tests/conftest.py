"""Shared fixtures: a small generated ReDSM5 corpus and the environment every test process gets."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DMB_PRECISION", "fp32")  # tiny models: keep runs comparable and cheap on any CPU

PYTHON = sys.executable
PG_URL = os.environ.get("DMB_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A 240-post demo corpus in ReDSM5 format, generated once per test session."""
    from dataaug_multi_both.demo import generate_demo_corpus

    return generate_demo_corpus(tmp_path_factory.mktemp("demo"), n_posts=240, seed=0)


def run_cli(module: str, *args: str, env: dict | None = None, timeout: int = 600):
    """Run `python -m dataaug_multi_both.<module> ARGS` and return the completed process."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [PYTHON, "-m", f"dataaug_multi_both.{module}", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )


def one_error_line(proc) -> str:
    """Assert a command failed on bad input the way users rely on: exit 2, one `error:` line, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines and lines[-1].startswith("error: "), proc.stderr
    return lines[-1]
