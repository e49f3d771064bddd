"The AMP probe and dmb-doctor: clean fallbacks, one-line errors, JSON that parses, a --help that does not wait for torch."

import json
import os
import subprocess
import sys
import time
import warnings

import pytest

from dataaug_multi_both import amp
from dataaug_multi_both.core import UserError

KEYS = {
    "python",
    "torch",
    "cuda_available",
    "cuda_version",
    "gpu_name",
    "gpu_memory_gb",
    "compute_capability",
    "bf16_supported",
    "bf16_speedup",
    "fp16_supported",
    "cpu_threads",
    "cpu_count",
    "cpu_model",
    "optuna",
    "transformers",
}


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch):
    monkeypatch.delenv("DMB_PRECISION", raising=False)
    monkeypatch.setenv("DMB_AMP_CACHE", "off")
    amp._WARNED.clear()


@pytest.fixture(scope="module")
def info():
    return amp.probe(benchmark=False)


def _env():
    return {**os.environ, "DMB_AMP_CACHE": "off", "DMB_PRECISION": ""}


def test_fp16_on_cpu_falls_back_to_fp32_with_reason_and_one_warning(info):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p = amp.resolve_precision("fp16", "cpu", info=info)
        amp.resolve_precision("fp16", "cpu", info=info)
    assert (p.name, p.autocast, p.device) == ("fp32", False, "cpu")
    assert "fp16" in p.reason and "falling back to fp32" in p.reason
    assert len(w) == 1 and "falling back to fp32" in str(w[0].message)


def test_bf16_on_cpu_without_bf16_falls_back(info):
    with pytest.warns(RuntimeWarning, match="no CPU bf16 autocast"):
        p = amp.resolve_precision(
            "bf16", "cpu", info={**info, "cpu_bf16_autocast": False}
        )
    assert p.name == "fp32" and "falling back to fp32" in p.reason


def test_auto_on_cpu_follows_the_measured_speedup(info):
    fast = {**info, "cpu_bf16_autocast": True, "bf16_speedup": 1.5}
    slow = {**info, "cpu_bf16_autocast": True, "bf16_speedup": 0.6}
    assert amp.resolve_precision("auto", "cpu", info=fast).name == "bf16"
    assert amp.resolve_precision("auto", "cpu", info=slow).name == "fp32"


def test_auto_on_cuda_prefers_bf16_then_fp16(info):
    gpu = {
        **info,
        "cuda_available": True,
        "gpu_name": "GPU",
        "compute_capability": "8.0",
        "bf16_supported": True,
    }
    assert amp.resolve_precision("auto", info=gpu).name == "bf16"
    old = {**gpu, "compute_capability": "7.0", "bf16_supported": False}
    p = amp.resolve_precision("auto", "cuda:0", info=old)
    assert (p.name, p.device, p.device_type) == ("fp16", "cuda:0", "cuda")


@pytest.mark.parametrize("bad", ["float16", "half", "fp8", ""])
def test_unknown_precision_is_a_user_error(bad):
    with pytest.raises(UserError, match="unknown precision"):
        amp.resolve_precision(bad, "cpu")


def test_env_var_forces_and_is_checked(monkeypatch, info):
    monkeypatch.setenv("DMB_PRECISION", "fp32")
    p = amp.resolve_precision(
        "bf16", "cpu", info={**info, "cpu_bf16_autocast": True, "bf16_speedup": 2.0}
    )
    assert p.name == "fp32" and p.reason.startswith("DMB_PRECISION=fp32")
    monkeypatch.setenv("DMB_PRECISION", "double")
    with pytest.raises(UserError, match="DMB_PRECISION"):
        amp.resolve_precision("auto", "cpu")


def test_cuda_device_without_cuda_is_a_user_error(info):
    with pytest.raises(UserError, match="sees no CUDA GPU"):
        amp.resolve_precision("auto", "cuda", info={**info, "cuda_available": False})


def test_grad_scaler_only_for_fp16_on_cuda():
    import torch

    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        assert not amp.make_grad_scaler(
            amp.Precision(name, dtype, "cpu", name != "fp32", "")
        ).is_enabled()


def test_doctor_json_exit_code_and_keys():
    r = subprocess.run(
        [sys.executable, "-m", "dataaug_multi_both.cli.doctor", "--json", "--no-bench"],
        check=False,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert KEYS <= set(out)
    assert (
        out["precision"]["name"] in ("fp32", "bf16", "fp16")
        and out["precision"]["reason"]
    )


def test_doctor_bad_device_is_one_line_exit_2():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataaug_multi_both.cli.doctor",
            "--no-bench",
            "--device",
            "tpu",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: unknown device 'tpu': use cpu or cuda (cuda:N for one GPU)"
    ]


def test_doctor_help_is_fast_and_does_not_import_torch():
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "dataaug_multi_both.cli.doctor", "--help"],
        check=False,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    elapsed = time.perf_counter() - t
    assert (
        r.returncode == 0
        and "usage: dmb-doctor" in r.stdout
        and "--no-bench" in r.stdout
    )
    assert elapsed < 10, (
        f"--help took {elapsed:.1f}s"
    )  # generous for a busy CI box; torch alone is > 1s idle
    code = "import sys; import dataaug_multi_both.cli.doctor; print('torch' in sys.modules)"
    r = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert r.stdout.strip() == "False", "importing the doctor must not import torch"
