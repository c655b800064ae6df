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


def test_a_torch_free_stage_writes_its_record_without_importing_torch(tmp_path):
    """download, prepare and stats run no torch: their record must not import it (seconds of
    start-up, a CUDA context on a GPU machine) and says it did not ask for the GPUs."""
    import subprocess
    import sys

    code = ("import json, sys; from alexnet.pipeline import records; "
            f"records.write_record({str(tmp_path / 'r.json')!r}, {{}}, seconds=1.0); "
            "print(json.dumps(['torch' in sys.modules, json.load(open(sys.argv[1]))['machine']['gpu']]))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.json")], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout) == [False, provenance.NO_TORCH]


def test_the_header_asks_git_for_the_status_once(tmp_path, monkeypatch):
    calls = []
    real = provenance._git

    def counting(args, cwd):
        calls.append(args[0])
        return real(args, cwd)

    monkeypatch.setattr(provenance, "_git", counting)
    records.header(1.0, None)
    assert calls.count("status") == 1
