"""The evaluation's files, read and written in one place: metrics/evaluate.json's flat headline keys.

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
report and claims code use. Kept free of torch so that reading results does not depend on the model.
"""

from __future__ import annotations

import json
from pathlib import Path

from alexnet.cli import PipelineError

KINDS = ("single", "ensemble")
SCHEMES = ("center", "ten_crop")
TOP_K = (1, 5)

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
    with metrics_path.open() as f:
        flat = json.load(f)
    record: dict = {}
    if record_path is not None:
        record_path = Path(record_path)
        if not record_path.is_file():
            raise PipelineError(f"{record_path} not found: run the evaluate stage first (`dvc repro evaluate`)")
        with record_path.open() as f:
            record = json.load(f)
    try:
        nested = nested_metrics(flat)
    except KeyError as e:
        raise PipelineError(f"{metrics_path} lacks {e.args[0]!r}: written by older code; rerun `dvc repro evaluate`") from e
    return {**record, **nested}
