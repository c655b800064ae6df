"""The evaluate stage's files, for the stages after it: data/eval/ and metrics/evaluate.json.

Owns the probability files (`probs_path`, `load_probs`) and the metrics built from them
(`average_probs`, `metrics_from_probs`, `ensemble_metrics`), so that evaluate writes them and
analysis reads them without either importing the other's stage. Paper, Section 6: an ensemble
averages its nets' softmax probabilities, not their logits. Training never imports this module,
so a change here reruns no training.

metrics/evaluate.json holds results only (what `dvc metrics diff` and `dvc exp show` compare),
under stable flat keys: first the headline errors, in this order:
    top1_error, top5_error                                   one net (the first seed), ten crops
    ensemble_top1_error, ensemble_top5_error                 all nets' softmax averaged, ten crops
    center_top1_error, center_top5_error                     one net, the centre crop
    ensemble_center_top1_error, ensemble_center_top5_error   all nets, the centre crop
Errors in percent. Then what the ablation arms are judged on besides the error (alexnet.evaluation.evaluate's
run_measures, RUN_MEASURES below): the first net's centre-crop errors on as many training images
as the evaluation split holds (`train_center_top1_error`, `train_center_top5_error`), and for the
two-column net conv1's colour per column (alexnet.evaluation.kernels). reports/evaluation.json
(not a metric) holds what was evaluated: split, images, classes, nets, members, epochs, dataset,
model, torchvision_weights, input_size, mean, per_class_scheme. `read_evaluation` joins the two into one flat dict, the keys as written
(one error by kind and scheme: `metric_key`, `errors_of`), which the results and report stages
read, and alexnet.claims.sweep reads an experiment's metrics with `errors_of`. Never imports torch, so reading results does not load the
model's libraries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alexnet.errors import PipelineError
from alexnet.evaluation.metrics import SCHEMES, TOP_K, error_rates
from alexnet.fileio import read_json


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


# --------------------------------------------------------------------------- metrics/evaluate.json

# Headline metrics, flat: metrics/evaluate.json holds these keys and nothing else, in this order,
# so that `dvc exp show` leads with them and `dvc metrics diff` compares only results. Ten crops
# (the paper's protocol, Section 4.1) without a prefix; the centre crop and the ensemble prefixed.
HEADLINE_PREFIX = {("single", "ten_crop"): "", ("ensemble", "ten_crop"): "ensemble_",
                   ("single", "center"): "center_", ("ensemble", "center"): "ensemble_center_"}


# After the headline: the first net's measures for the ablation arms (alexnet.evaluation.evaluate.run_measures);
# the conv1 ones only for the two-column net.
RUN_MEASURES = ("train_center_top1_error", "train_center_top5_error", "conv1_colour_column1",
                "conv1_colour_column2", "conv1_column_specialisation")


def headline_metrics(m: dict) -> dict[str, float]:
    """`{"single": {scheme: errors}, "ensemble": ...}` as metrics/evaluate.json's flat keys:
    `top1_error`, `top5_error` (one net, ten crops), `ensemble_top1_error`, `ensemble_top5_error`,
    `center_top1_error`, `center_top5_error`, `ensemble_center_top1_error`, `ensemble_center_top5_error`."""
    # rounded: 100 * k / N is exact to far fewer digits, and 28.999999999999996 helps no reader
    return {f"{prefix}top{k}_error": round(float(m[kind][scheme][f"top{k}_error"]), 6)
            for (kind, scheme), prefix in HEADLINE_PREFIX.items() for k in TOP_K}


def metric_key(kind: str, scheme: str, metric: str) -> str:
    """metrics/evaluate.json's key for one error: metric_key("ensemble", "center", "top1_error")
    is `ensemble_center_top1_error`."""
    return HEADLINE_PREFIX[(kind, scheme)] + metric


def errors_of(evaluation: dict | None, kind: str = "single", scheme: str = "ten_crop") -> dict[str, float] | None:
    """`{"top1_error", "top5_error"}` of one kind and scheme from metrics/evaluate.json's flat keys
    (read_evaluation's result, or an experiment's metrics in `dvc exp show`); None where absent."""
    try:
        return {f"top{k}_error": float(evaluation[metric_key(kind, scheme, f"top{k}_error")]) for k in TOP_K}
    except (KeyError, TypeError, ValueError):
        return None


def read_evaluation(metrics_path: str | Path, descriptor_path: str | Path | None = None) -> dict:
    """What the evaluate stage wrote, as one flat dict: what it evaluated (reports/evaluation.json:
    split, images, classes, nets, members, epochs, dataset, model, ...) and metrics/evaluate.json's
    keys as they are (headline_metrics; one error: metric_key or errors_of).

    The one reader of both files; the results and report stages go through it, alexnet.claims.sweep
    through errors_of."""
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        raise PipelineError(f"{metrics_path} not found: run the evaluate stage first (`dvc repro evaluate`)")
    flat = read_json(metrics_path)
    descriptor: dict = {}
    if descriptor_path is not None:
        descriptor_path = Path(descriptor_path)
        if not descriptor_path.is_file():
            raise PipelineError(f"{descriptor_path} not found: run the evaluate stage first (`dvc repro evaluate`)")
        descriptor = read_json(descriptor_path)
    missing = [metric_key(kind, scheme, f"top{k}_error") for kind, scheme in HEADLINE_PREFIX for k in TOP_K
               if metric_key(kind, scheme, f"top{k}_error") not in flat]
    if missing:
        raise PipelineError(f"{metrics_path} lacks {missing[0]!r}: written by older code; rerun `dvc repro evaluate`")
    return {**descriptor, **flat}
