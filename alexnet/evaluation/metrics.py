"""The error measures every stage shares: training's curves and the evaluation.

Top-k error (`topk_error`, `error_rates`, `true_class_rank`, `topk_hits`): training's curves and
the evaluation count hits by the same rule. Ties: a class scoring exactly as high as the true class
counts against the net (the true class is in the top k only if fewer than k other classes score >=
it), so a constant output has 100% error rather than a lucky 1/k, whatever the classes' order.
Training imports this module, so it holds the measures only; the evaluation's files (data/eval/,
metrics/evaluate.json) are alexnet.evaluation.predictions'. Never imports torch (it accepts torch tensors
when the caller has torch loaded).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from alexnet.errors import PipelineError

KINDS = ("single", "ensemble")
SCHEMES = ("center", "ten_crop")
TOP_K = (1, 5)


# --------------------------------------------------------------------------- error measures


def _is_tensor(x: Any) -> bool:
    # torch is never imported here: a tensor can only exist if the caller loaded torch
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _numpy(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu()) if _is_tensor(x) else np.asarray(x)


def topk_error(scores: Any, labels: Any, k: int) -> float:
    """Top-k error in percent of `scores` [N, C] (probabilities or logits, numpy or torch) against
    `labels` [N]. The true class is in the top k when fewer than k *other* classes score >= it
    (ties count against the net, see the module docstring).
    """
    scores, labels = _numpy(scores), _numpy(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [N, C] and labels [N]; got {scores.shape} and {labels.shape}")
    if scores.shape[0] == 0:
        raise ValueError("no images to score")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}); got {labels.min()}..{labels.max()}")
    if not np.isfinite(scores).all():
        raise PipelineError("the scores contain NaN or infinity: the net diverged or the inputs are broken")
    return float(100.0 * np.mean(true_class_rank(scores, labels) >= k))


def true_class_rank(scores: Any, labels: Any) -> Any:
    """Per image, how many other classes score >= the true one (ties count against the net).

    The image is top-k correct when this is < k. Numpy or torch (on any device, no sync): the
    one definition behind both the evaluation and the training curves.
    """
    if _is_tensor(scores):
        true = scores.gather(1, labels[:, None])
    else:
        true = np.take_along_axis(scores, labels[:, None], axis=1)
    return (scores >= true).sum(1) - 1


def topk_hits(logits: Any, labels: Any) -> tuple[Any, Any]:
    """Top-1 and top-5 hits (counts, in the inputs' array type), by true_class_rank's rule."""
    rank = true_class_rank(logits, labels)
    return (rank < 1).sum(), (rank < 5).sum()


def error_rates(scores: Any, labels: Any) -> dict[str, float]:
    """`{"top1_error", "top5_error"}` in percent (top-5 of fewer than 5 classes is 0 by definition)."""
    return {f"top{k}_error": topk_error(scores, labels, k) for k in TOP_K}
