"""The paper's ablations as arms: what each changes against params.yaml (the baseline), the
claims it is judged on, and the measure per run each claim is judged by; and the reader of
ablations/results.json, where alexnet.claims.sweep collects the runs' numbers.

What the claims stage needs of the ablations, apart from how they run: alexnet.claims.sweep (the
DVC experiment queue, the sweep, `collect`) imports this module, and claims imports only this
one, so that editing the runner reruns no stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alexnet.errors import PipelineError
from alexnet.fidelity import comparable
from alexnet.fileio import read_json

FORMAT = "alexnet-repro/ablations"
FORMAT_VERSION = 2  # 2: comparability, training records and the run measures per run


@dataclass(frozen=True)
class Measure:
    """A number per run of ablations/results.json, and how an arm's run is set against its baseline's.

    `sign` orients the effect so that positive is the paper's direction: +1 the arm's value minus
    (points) or over (ratio) the baseline's, -1 the baseline's minus or over the arm's, 0 the run's
    own value (a claim about one net, no pairing). `same`: run fields a pair must share.
    """

    key: str
    what: str  # in words, for the claims table
    scale: Literal["points", "ratio"]
    sign: int
    value: Callable[[dict[str, Any]], float | None]
    censored: Callable[[dict[str, Any]], bool] = lambda run: False  # measured, but the run ended first
    same: tuple[str, ...] = ()


def _gap(run: dict[str, Any]) -> float | None:
    val, train = run.get("val_center_top1_error"), run.get("train_center_top1_error")
    return None if val is None or train is None else val - train


MEASURES = {m.key: m for m in (
    Measure("top1", "top-1 error, one net, ten crops: arm - baseline", "points", 1, lambda r: r.get("top1_error")),
    Measure("top5", "top-5 error, one net, ten crops: arm - baseline", "points", 1, lambda r: r.get("top5_error")),
    Measure("overfit", "overfitting: validation minus training top-1 error (centre crop, the net as evaluated: "
            "no dropout or augmentation), arm - baseline", "points", 1, _gap),
    Measure("train-error", "training top-1 error (centre crop, the net as evaluated), arm - baseline", "points", 1,
            lambda r: r.get("train_center_top1_error")),
    # the plateau stop (train.plateau_stop) marks convergence; a run that hit train.epochs first is censored
    Measure("converge", "epochs to converge (until the plateau stop), baseline / arm", "ratio", -1,
            lambda r: r.get("epochs_run") if r.get("converged") else None,
            censored=lambda r: r.get("converged") is False),
    Measure("time", "training time, arm / baseline, on the same device", "ratio", 1,
            lambda r: r.get("train_seconds"), same=("device",)),
    Measure("specialise", "conv1 columns' colour gap beyond chance, points (alexnet.evaluation.kernels), each baseline run",
            "points", 0, lambda r: r.get("conv1_column_specialisation")),
)}


@dataclass(frozen=True)
class Arm:
    """One ablation: params.yaml overrides against the baseline, and what it is judged on."""

    name: str
    overrides: dict[str, Any]
    judged_on: tuple[tuple[str, str], ...]  # (alexnet.paper.CLAIMS key, MEASURES key)
    what: str  # the change in words: for the depth arms, which reading of "remove a layer" it is
    reference: str = "baseline"  # the arm whose same-seed run it is set against


# Up to this many epochs for the convergence pair: enough that the plateau stop, not the budget,
# ends both nets, on the tiny set (whose 8 TINY epochs end every run first) and at the paper's ~90.
CONVERGE_EPOCHS = 120


ARMS: tuple[Arm, ...] = (
    Arm("baseline", {}, (("columns-specialise", "specialise"),),
        "params.yaml as it is: the reference of every arm but no-dropout-converge, and Figure 3's columns in every run"),
    Arm("no-lrn", {"model.lrn": False}, (("lrn-top1", "top1"), ("lrn-top5", "top5")),
        "no local response normalisation"),
    Arm("no-overlap-pool", {"model.overlapping_pool": False},
        (("overlap-top1", "top1"), ("overlap-top5", "top5"), ("overlap-overfit", "overfit")),
        "2x2 stride-2 pooling instead of 3x3 stride 2"),
    # model.groups 1 is the paper's footnote net: half the kernels of conv1-conv4, conv5 and the
    # fc layers kept (alexnet/model/net.py, ONE_GPU_CONV), at the baseline's model.width.
    Arm("one-column", {"model.groups": 1}, (("columns-top1", "top1"), ("columns-top5", "top5"),
                                            ("columns-time", "time")),
        "one column with half the kernels in conv1-conv4; both nets on one device, so the time is "
        "not the paper's two GPUs against one"),
    Arm("no-pca-lighting", {"augment.pca_lighting": False}, (("pca-top1", "top1"),), "no PCA colour augmentation"),
    Arm("no-crops-flips", {"augment.random_crop": False, "augment.flip": False},
        (("crops-flips-overfit", "overfit"),), "trained on the centre crop, never flipped"),
    Arm("no-dropout", {"model.dropout": 0.0}, (("dropout-overfit", "overfit"),), "no dropout in fc6 and fc7"),
    Arm("no-weight-decay", {"train.weight_decay": 0.0}, (("weight-decay-train", "train-error"),), "no weight decay"),
    Arm("no-conv3", {"model.remove_conv": 3}, (("depth-top1", "top1"),),
        "conv3 removed: conv4 takes conv2's maps, each column its own, so the columns first meet in fc6"),
    Arm("no-conv4", {"model.remove_conv": 4}, (("depth-top1", "top1"),),
        "conv4 removed: conv5 takes conv3's 384 maps (the same shapes: nothing else changes)"),
    # With fc6's input kept (model.remove_conv_keep_fc6: true) removing conv5 builds no-conv4's net
    # (conv3's 384 maps, then one 256-map layer), so this arm is the other reading: fc6 grows.
    Arm("no-conv5", {"model.remove_conv": 5, "model.remove_conv_keep_fc6": False}, (("depth-top1", "top1"),),
        "conv5 removed: fc6 takes conv4's 384 maps (384x6x6, more fc6 weights); keeping fc6's 256x6x6 input "
        "instead gives no-conv4's net"),
    # Dropout's cost in iterations needs both nets trained until the plateau stop ends them.
    Arm("baseline-converge", {"train.epochs": CONVERGE_EPOCHS}, (),
        f"the baseline with up to {CONVERGE_EPOCHS} epochs: no-dropout-converge's reference"),
    Arm("no-dropout-converge", {"model.dropout": 0.0, "train.epochs": CONVERGE_EPOCHS},
        (("dropout-converge", "converge"),),
        f"no dropout, up to {CONVERGE_EPOCHS} epochs (both nets until the plateau stop)",
        reference="baseline-converge"),
)
ARMS_BY_NAME = {a.name: a for a in ARMS}


def yaml_value(value: Any) -> str:
    """A value as `dvc exp run -S key=value` expects it (parsed as YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(yaml_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def overrides_text(arm: Arm) -> str:
    """The arm's exact params, as `dvc exp run` sets them."""
    return " ".join(f"-S {k}={yaml_value(v)}" for k, v in arm.overrides.items()) or "(no overrides)"


def read_results(path: str | Path) -> dict[str, Any]:
    """ablations/results.json, checked; a missing file is an empty collection. Runs of a version 1
    file (no comparability recorded) are judged by alexnet.fidelity.comparable from what they hold."""
    path = Path(path)
    if not path.is_file():
        return {"format": FORMAT, "version": FORMAT_VERSION, "runs": []}
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("runs"), list):
        raise PipelineError(f"{path}: not an ablations results file (format {FORMAT!r}); "
                            "rewrite it with `alexnet-ablations collect`")
    for run in data["runs"]:
        if "comparable" not in run:
            fit = comparable(run.get("dataset"), run.get("classes"), run.get("subset"), run.get("epochs"))
            run.update(comparable=fit.ok, comparable_reason=fit.reason)
    return data
