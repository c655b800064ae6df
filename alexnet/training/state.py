"""Training state that both trainers share, the paper net's (alexnet.training.train) and CIFAR-10's
(alexnet.claims.cifar.training):

- what a checkpoint must match to be resumed: the settings that change the arithmetic plus the
  code that computes the weights (`code_fingerprint`), compared key by key (`differences`, which
  also says what differs);
- the process's RNG states for an exact resume (`rng_state`, `set_rng_state`), the streams' seeds
  coming from alexnet.runtime.seeds.

The learning rate is set one way, alexnet.training.optim.set_lr (each group at its `lr_mult`).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alexnet.pipeline import imports

# Modules that never change a weight: error types, atomic writes, the run record and its
# provenance, the output paths and the package indexes (alexnet.pipeline.imports reads the imports).
NOT_WEIGHTS = frozenset({"alexnet/errors.py", "alexnet/fileio.py", "alexnet/pipeline/imports.py",
                         "alexnet/pipeline/provenance.py", "alexnet/pipeline/records.py", "alexnet/pipeline/layout.py"})
# Every stage pins the numerics first (alexnet.cli), so its code decides the bits too.
PINNING = "alexnet/runtime/pinning.py"


def weight_code(entry: str | Path) -> list[str]:
    """The modules whose source decides the weights a trainer computes: what `entry` (a module
    file) and the numerics' pinning import, but NOT_WEIGHTS (root-relative paths, sorted)."""
    entry = Path(entry).resolve()
    modules = imports.closure(entry) | imports.closure(imports.ROOT / PINNING) | {
        entry.relative_to(imports.ROOT).as_posix()}
    return sorted(m for m in modules - NOT_WEIGHTS if not imports.runs_nothing(imports.ROOT / m))


def code_fingerprint(entry: str | Path) -> dict[str, str]:
    """SHA-256 of each weight_code module's source, by its path in the package's folder."""
    return {name: hashlib.sha256((imports.ROOT / name).read_bytes()).hexdigest() for name in weight_code(entry)}


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """`key: old -> new` for every leaf of two nested identities that differs (dotted keys, sorted)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += differences(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict[str, Any]:
    """This process's RNG states in a form `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
