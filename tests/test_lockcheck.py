"""Tests for alexnet/pipeline/lockcheck.py: CI's comparison of a fresh dvc.lock with the committed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from alexnet.pipeline import lockcheck

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
        return subprocess.run([sys.executable, "-m", "alexnet.tools.lockcheck"], cwd=tmp_path, capture_output=True,
                              text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})

    ok = run()
    assert ok.returncode == 0 and "every compared output (2)" in ok.stdout, ok.stderr
    lock.write_text(yaml.safe_dump(_lock({"data/stats": "a.dir", "models/seed0": "other.dir"})))
    bad = run()
    assert bad.returncode == 1
    assert "models/seed0: md5 other.dir, committed m.dir" in bad.stderr and "data/stats" not in bad.stderr


def test_stale_stages_from_dvc_status():
    """Modified or new deps, changed params and a changed command are stale; a dep only missing
    (an output not pulled or reproduced yet, as in a fresh clone) is not."""
    status = {
        "train": [{"changed deps": {"alexnet/training/train.py": "modified", "params.yaml": {"train.lr": "modified"}}},
                  {"changed outs": {"models/seed0": "deleted"}}],
        "evaluate": [{"changed deps": {"models": "deleted"}}, {"changed outs": {"data/eval": "deleted"}}],
        "report": ["changed command"],
        "claims": [{"changed deps": {"alexnet/claims/verdict.py": "new"}}],
    }
    assert lockcheck.stale_stages(status) == ["claims: alexnet/claims/verdict.py new", "report: changed command",
                                              "train: alexnet/training/train.py modified, param train.lr modified"]


def test_a_differing_output_names_its_stage_and_the_committed_numerics(tmp_path):
    _git(tmp_path, "init", "-q")
    lock = {"schema": "2.0", "stages": {"analyze": {"cmd": "x", "outs": [
        {"path": "metrics/analyze.json", "md5": "a"}, {"path": "records/analyze.json", "md5": "r"}]}}}
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "analyze.json").write_text(json.dumps({"numerics": {
        "vendor": "AuthenticAMD", "isa": ["avx2", "fma"], "cpu_capability": "AVX2", "mkldnn": False}}))
    _git(tmp_path, "add", "records")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "record")
    old = Path.cwd()
    try:
        os.chdir(tmp_path)
        line = lockcheck.where_made(lock, "metrics/analyze.json", "HEAD")
    finally:
        os.chdir(old)
    assert line == ("stage analyze; the committed one was made with vendor AuthenticAMD, isa ['avx2', 'fma'], "
                    "cpu_capability AVX2, mkldnn False (records/analyze.json)")
    assert lockcheck.where_made(lock, "reports/x.md", "HEAD") == "no stage of the committed dvc.lock writes it"


def test_stale_cli_on_a_real_dvc_project(tmp_path):
    """`--stale` in a DVC project: clean after a repro and in a clone without outputs; exit 1 naming
    the stage once its code or its param differs from dvc.lock."""
    _git(tmp_path, "init", "-q")
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("k: 1\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "make": {"cmd": f"{sys.executable} step.py", "deps": ["step.py"], "params": ["k"], "outs": ["out/a.txt"]},
        "use": {"cmd": "cp out/a.txt b.txt", "deps": ["out"], "outs": ["b.txt"]}}}))
    (tmp_path / "step.py").write_text("import os, yaml\nos.makedirs('out', exist_ok=True)\n"
                                      "open('out/a.txt', 'w').write(str(yaml.safe_load(open('params.yaml'))))\n")
    subprocess.run(["dvc", "repro", "-q"], cwd=tmp_path, check=True, capture_output=True)

    def stale() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "alexnet.tools.lockcheck", "--stale"], cwd=tmp_path,
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})

    assert stale().returncode == 0
    for out in ("out/a.txt", "b.txt"):  # as in a fresh clone: the outputs are not there yet
        (tmp_path / out).unlink()
    (tmp_path / "out" / "kept.txt").write_text("x")  # and `out` is not empty (DVC's .gitignore in a clone)
    assert stale().returncode == 0, stale().stderr
    (tmp_path / "params.yaml").write_text("k: 2\n")
    bad = stale()
    assert bad.returncode == 1 and "make: param k modified" in bad.stderr
    (tmp_path / "params.yaml").write_text("k: 1\n")
    (tmp_path / "step.py").write_text((tmp_path / "step.py").read_text() + "# edited\n")
    assert "make: step.py modified" in stale().stderr
