"""Pinned numeric kernels for the synthetic generator: the environment, NumPy obeying it, the one restart."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ipoke.data.synthetic import kernels

REPO = Path(__file__).resolve().parents[1]
x86_only = pytest.mark.skipif(kernels.pinned_kernel_env() is None, reason="needs an x86-64 CPU with AVX2/FMA")


@x86_only
def test_env_pins_openblas_and_disables_only_numpy_features_above_avx2():
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    env = kernels.pinned_kernel_env()
    assert env["OPENBLAS_CORETYPE"] == "Haswell"
    disabled = [f for f in env["NPY_DISABLE_CPU_FEATURES"].split(",") if f]
    assert kernels.NUMPY_REQUIRED not in disabled
    assert all(__cpu_features__[f] for f in disabled)  # never one this CPU lacks: NumPy would refuse it
    above = __cpu_dispatch__[__cpu_dispatch__.index(kernels.NUMPY_REQUIRED) + 1 :]
    assert set(disabled) == {f for f in above if __cpu_features__[f]}


@x86_only
def test_numpy_started_with_the_env_runs_without_the_disabled_features():
    env = {**os.environ, **kernels.pinned_kernel_env()}
    code = (
        "from numpy._core._multiarray_umath import __cpu_features__ as f; import json; print(json.dumps(f))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    features = json.loads(out.stdout)
    assert features[kernels.NUMPY_REQUIRED]
    for f in filter(None, env["NPY_DISABLE_CPU_FEATURES"].split(",")):
        assert not features[f], f


def test_no_pinning_off_x86(monkeypatch):
    monkeypatch.setattr(kernels.platform, "machine", lambda: "arm64")
    assert kernels.pinned_kernel_env() is None


def test_without_pinning_the_stage_goes_on_and_says_so(monkeypatch, caplog):
    monkeypatch.delenv(kernels.PINNED_FLAG, raising=False)
    monkeypatch.setattr(kernels, "pinned_kernel_env", lambda: None)
    monkeypatch.setattr(kernels.os, "execve", lambda *a: pytest.fail("must not restart"))
    with caplog.at_level(logging.WARNING, logger="ipoke"):
        kernels.restart_with_pinned_kernels("stages.download")
    assert "may differ from another machine" in caplog.text


@x86_only
def test_restarts_once_with_the_pinned_env_and_the_same_arguments(tmp_path):
    (tmp_path / "probe_restart.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys
            print("start", flush=True)
            from ipoke.data.synthetic.kernels import restart_with_pinned_kernels
            restart_with_pinned_kernels("probe_restart")
            keys = ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "IPOKE_PINNED_KERNELS")
            print(json.dumps({"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in keys}}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != kernels.PINNED_FLAG}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-m", "probe_restart", "--flag", "x"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert lines.count("start") == 2  # the original process and its one restart
    report = json.loads(lines[-1])
    assert report["argv"] == ["--flag", "x"]
    assert report["env"] == {**kernels.pinned_kernel_env(), kernels.PINNED_FLAG: "1"}
