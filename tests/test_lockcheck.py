"""Tests for alexnet/lockcheck.py: CI's comparison of a fresh dvc.lock with the committed one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from alexnet import lockcheck

REPO = Path(__file__).resolve().parents[1]


def _lock(outs: dict[str, str]) -> dict:
    """A dvc.lock with one stage per output {path: md5}."""
    return {"schema": "2.0", "stages": {
        f"s{i}": {"cmd": "x", "outs": [{"path": path, "hash": "md5", "md5": md5}]}
        for i, (path, md5) in enumerate(outs.items())}}


def test_equal_locks_have_no_differences_and_records_are_not_compared():
    old = _lock({"data/stats": "a.dir", "records/train-seed0.json": "t1", "checkpoints/seed0": "c1.dir"})
    new = _lock({"data/stats": "a.dir", "records/train-seed0.json": "t2", "checkpoints/seed0": "c2.dir"})
    assert lockcheck.differences(old, new) == []
    assert set(lockcheck.output_hashes(new)) == {"data/stats"}


def test_each_differing_new_or_missing_output_is_named():
    old = _lock({"data/stats": "a.dir", "models/seed0": "m.dir", "metrics/evaluate.json": "e"})
    new = _lock({"data/stats": "b.dir", "metrics/evaluate.json": "e", "data/eval": "v.dir"})
    assert lockcheck.differences(old, new) == [
        "data/eval: produced, not in the committed dvc.lock",
        "data/stats: md5 b.dir, committed a.dir",
        "models/seed0: in the committed dvc.lock, not produced",
    ]


def test_the_committed_dvc_lock_of_this_repository_has_outputs_to_compare():
    """The real dvc.lock: the outputs the issue names are compared, records are not."""
    hashes = lockcheck.output_hashes(yaml.safe_load((REPO / "dvc.lock").read_text()))
    for path in ("data/stats", "models/seed0", "models/seed1", "data/eval", "reports/figures",
                 "metrics/evaluate.json", "metrics/analyze.json", "dvclive/train-seed0", "reports/report.md"):
        assert path in hashes, path
    assert not any(p.startswith(("records/", "checkpoints/")) for p in hashes)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_cli_against_a_git_revision(tmp_path):
    """The command .ci/run runs: exit 0 when every hash is as committed, 1 naming the output when not."""
    _git(tmp_path, "init", "-q")
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump(_lock({"data/stats": "a.dir", "models/seed0": "m.dir"})))
    _git(tmp_path, "add", "dvc.lock")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "lock")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "alexnet.lockcheck"], cwd=tmp_path, capture_output=True,
                              text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})

    ok = run()
    assert ok.returncode == 0 and "every compared output (2)" in ok.stdout, ok.stderr
    lock.write_text(yaml.safe_dump(_lock({"data/stats": "a.dir", "models/seed0": "other.dir"})))
    bad = run()
    assert bad.returncode == 1
    assert "models/seed0: md5 other.dir, committed m.dir" in bad.stderr and "data/stats" not in bad.stderr
