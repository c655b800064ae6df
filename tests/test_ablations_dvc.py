"""alexnet.ablations against real DVC: queue two arms in a temporary git + DVC repository with a
one-stage pipeline, wait for the queue, see them in `dvc exp show`, collect, and skip on rerun."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from alexnet import ablations

pytestmark = pytest.mark.slow

# A stand-in for the evaluate stage: errors that depend on the params the arms change.
EVALUATE = textwrap.dedent("""
    import json, os, yaml
    p = yaml.safe_load(open("params.yaml"))
    top1 = 30.0 + (0.0 if p["model"]["lrn"] else 2.5) + p["train"]["seeds"][0]
    os.makedirs("metrics", exist_ok=True)
    json.dump({"single": {"ten_crop": {"top1_error": top1, "top5_error": 5.0}}}, open("metrics/evaluate.json", "w"))
""")


def sh(*cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("dvc") is None or shutil.which("git") is None, reason="needs dvc and git")
def test_run_queues_waits_collects_and_skips(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text("data:\n  source: tiny\nmodel:\n  lrn: true\ntrain:\n  seeds: [0, 1]\n  epochs: 8\n")
    (repo / "evaluate.py").write_text(EVALUATE)
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          evaluate:
            cmd: {sys.executable} evaluate.py
            deps: [evaluate.py]
            params: [model, train]
            metrics:
              - metrics/evaluate.json:
                  cache: false
    """))
    (repo / "metrics").mkdir()
    (repo / "records").mkdir()
    (repo / "records" / "train-seed0.json").write_text(json.dumps({"seconds": 12.0, "epochs": 8, "device": "cpu"}))
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "t@example.com", cwd=repo)
    sh("git", "config", "user.name", "t", cwd=repo)
    sh("dvc", "init", "-q", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline", cwd=repo)
    monkeypatch.chdir(repo)

    assert ablations.main(["run", "--arms", "baseline", "no-lrn", "--seeds", "0", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "Queueing 2 run(s)" in out and "12 s" in out and "All runs done" in out
    shown = sh("dvc", "exp", "show", "--no-pager", "--md", cwd=repo)
    assert "ablate-baseline-s0" in shown and "ablate-no-lrn-s0" in shown

    assert ablations.main(["collect", "--out", "ablations/results.json"]) == 0
    runs = {r["arm"]: r for r in json.loads((repo / "ablations" / "results.json").read_text())["runs"]}
    assert (runs["baseline"]["top1_error"], runs["no-lrn"]["top1_error"]) == (30.0, 32.5)
    assert runs["no-lrn"]["params"]["model.lrn"] is False and runs["no-lrn"]["dataset"] == "tiny"
    head = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    assert runs["no-lrn"]["baseline_rev"] == head
    # the run record as the experiment committed it (`git show <rev>:records/train-seed0.json`)
    assert (runs["no-lrn"]["train_seconds"], runs["no-lrn"]["epochs_run"], runs["no-lrn"]["device"]) == (12.0, 8, "cpu")
    assert runs["no-lrn"]["classes"] is None  # this toy pipeline writes no records/evaluate.json
    assert (runs["no-lrn"]["comparable"], runs["no-lrn"]["comparable_reason"]) == (False, "data.source tiny; 8 epochs < 90")

    # a second run queues nothing
    assert ablations.main(["run", "--arms", "baseline", "no-lrn", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "skip ablate-baseline-s0: already ran" in out and "Queueing 0 run(s)" in out
