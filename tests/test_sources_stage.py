"""stages/download.py as DVC runs it: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import yaml
from stage_helpers import assert_clear_error, run_stage


def _run(tmp_path, params: dict, out="raw"):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return run_stage("download", "--params", "params.yaml", "--out", out, cwd=tmp_path, timeout=120)


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
    assert_clear_error(_run(tmp_path, {"tiny": {"clases": 2}}), "tiny.clases")
    assert_clear_error(_run(tmp_path, {"data": {"source": "ilsvrc2012", "root": str(tmp_path / "nowhere")}}), "nowhere")
    (tmp_path / "in").mkdir()
    assert_clear_error(_run(tmp_path, {"data": {"source": "ilsvrc2012", "root": str(tmp_path / "in")}}),
                       "ILSVRC2012_img_train.tar")
    assert not (tmp_path / "raw").exists()
