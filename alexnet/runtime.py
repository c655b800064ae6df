"""How the numerical libraries run: the bit-identity mode, thread count and determinism switches.

Bit identity (`numerics.bit_identity`, README "Exact reruns"): the same params give the same bits
on every x86-64 CPU with AVX2, Intel or AMD, AVX2 or AVX-512. Each library picks its kernels from
the CPU it finds, and kernels of different vector widths sum in different orders, so each is
pinned to one code path (measured in benchmarks/bench_numerics.py; tests/test_runtime.py trains
under different starting environments and compares the weights):

- torch's own kernels: `ATEN_CPU_CAPABILITY=avx2` (the AVX2 path on AVX-512 CPUs too);
- MKL, torch's BLAS: `MKL_CBWR=COMPATIBLE`, the only reproducibility branch MKL honours on AMD as
  on Intel (its AVX2 branch falls back to per-CPU dispatch on AMD), with a fixed thread count;
- oneDNN (mkldnn) off: its kernels and blocking follow the CPU's ISA and cache sizes, so the
  convolutions run as ATen's im2col + MKL GEMM instead; NNPACK off for the same reason;
- OpenBLAS (numpy, scipy, scikit-learn): `OPENBLAS_CORETYPE=Haswell`; numpy's own loops: its
  AVX-512 targets disabled (`NPY_DISABLE_CPU_FEATURES`);
- one thread count everywhere (`numerics.threads`): ATen splits reductions by thread count.

The environment is read when each library loads, so `pin` runs in `alexnet.cli.run_stage` before a
stage imports torch or numpy; where one was already loaded it re-executes the stage under the
pinned environment. What cannot be pinned is stated: a CUDA run is not covered (cuDNN and cuBLAS
are deterministic per GPU model only), nor a CPU without AVX2, nor another torch, MKL or numpy
build (the versions are in every run record).
"""

from __future__ import annotations

import os
import sys
from typing import Any

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


def configure(cfg: NumericsConfig, deterministic: bool = True) -> None:
    """torch's switches for this process: bit identity's backends and threads, determinism."""
    import torch

    # Set both ways: a process that runs twice (tests, a notebook) gets what this cfg says.
    torch.backends.mkldnn.enabled = not cfg.bit_identity
    torch.backends.nnpack.set_flags(not cfg.bit_identity)
    if cfg.bit_identity:
        torch.set_num_threads(cfg.threads)
    configure_determinism(deterministic)


def configure_determinism(deterministic: bool) -> None:
    """torch.use_deterministic_algorithms and cuDNN switches (torchvision references style)."""
    import torch

    if deterministic:
        # cuBLAS needs a fixed workspace for reproducible GEMMs; read when cuBLAS initialises.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def numerics_record(cfg: NumericsConfig) -> dict[str, Any]:
    """What the run record says about the numerics mode: asked for, and in effect."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    pinned = cfg.bit_identity and not unpinned(cfg) and capability == PINNED_CAPABILITY \
        and not torch.backends.mkldnn.enabled and torch.get_num_threads() == cfg.threads
    return {"bit_identity": cfg.bit_identity, "in_effect": bool(pinned), "threads": torch.get_num_threads(),
            "cpu_capability": capability, "mkldnn": bool(torch.backends.mkldnn.enabled),
            "mkl_cbwr": os.environ.get("MKL_CBWR", "")}


__all__ = ["NUMERICAL_MODULES", "PINNED_CAPABILITY", "configure", "configure_determinism", "numerics_record",
           "pin", "pinned_env", "unpinned"]
