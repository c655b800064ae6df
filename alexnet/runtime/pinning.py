"""Bit identity's environment, set before torch or numpy loads (every stage, alexnet.cli.run_stage).

Bit identity (`numerics.bit_identity`, docs/reproducibility.md): the same params give the same bits
on every x86-64 CPU with AVX2, Intel or AMD, AVX2 or AVX-512. Each library picks its kernels from
the CPU it finds, and kernels of different vector widths sum in different orders, so each is
pinned to one code path (measured in benchmarks/bench_numerics.py; tests/test_runtime.py trains
under different starting environments and compares the weights):

- torch's own kernels: `ATEN_CPU_CAPABILITY=avx2` (the AVX2 path on AVX-512 CPUs too);
- MKL, torch's BLAS: `MKL_CBWR=COMPATIBLE`, the only reproducibility branch MKL honours on AMD as
  on Intel (its AVX2 branch falls back to per-CPU dispatch on AMD), with a fixed thread count;
- OpenBLAS (numpy, scipy, scikit-learn): `OPENBLAS_CORETYPE=Haswell`; numpy's own loops: its
  AVX-512 targets disabled (`NPY_DISABLE_CPU_FEATURES`);
- one thread count everywhere (`numerics.threads`): ATen splits reductions by thread count.

The environment is read when each library loads, so `pin` runs in `alexnet.cli.run_stage` before a
stage imports torch or numpy; where one was already loaded it re-executes the stage under the
pinned environment. torch's switches that are set after it loads (oneDNN and NNPACK off, threads)
are alexnet.runtime.backend's `configure`. Torch-free, so that every stage can depend on it without
depending on the torch helpers.
"""

from __future__ import annotations

import os
import sys

from alexnet.config import NumericsConfig

PINNED_CAPABILITY = "AVX2"
# numpy 2.x's dispatch targets above AVX2 (numpy._core._multiarray_umath.__cpu_dispatch__);
# one the running CPU lacks is ignored.
NUMPY_ABOVE_AVX2 = "X86_V4 AVX512_ICL AVX512_SPR"
# Libraries that read the pinned variables when they load.
NUMERICAL_MODULES = ("numpy", "torch", "scipy", "sklearn")


def pinned_env(cfg: NumericsConfig) -> dict[str, str]:
    """The environment variables bit identity sets (empty when it is off)."""
    if not cfg.bit_identity:
        return {}
    threads = str(cfg.threads)
    return {
        "ATEN_CPU_CAPABILITY": PINNED_CAPABILITY.lower(),
        "MKL_CBWR": "COMPATIBLE",
        "MKL_DYNAMIC": "FALSE",
        "OMP_DYNAMIC": "FALSE",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "OPENBLAS_CORETYPE": "Haswell",
        "NPY_DISABLE_CPU_FEATURES": NUMPY_ABOVE_AVX2,
    }


def unpinned(cfg: NumericsConfig) -> dict[str, str]:
    """The pinned variables this process's environment does not have yet."""
    return {k: v for k, v in pinned_env(cfg).items() if os.environ.get(k) != v}


def pin(cfg: NumericsConfig, *, reexec: bool = True) -> None:
    """Set the pinned environment; if a numerical library already loaded without it, start this
    process again under it (`reexec`), so that every library reads it at load."""
    missing = unpinned(cfg)
    if not missing:
        return
    os.environ.update(missing)
    if reexec and any(m in sys.modules for m in NUMERICAL_MODULES):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


__all__ = ["NUMERICAL_MODULES", "PINNED_CAPABILITY", "pin", "pinned_env", "unpinned"]
