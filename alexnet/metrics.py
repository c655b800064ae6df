"""The error measures every stage shares, and the evaluation's files: metrics/evaluate.json's keys.

Top-k error (`topk_error`, `error_rates`, `true_class_rank`, `topk_hits`): training's curves and
the evaluation count hits by the same rule. Ties: a class scoring exactly as high as the true class
counts against the net (the true class is in the top k only if fewer than k other classes score >=
it), so a constant output has 100% error rather than a lucky 1/k, whatever the classes' order.

metrics/evaluate.json holds the headline errors and nothing else (what `dvc metrics diff` and
`dvc exp show` compare), under stable flat keys in this order:
    top1_error, top5_error                                   one net (the first seed), ten crops
    ensemble_top1_error, ensemble_top5_error                 all nets' softmax averaged, ten crops
    center_top1_error, center_top5_error                     one net, the centre crop
    ensemble_center_top1_error, ensemble_center_top5_error   all nets, the centre crop
Errors in percent. records/evaluate.json (a run record, not a metric) holds what was evaluated:
split, images, nets, members, epochs, dataset, model, torchvision_weights, input_size, mean,
per_class_scheme, device. `read_evaluation` joins the two into the nested form
`["single" | "ensemble"]["center" | "ten_crop"]["top1_error" | "top5_error"]` that the results,
report and claims code use. Never imports torch (it accepts torch tensors when the caller has
torch loaded), so reading results does not load the model's libraries.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from alexnet.errors import PipelineError
from alexnet.fileio import read_json

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


# --------------------------------------------------------------------------- metrics/evaluate.json

# Headline metrics, flat: metrics/evaluate.json holds these keys and nothing else, in this order,
# so that `dvc exp show` leads with them and `dvc metrics diff` compares only results. Ten crops
# (the paper's protocol, Section 4.1) without a prefix; the centre crop and the ensemble prefixed.
HEADLINE_PREFIX = {("single", "ten_crop"): "", ("ensemble", "ten_crop"): "ensemble_",
                   ("single", "center"): "center_", ("ensemble", "center"): "ensemble_center_"}


def headline_metrics(m: dict) -> dict[str, float]:
    """`{"single": {scheme: errors}, "ensemble": ...}` as metrics/evaluate.json's flat keys:
    `top1_error`, `top5_error` (one net, ten crops), `ensemble_top1_error`, `ensemble_top5_error`,
    `center_top1_error`, `center_top5_error`, `ensemble_center_top1_error`, `ensemble_center_top5_error`."""
    # rounded: 100 * k / N is exact to far fewer digits, and 28.999999999999996 helps no reader
    return {f"{prefix}top{k}_error": round(float(m[kind][scheme][f"top{k}_error"]), 6)
            for (kind, scheme), prefix in HEADLINE_PREFIX.items() for k in TOP_K}


def nested_metrics(flat: dict) -> dict:
    """The inverse of headline_metrics: `{"single": {"center": {"top1_error", ...}, ...}, ...}`."""
    out: dict = {kind: {} for kind in KINDS}
    for (kind, scheme), prefix in HEADLINE_PREFIX.items():
        out[kind][scheme] = {f"top{k}_error": flat[f"{prefix}top{k}_error"] for k in TOP_K}
    return out


def read_evaluation(metrics_path: str | Path, record_path: str | Path | None = None) -> dict:
    """What the evaluate stage wrote, as one dict: the run record's descriptors (split, images,
    nets, members, epochs, dataset, model, ...) and the errors nested as
    `["single" | "ensemble"]["center" | "ten_crop"]["top1_error" | "top5_error"]`.

    The one reader of metrics/evaluate.json (flat headline keys, see headline_metrics) and
    records/evaluate.json; the results, report and claims stages go through it."""
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        raise PipelineError(f"{metrics_path} not found: run the evaluate stage first (`dvc repro evaluate`)")
    flat = read_json(metrics_path)
    record: dict = {}
    if record_path is not None:
        record_path = Path(record_path)
        if not record_path.is_file():
            raise PipelineError(f"{record_path} not found: run the evaluate stage first (`dvc repro evaluate`)")
        record = read_json(record_path)
    try:
        nested = nested_metrics(flat)
    except KeyError as e:
        raise PipelineError(f"{metrics_path} lacks {e.args[0]!r}: written by older code; rerun `dvc repro evaluate`") from e
    return {**record, **nested}
