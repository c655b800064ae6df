"""What the report reads: where (`ReportInputs`, the stage's command-line paths) and the run as
read from there (`load_runs`: the evaluation and what it evaluated, prepare's counts, analyze's
numbers, each net's info.json and architecture.json, its DVCLive curves). Files only, each a dep
of the report stage in dvc.yaml; a stage that has not run yet reads as empty, and the report
says so. No run record is read (see alexnet.report.render).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from alexnet.evaluation.predictions import read_evaluation
from alexnet.fileio import read_json
from alexnet.model import netstore
from alexnet.pipeline import layout


@dataclass
class ReportInputs:
    """Where the report reads from (the stage's command-line paths)."""

    metrics: Path  # metrics/ (prepare.json, evaluate.json, analyze.json)
    tables: Path  # reports/tables
    figures: Path  # reports/figures
    live: Path  # dvclive/ (train-seed<N>/)
    models: Path  # models/ (seed<N>/info.json, model.pt)
    lock: Path  # dvc.lock
    claims: Path  # reports/claims (stage claims)
    # CIFAR-10 runs (Figure 1): the committed real-data run and stage cifar's, shown as
    # alexnet.claims.cifar.data.shown_run picks (the real one when there is one)
    cifar: list[Path]
    evaluation: Path = Path(layout.EVALUATION)  # what evaluate evaluated (split, images, classes, nets)


@dataclass
class Runs:
    """What was found on disk, loaded once."""

    evaluate: dict = field(default_factory=dict)
    analyze: dict = field(default_factory=dict)
    prepare: dict = field(default_factory=dict)
    # seed -> models/seed<N>/info.json (params, versions, device, epochs: reproducible)
    infos: dict[int, dict] = field(default_factory=dict)
    curves: dict[int, pd.DataFrame] = field(default_factory=dict)  # seed -> epoch x metric
    architecture: dict = field(default_factory=dict)  # the first seed's models/seed<N>/architecture.json


def read_json_or_empty(path: Path) -> dict:
    """A stage's JSON file, or {} when that stage has not run yet (the report then says so)."""
    return read_json(path) if path.is_file() else {}


def read_text_or_none(path: Path) -> str | None:
    """Another stage's Markdown, or None when it has not run yet."""
    return path.read_text() if path.is_file() else None


# --- reading the run ------------------------------------------------------------------------

def read_curves(run_dir: Path) -> pd.DataFrame:
    """DVCLive's per-step TSVs (plots/metrics/**/*.tsv, step = epoch) as one frame, index epoch.

    Columns are the metric names (`train/loss`, `val/top1_error`, `lr`, ...); when a resumed run
    logged a step twice, the last value wins.
    """
    root = run_dir / "plots" / "metrics"
    series = {}
    for tsv in sorted(root.rglob("*.tsv")):
        name = tsv.relative_to(root).with_suffix("").as_posix()
        df = pd.read_csv(tsv, sep="\t")
        value = [c for c in df.columns if c not in ("timestamp", "step")]
        if "step" not in df.columns or len(value) != 1:
            continue
        series[name] = df.groupby("step")[value[0]].last()
    frame = pd.DataFrame(series)
    frame.index.name = "epoch"
    return frame


def _read_evaluation(src: ReportInputs) -> dict:
    """metrics/evaluate.json joined with its run record (alexnet.evaluation.predictions.read_evaluation)."""
    metrics = src.metrics / Path(layout.EVALUATE_METRICS).name
    if not metrics.is_file():
        return {}
    return read_evaluation(metrics, src.evaluation if src.evaluation.is_file() else None)


def load_runs(src: ReportInputs, seeds: list[int]) -> Runs:
    runs = Runs(evaluate=_read_evaluation(src),
                analyze=read_json_or_empty(src.metrics / Path(layout.ANALYZE_METRICS).name),
                prepare=read_json_or_empty(src.metrics / Path(layout.PREPARE_METRICS).name),
                architecture=read_json_or_empty(netstore.net_dir(src.models, seeds[0]) / netstore.ARCHITECTURE) if seeds else {})
    for seed in seeds:
        info = read_json_or_empty(netstore.net_dir(src.models, seed) / netstore.INFO)
        if info:
            runs.infos[seed] = info
        live = src.live / layout.train_name(seed)
        if live.is_dir():
            curves = read_curves(live)
            if len(curves):
                runs.curves[seed] = curves
    return runs
