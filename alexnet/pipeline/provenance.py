"""Provenance: which revision of the code made a file, and what decides whether a rerun is bit-identical.

Owns the one definition of a revision's cleanliness (`git_revision`, used by the training run
records and the report), the facts a run record keeps about bit-identity (`bit_identity`), and the
machine and library descriptions (`hardware`, `library_versions`, `device_name`, `training_versions`).

Clean or dirty. A revision is `<commit>+dirty` when a tracked file differs from that commit,
*except* the pipeline's own outputs: every path dvc.yaml declares as an out, metric or plot, and
dvc.lock. `dvc repro` rewrites those before the last stages run, so counting them would call every
run dirty (the report said `+dirty` of every revision); a changed params.yaml, dvc.yaml or module
still counts, and the changed paths are listed (`dirty_paths`). Untracked files do not count.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from alexnet.pipeline import layout

DIRTY = "+dirty"
LIBRARIES = ("torch", "torchvision", "numpy", "pillow", "dvc", "dvclive")


def _git(args: list[str], cwd: Path | None) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=30,
                          cwd=cwd).stdout


def dirty_paths(cwd: str | Path | None = None) -> list[str]:
    """Tracked files that differ from HEAD, the pipeline's outputs left out (see the module
    docstring); [] outside a git checkout or without git."""
    cwd = Path(cwd) if cwd is not None else None
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], cwd).strip())
        excludes = []
        for pattern in layout.declared_outputs(top / "dvc.yaml"):
            excludes += [f":(top,exclude,glob){pattern}", f":(top,exclude,glob){pattern}/**"]
        status = _git(["status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excludes], cwd)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in status.splitlines() if line.strip()]


def head_commit(cwd: str | Path | None = None) -> str:
    """HEAD's commit hash; '' outside a git checkout or without git."""
    try:
        return _git(["rev-parse", "HEAD"], Path(cwd) if cwd else None).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_revision(cwd: str | Path | None = None) -> str:
    """HEAD's commit, with '+dirty' when dirty_paths is not empty; 'unknown' outside a git checkout."""
    return revision_and_dirty_paths(cwd)[0]


def revision_and_dirty_paths(cwd: str | Path | None = None) -> tuple[str, list[str]]:
    """git_revision and dirty_paths from one `git status` (a run record wants both)."""
    rev = head_commit(cwd)
    if not rev:
        return "unknown", []
    dirty = dirty_paths(cwd)
    return rev + (DIRTY if dirty else ""), dirty


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile")  # what kernels dispatch on


def cpu_identity() -> dict[str, object]:
    """What a library that dispatches by CPU sees: the model name, the vendor string and the
    vector-ISA flags among ISA_FLAGS (/proc/cpuinfo; empty where it cannot be read)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    return {"cpu": cpu_name(), "vendor": fields.get("vendor_id", platform.processor()),
            "isa": [f for f in ISA_FLAGS if f in flags]}


NO_TORCH = "not queried (the process runs no torch)"


def hardware() -> dict[str, str]:
    """This machine's CPU and GPUs, by name. The GPUs are asked of torch only where the process has
    imported it already: a torch-free stage (download, prepare, stats) stays torch-free, and its
    record says NO_TORCH rather than a GPU it never used."""
    out = {"cpu": f"{cpu_name()} ({os.cpu_count()} logical cores)"}
    torch = sys.modules.get("torch")
    if torch is None:
        out["gpu"] = NO_TORCH
    elif torch.cuda.is_available():
        out["gpu"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        out["gpu"] = "none"
    return out


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def training_versions() -> dict[str, str]:
    """The libraries a trained net's info.json names (in model.pt too: keep the keys and their order)."""
    import numpy as np
    import torch
    import torchvision

    import alexnet

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "dvclive": version("dvclive"), "alexnet": alexnet.__version__,
            "cuda": torch.version.cuda or "", "cudnn": str(torch.backends.cudnn.version() or "")}


def device_name(device: Any, world_size: int) -> str:
    """What trained a net, as info.json says it: `cuda (<GPU>) x N` or `cpu (<cpu>, T threads) x N`."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}) x {world_size}"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads) x {world_size}"


def bit_identity() -> dict[str, Any]:
    """What decides whether two runs of the same params give the same bits: torch's CPU kernel
    capability (PyTorch's CPU kernels pick AVX2 / AVX-512 code paths, which sum in different
    orders), the CPU, thread count, the determinism switches, CUDA/cuDNN and library versions."""
    import torch

    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
        "cuda": torch.version.cuda or "",
        "cudnn": str(torch.backends.cudnn.version() or ""),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
        "versions": {**library_versions(), "torch": torch.__version__},  # with its build tag (+cpu, +cu130)
    }


__all__ = ["bit_identity", "cpu_name", "device_name", "hardware", "training_versions", "dirty_paths", "git_revision", "head_commit", "library_versions"]
