"""alexnet.pipeline.records: every run record starts with the same header, written atomically,
and a stage cannot redefine a header field under its own meaning."""

from __future__ import annotations

import json
import os
import platform

import pytest

from alexnet.pipeline import provenance, records


def test_a_record_is_the_header_then_the_stage_fields(tmp_path):
    path = tmp_path / "records" / "stage.json"
    records.write_record(path, {"images": 12, "device": "cpu"}, seconds=1.23456, numerics={"threads": 2})
    record = json.loads(path.read_text())
    assert list(record) == [*records.HEADER, "images", "device"]
    assert record["seconds"] == 1.235 and record["numerics"] == {"threads": 2}
    assert record["versions"]["python"] == platform.python_version()
    assert record["machine"]["cpu"] == provenance.cpu_name() and record["machine"]["logical_cores"] == os.cpu_count()
    assert record["revision"] == provenance.git_revision() and isinstance(record["dirty_paths"], list)
    assert [p.name for p in path.parent.iterdir()] == ["stage.json"]  # no temporary file left


def test_a_stage_field_may_not_shadow_the_header(tmp_path):
    with pytest.raises(ValueError, match="seconds"):
        records.write_record(tmp_path / "r.json", {"seconds": 5}, seconds=1.0)
    assert not (tmp_path / "r.json").exists()
