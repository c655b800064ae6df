"""Tests for alexnet/claims/exptable.py: the experiments table in 120 columns, from `dvc exp show --json`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_ablations_dvc import make_repo, sh

from alexnet.claims import exptable

REPO_ROOT = Path(__file__).resolve().parents[1]


def _exp(name: str, params: dict, top1: float | None, state: str = "success") -> dict:
    data = {"params": {"params.yaml": {"data": params}},
            "metrics": {"metrics/evaluate.json": {"data": {"top1_error": top1, "top5_error": 5.0}}}}
    return {"name": name, "executor": {"state": state}, "revs": [{"rev": "f" * 40, "name": name, "data": data}]}


def _params(lr: float, lrn: bool, extra: int = 0) -> dict:
    p = {"model": {"lrn": lrn, "width": 0.25}, "train": {"lr": lr, "seeds": [0]}}
    p["many"] = {f"long_parameter_name_{i}": i * (1 + extra) for i in range(20)}  # differing when extra > 0
    return p


SHOW = [{"rev": "workspace", "data": {}},
        {"rev": "a" * 40, "name": "main", "data": _exp("x", _params(0.01, True), 30.0)["revs"][0]["data"],
         "experiments": [_exp("ablate-no-overlap-pool-s0", _params(0.01, False), 32.5),
                         _exp("lr-high", _params(0.1, True, extra=1), 41.25),
                         _exp("ablate-no-weight-decay-s2", _params(0.01, True), 31.0, state="running")]}]


def test_rows_headline_and_only_differing_params_within_the_width():
    rows = exptable.rows_of(SHOW)
    assert [r["name"] for r in rows] == ["main", "ablate-no-overlap-pool-s0", "lr-high", "ablate-no-weight-decay-s2"]
    assert exptable.differing(rows)[:2] == ["model.lrn", "train.lr"]
    assert "model.width" not in exptable.differing(rows)  # the same everywhere
    text = exptable.render(rows, 120)
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines), max(map(len, lines))
    head = lines[0].split()
    assert head[:3] == ["experiment", "state", "top-1"] and "model.lrn" in head and "train.lr" in head
    assert "41.25" in text and "32.50" in text
    # a running experiment shows no metrics of its own (exp show gives it the baseline's)
    running = next(line for line in lines if line.startswith("ablate-no-weight-decay-s2"))
    assert "running" in running and "31.00" not in running
    # what did not fit is named, not dropped silently
    assert "also differing, not shown in 120 columns" in text and "many.long_parameter_name_19" in text


def test_no_experiments():
    assert "No experiments" in exptable.render([], 120)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dvc") is None or shutil.which("git") is None, reason="needs dvc and git")
def test_the_command_on_a_real_dvc_exp_show_fits_120_columns(tmp_path):
    repo = make_repo(tmp_path)
    for args in (["-S", "model.lrn=false"], ["-S", "train.epochs=2"], ["-S", "train.seeds=[1]", "-S", "model.lrn=false"]):
        sh("dvc", "exp", "run", *args, cwd=repo)
    done = subprocess.run([sys.executable, "-m", "alexnet.tools.exptable"], cwd=repo, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO_ROOT), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 + 4 and all(len(line) <= 120 for line in lines), done.stdout
    assert {"model.lrn", "train.epochs", "train.seeds"} <= set(lines[0].split())
    assert "state" not in lines[0]  # every run is done
    top1 = {line.split()[0]: line.split()[1] for line in lines[1:]}
    # each `dvc exp run` starts from the workspace the last one left (model.lrn false from the first);
    # the commit has no metrics
    assert sorted(v for v in top1.values() if v != "-") == ["32.50", "32.50", "33.50"]
