"""Where the pipeline writes: every output folder and file dvc.yaml declares, and the files inside
them that another stage or tool reads by name, each spelled once. Torch-free, so the report, the
claims table and the command-line tools can use it without the code that writes the files.

dvc.yaml spells the same paths in its commands and outs (DVC reads them there);
tests/test_layout.py reads dvc.yaml and requires every declared output to be a path named here.
This module also owns reading dvc.yaml's declared outputs and the one parser of dvc.lock.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

LOCK = "dvc.lock"

# Data, in the order the stages make it.
RAW = "data/raw"
PREPARED = "data/prepared"
STATS = "data/stats"
EVAL = "data/eval"  # evaluate's predictions, labels and per-class errors
CIFAR_DATA = "data/cifar"

# Training: models/seed<N>/ is an output; checkpoints/seed<N>/ is state for resuming, git-ignored.
MODELS = "models"
CHECKPOINTS = "checkpoints"
LIVE = "dvclive"  # DVCLive's train-seed<N>/ (per-epoch curves)

# Results (metrics/: what `dvc metrics diff` compares) and run records (records/: what varies).
METRICS = "metrics"
RECORDS = "records"

# Reports.
TABLES = "reports/tables"  # results: table1.md, table2.md
FIGURES = "reports/figures"  # analyze's figures and FIGURES_LIST
CLAIMS = "reports/claims"
CIFAR_REPORT = "reports/cifar"  # stage cifar's tiny check
REAL_CIFAR = ("reports/real/cifar10", "reports/real/cifar10-modern")  # committed real runs, by protocol
EVALUATION = "reports/evaluation.json"  # what evaluate evaluated: split, images, classes, nets, members
ABLATION_RESULTS = "ablations/results.json"  # `alexnet-ablations collect`
TRAINING_CURVES = "reports/training_curves.png"
REPORT_HTML = "reports/report.html"
REPORT_MD = "reports/report.md"

# Files inside those folders that a later stage or tool reads by name.
FIGURES_LIST = "figures.json"  # FIGURES/: {figure key: PNG file name}
CLAIMS_TABLE = "claims.md"  # CLAIMS/
CLAIMS_CSV = "claims.csv"
RESULT_TABLES = ("table1", "table2")  # TABLES/<name>.md
CIFAR_RUNS = "runs.json"  # a CIFAR-10 run's folder: the per-seed numbers the claims table judges
CIFAR_FIGURE = "figure1.png"
CIFAR_RATIO_FIGURE = "figure1_ratio.png"
CIFAR_CURVES = "curves.csv"
CIFAR_LRN_CURVES = "lrn_curves.csv"


def metrics_file(stage: str) -> str:
    """metrics/<stage>.json: a stage's results."""
    return f"{METRICS}/{stage}.json"


def record_file(stage: str) -> str:
    """records/<stage>.json: a stage's run record (train's: train-seed<N>)."""
    return f"{RECORDS}/{stage}.json"


def seed_name(seed: int) -> str:
    """How the train stage's outputs name one seed's net: models/seed<N>, records/train-seed<N>.json."""
    return f"seed{seed}"


def train_name(seed: int) -> str:
    """One seed's train stage, as its record and its DVCLive folder are named: train-seed<N>."""
    return f"train-{seed_name(seed)}"


def train_record(seed: int) -> str:
    return record_file(train_name(seed))


EVALUATE_METRICS = metrics_file("evaluate")
ANALYZE_METRICS = metrics_file("analyze")
PREPARE_METRICS = metrics_file("prepare")


def declared_outputs(dvc_yaml: str | Path = "dvc.yaml") -> list[str]:
    """Glob patterns of every path dvc.yaml's stages write (outs, metrics, plots; `${...}` -> `*`),
    dvc.lock included. Just dvc.lock when there is no dvc.yaml."""
    paths = [LOCK]
    try:
        with open(dvc_yaml) as f:
            doc = yaml.safe_load(f) or {}
    except OSError:
        return paths
    for stage in (doc.get("stages") or {}).values():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        for key in ("outs", "metrics", "plots"):
            for entry in body.get(key) or []:
                path = entry if isinstance(entry, str) else next(iter(entry))
                paths.append(re.sub(r"\$\{[^}]*\}", "*", path))
    return paths


def parse_lock(text: str) -> dict[str, Any]:
    """A dvc.lock's text as a dict ({} when empty)."""
    return yaml.safe_load(text) or {}


def read_lock(path: str | Path = LOCK) -> dict[str, Any]:
    """dvc.lock, parsed; {} when there is none."""
    path = Path(path)
    return parse_lock(path.read_text()) if path.is_file() else {}


def lock_hashes(lock: dict[str, Any]) -> dict[str, str]:
    """{output path: md5} of every stage output a parsed dvc.lock records ('' where it has none)."""
    return {str(o["path"]): str(o.get("md5", "")) for stage in (lock.get("stages") or {}).values()
            for o in stage.get("outs") or [] if isinstance(o, dict) and "path" in o}


def stage_outputs(lock: dict[str, Any]) -> dict[str, list[str]]:
    """{stage name: its output paths} in a parsed dvc.lock."""
    return {name: [str(o["path"]) for o in stage.get("outs") or []]
            for name, stage in (lock.get("stages") or {}).items()}
