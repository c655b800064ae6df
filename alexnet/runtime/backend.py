"""How a stage runs torch: its switches, its device, and the one way it reads a .pt file.

- `configure`: bit identity's torch switches (oneDNN and NNPACK off: their kernels and blocking
  follow the CPU's ISA and cache sizes, so the convolutions run as ATen's im2col + MKL GEMM
  instead; a fixed thread count), set after torch loads; the environment it relies on is
  alexnet.runtime.pinning's, set before. What cannot be pinned is stated: a CUDA run is not covered
  (cuDNN and cuBLAS are deterministic per GPU model only), nor a CPU without AVX2, nor another
  torch, MKL or numpy build (the versions are in every run record).
- `configure_determinism`: torch.use_deterministic_algorithms and cuDNN's switches.
- `choose_device`: auto, cpu or cuda, one behaviour for every stage and one error for cuda
  without a GPU.
- `torch_load`: torch.load with weights_only=True, a missing or foreign file a PipelineError.

Used by the stages that run a net: train, evaluate, analyze, cifar.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alexnet.config import NumericsConfig
from alexnet.errors import PipelineError
from alexnet.pipeline.provenance import cpu_identity
from alexnet.runtime.pinning import PINNED_CAPABILITY, unpinned

if TYPE_CHECKING:
    import torch


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
            "mkl_cbwr": os.environ.get("MKL_CBWR", ""), **cpu_identity()}


def choose_device(requested: str, param: str, local_rank: int = 0) -> torch.device:
    """The device a stage runs its nets on: `requested` is auto (the GPU when there is one), cpu or
    cuda (the GPU `local_rank`); cuda without a GPU is a PipelineError naming `param`."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"{param} is cuda but no CUDA device is available (use auto or cpu)")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise PipelineError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices")
    return torch.device("cuda", local_rank)


def load_failure(e: Exception) -> str:
    """One line saying why torch.load failed, without torch's advice to load with
    weights_only=False (never safe for a file of unknown origin, and not what the user needs)."""
    text = str(e).strip()
    if "weights_only" in text or "Weights only load failed" in text:
        return "it holds objects other than tensors, not one of our files"
    first = text.splitlines()[0] if text else type(e).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def torch_load(path: str | Path, map_location: Any = "cpu", what: str = "model file", hint: str = "") -> Any:
    """torch.load with weights_only=True: the one way the package reads a .pt file (nets,
    torchvision weights, checkpoints); a missing or unreadable file is a PipelineError naming it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise PipelineError(f"{what} {path} cannot be read ({load_failure(e)}){hint}") from e


__all__ = ["choose_device", "configure", "configure_determinism", "load_failure", "numerics_record", "torch_load"]
