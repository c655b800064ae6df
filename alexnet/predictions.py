"""data/eval/'s layout and the ensemble arithmetic over it: saved softmax probabilities per net.

Owns the probability files (`probs_path`, `load_probs`) and the metrics built from them
(`average_probs`, `metrics_from_probs`, `ensemble_metrics`), so that evaluate writes them and
analysis reads them without either importing the other's stage. Paper, Section 6: an ensemble
averages its nets' softmax probabilities, not their logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alexnet.metrics import SCHEMES, error_rates


def probs_path(eval_dir: str | Path, tag: str, scheme: str) -> Path:
    """`data/eval/probs-<tag>-<scheme>.npy`; tag is `seed<N>` (or `torchvision`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    return Path(eval_dir) / f"probs-{tag}-{scheme}.npy"


def load_probs(path: str | Path) -> np.ndarray:
    """A saved probability file as float32 [N, C]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (run `dvc repro evaluate`)")
    return np.load(path).astype(np.float32)


def average_probs(members: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's prediction: the mean of its nets' softmax probabilities (paper, Section 6)."""
    if not members:
        raise ValueError("an ensemble needs at least one net")
    shape = members[0].shape
    for m in members:
        if m.shape != shape:
            raise ValueError(f"ensemble members disagree in shape: {m.shape} vs {shape}")
    return np.mean(np.stack([np.asarray(m, dtype=np.float32) for m in members]), axis=0)


def metrics_from_probs(prob_files: Sequence[str | Path], labels: np.ndarray) -> dict[str, float]:
    """Top-1/top-5 error of the ensemble of the nets whose saved probabilities are `prob_files`
    (one file = that net alone)."""
    return error_rates(average_probs([load_probs(p) for p in prob_files]), labels)


def ensemble_metrics(eval_dir: str | Path, tags: Sequence[str]) -> dict:
    """`{"single": {scheme: errors}, "ensemble": {scheme: errors}}` from the files in `eval_dir`:
    single = the first tag's net, ensemble = all of `tags` averaged."""
    eval_dir = Path(eval_dir)
    labels = np.load(eval_dir / "labels.npy")
    return {
        "single": {s: metrics_from_probs([probs_path(eval_dir, tags[0], s)], labels) for s in SCHEMES},
        "ensemble": {s: metrics_from_probs([probs_path(eval_dir, t, s) for t in tags], labels)
                     for s in SCHEMES},
    }
