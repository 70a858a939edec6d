"""Run the synthetic generator on the same numeric kernels on every x86-64 CPU, so its bytes are the same.

The physics (OpenBLAS solves and products) and the renderer (NumPy's sin, cos and exp on arrays) pick their
kernels by CPU: on an AVX-512 machine OpenBLAS takes its SkylakeX kernels and NumPy its AVX-512 loops, which
round differently in the last bits from the AVX2 ones, and a rendered edge then falls on the other side of a
pixel. Both libraries choose when they load, so the stage restarts itself once with the choice pinned in the
environment: OpenBLAS's Haswell kernels and NumPy's loops up to X86_V3 (AVX2 + FMA), which every x86-64 CPU
of the last decade runs. On a CPU without them (or another architecture) the generator runs as it is and says
that its bytes may differ from another machine's.
"""

from __future__ import annotations

import logging
import os
import platform
import sys

log = logging.getLogger("ipoke")

PINNED_FLAG = "IPOKE_PINNED_KERNELS"  # set in the restarted process, so it restarts only once
OPENBLAS_CORE = "Haswell"
NUMPY_REQUIRED = "X86_V3"


def pinned_kernel_env() -> dict[str, str] | None:
    """Environment that pins OpenBLAS and NumPy to the AVX2 kernels, or None where that is not possible."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    if not __cpu_features__.get(NUMPY_REQUIRED, False):
        return None
    above = __cpu_dispatch__[__cpu_dispatch__.index(NUMPY_REQUIRED) + 1 :]
    # only what this CPU has: NumPy refuses to disable a feature it did not enable
    disable = [f for f in above if __cpu_features__.get(f, False)]
    return {"OPENBLAS_CORETYPE": OPENBLAS_CORE, "NPY_DISABLE_CPU_FEATURES": ",".join(disable)}


def restart_with_pinned_kernels(module: str) -> None:
    """Restart ``python -m module`` (same arguments) with pinned kernels, unless they are pinned already.

    Call it before any work starts (the process is replaced). Returns where no restart is needed or possible.
    """
    if os.environ.get(PINNED_FLAG):
        return
    env = pinned_kernel_env()
    if env is None:
        log.warning(
            "this CPU (%s) lacks AVX2/FMA: the synthetic videos are generated with its own numeric kernels, "
            "and their bytes may differ from another machine's (dvc.lock's hash of data/raw/synthetic)",
            platform.machine(),
        )
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(
        sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], {**os.environ, **env, PINNED_FLAG: "1"}
    )
