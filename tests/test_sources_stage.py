"""stages/download.py as DVC runs it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path, params: dict, out="raw"):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, str(ROOT / "stages" / "download.py"), "--params", "params.yaml",
                           "--out", out], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_stage_writes_the_tiny_dataset_twice_identically(tmp_path):
    params = {"tiny": {"classes": 2, "train_per_class": 2, "val_per_class": 1, "min_side": 40, "max_side": 48}}
    assert _run(tmp_path, params).returncode == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()}
    assert sorted(first) == ["ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar",
                             "manifest.json"]
    assert _run(tmp_path, params).returncode == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()} == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folders left


def test_stage_errors_name_the_problem(tmp_path):
    r = _run(tmp_path, {"tiny": {"clases": 2}})
    assert r.returncode == 2 and "tiny.clases" in r.stderr and "Traceback" not in r.stderr
    r = _run(tmp_path, {"data": {"source": "ilsvrc2012", "root": str(tmp_path / "nowhere")}})
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "in").mkdir()
    r = _run(tmp_path, {"data": {"source": "ilsvrc2012", "root": str(tmp_path / "in")}})
    assert r.returncode == 2 and "ILSVRC2012_img_train.tar" in r.stderr
    assert not (tmp_path / "raw").exists()
