"""Tests for alexnet.pipeline.provenance: a revision is dirty when its sources differ, not when the pipeline
has rewritten its own outputs; the run record's bit-identity facts are torch's own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from alexnet.pipeline import layout, provenance

DVC_YAML = """stages:
  train:
    foreach: [0, 1]
    do:
      cmd: python train.py ${item}
      outs:
        - models/seed${item}
        - records/train-seed${item}.json:
            cache: false
  evaluate:
    cmd: python evaluate.py
    metrics:
      - metrics/evaluate.json:
          cache: false
    plots:
      - curves.tsv
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")
    files = {"dvc.yaml": DVC_YAML, "params.yaml": "lr: 0.01\n", "train.py": "print(1)\n", "dvc.lock": "a\n",
             "metrics/evaluate.json": "{}\n", "records/train-seed1.json": "{}\n", "curves.tsv": "step\tx\n",
             "models/seed0/info.json": "{}\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_the_pipeline_outputs_are_read_from_dvc_yaml(repo: Path):
    assert layout.declared_outputs(repo / "dvc.yaml") == [
        "dvc.lock", "models/seed*", "records/train-seed*.json", "metrics/evaluate.json", "curves.tsv"]
    assert layout.declared_outputs(repo / "absent.yaml") == ["dvc.lock"]


def test_outputs_rewritten_by_the_pipeline_leave_the_revision_clean(repo: Path):
    head = git(repo, "rev-parse", "HEAD").strip()
    for name in ("dvc.lock", "metrics/evaluate.json", "records/train-seed1.json", "curves.tsv",
                 "models/seed0/info.json"):
        (repo / name).write_text("changed by dvc repro\n")
    assert provenance.dirty_paths(repo) == []
    assert provenance.git_revision(repo) == head
    (repo / "untracked.txt").write_text("not part of the revision\n")
    assert provenance.git_revision(repo) == head


@pytest.mark.parametrize("name", ["params.yaml", "train.py", "dvc.yaml"])
def test_a_changed_source_makes_it_dirty_and_is_named(repo: Path, name: str):
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "metrics/evaluate.json").write_text("changed by dvc repro\n")
    with open(repo / name, "a") as f:
        f.write("# edited\n")
    assert provenance.dirty_paths(repo) == [name]
    assert provenance.git_revision(repo) == head + "+dirty"
    # from a subfolder too: the paths are the repository's
    assert provenance.dirty_paths(repo / "metrics") == [name]


def test_outside_git_is_unknown(tmp_path: Path):
    assert provenance.git_revision(tmp_path) == "unknown"


def test_bit_identity_is_torchs_own_view():
    bits = provenance.bit_identity()
    assert bits["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert bits["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "NEON", "SVE256", "SVE")
    assert bits["torch_threads"] == torch.get_num_threads()
    assert bits["deterministic_algorithms"] == torch.are_deterministic_algorithms_enabled()
    assert bits["versions"]["torch"] == torch.__version__
