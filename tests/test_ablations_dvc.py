"""alexnet.claims.sweep against real DVC: queue two arms in a temporary git + DVC repository with a
one-stage pipeline, wait for the queue, see them in `dvc exp show`, collect, and skip on rerun;
kill -9 a sweep and its worker in the middle of a run and rerun it to the end; start two sweeps
together and find each experiment queued once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alexnet.claims import sweep as ablations
from alexnet.tools import ablations as tool

pytestmark = pytest.mark.slow

# A stand-in for the evaluate stage: errors that depend on the params the arms change.
EVALUATE = textwrap.dedent("""
    import json, os, time, yaml
    p = yaml.safe_load(open("params.yaml"))
    time.sleep(float(os.environ.get("ABLATE_TEST_SLEEP", "0")) if p["model"]["lrn"] else 0)
    top1 = 30.0 + (0.0 if p["model"]["lrn"] else 2.5) + p["train"]["seeds"][0]
    os.makedirs("metrics", exist_ok=True)
    json.dump({"top1_error": top1, "top5_error": 5.0}, open("metrics/evaluate.json", "w"))  # the flat keys evaluate writes
""")


def sh(*cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(tmp_path):
    """A git + DVC repository whose one stage stands in for evaluate."""
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
    return repo


needs_dvc = pytest.mark.skipif(shutil.which("dvc") is None or shutil.which("git") is None, reason="needs dvc and git")


@needs_dvc
def test_run_queues_waits_collects_and_skips(tmp_path, monkeypatch, capsys):
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo)

    assert tool.main(["run", "--arms", "baseline", "no-lrn", "--seeds", "0", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "Queueing 2 run(s)" in out and "12 s" in out and "All runs done" in out
    shown = sh("dvc", "exp", "show", "--no-pager", "--md", cwd=repo)
    assert "ablate-baseline-s0" in shown and "ablate-no-lrn-s0" in shown

    assert tool.main(["collect", "--out", "ablations/results.json"]) == 0
    runs = {r["arm"]: r for r in json.loads((repo / "ablations" / "results.json").read_text())["runs"]}
    assert (runs["baseline"]["top1_error"], runs["no-lrn"]["top1_error"]) == (30.0, 32.5)
    assert runs["no-lrn"]["params"]["model.lrn"] is False and runs["no-lrn"]["dataset"] == "tiny"
    head = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    assert runs["no-lrn"]["baseline_rev"] == head
    # the run record as the experiment committed it (`git show <rev>:records/train-seed0.json`)
    assert (runs["no-lrn"]["train_seconds"], runs["no-lrn"]["epochs_run"], runs["no-lrn"]["device"]) == (12.0, 8, "cpu")
    assert runs["no-lrn"]["classes"] is None  # this toy pipeline writes no reports/evaluation.json
    assert (runs["no-lrn"]["comparable"], runs["no-lrn"]["comparable_reason"]) == (False, "data.source tiny; 8 epochs < 90")

    # a second run queues nothing
    assert tool.main(["run", "--arms", "baseline", "no-lrn", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "skip ablate-baseline-s0: already ran" in out and "Queueing 0 run(s)" in out


REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["run", "--arms", "baseline", "no-lrn", "--seeds", "0", "--jobs", "1"]


def sweep(repo: Path, *args: str, sleep: float = 0.0) -> subprocess.Popen:
    """`alexnet-ablations <args>` in `repo`, as a researcher starts it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ABLATE_TEST_SLEEP": str(sleep)}
    return subprocess.Popen([sys.executable, "-m", "alexnet.tools.ablations", *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def processes_in(repo: Path) -> list[int]:
    """Every process working inside `repo` (DVC's workers and runs, the stage), this test aside."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(proc / "cwd")).is_relative_to(repo):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def wait_for(check, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def status_of(repo: Path) -> dict[str, str]:
    out = sh(sys.executable, "-m", "alexnet.tools.ablations", "status", "--arms", "baseline", "no-lrn", "--seeds", "0",
             cwd=repo)
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("ablate-")}


@needs_dvc
@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc to find the sweep's processes")
def test_a_sweep_killed_mid_run_finishes_when_rerun(tmp_path, monkeypatch):
    """kill -9 of the sweep, its worker and the running experiment (a crash): the baseline stays
    listed Running for ever; `status` calls it stale; the same command again completes every arm."""
    repo = make_repo(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    first = sweep(repo, *SWEEP, sleep=60)
    # the baseline's stage is sleeping: its experiment is running
    wait_for(lambda: status_of(repo).get("ablate-baseline-s0") == "running", what="the baseline to run")
    for pid in [first.pid, *processes_in(repo)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    first.wait()
    wait_for(lambda: not processes_in(repo), timeout=30, what="the killed processes to go")
    assert "Running" in sh("dvc", "queue", "status", cwd=repo)  # DVC alone never settles it
    assert status_of(repo) == {"ablate-baseline-s0": "stale", "ablate-no-lrn-s0": "queued"}

    again = sweep(repo, *SWEEP, sleep=0)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert "stale ablate-baseline-s0" in out and "All runs done" in out
    assert status_of(repo) == {"ablate-baseline-s0": "done", "ablate-no-lrn-s0": "done"}
    monkeypatch.chdir(repo)
    assert tool.main(["collect", "--out", "ablations/results.json"]) == 0
    runs = {r["arm"]: r for r in json.loads((repo / "ablations" / "results.json").read_text())["runs"]}
    assert (runs["baseline"]["top1_error"], runs["no-lrn"]["top1_error"]) == (30.0, 32.5)


@needs_dvc
def test_two_sweeps_started_together_queue_each_run_once(tmp_path):
    repo = make_repo(tmp_path)
    a, b = sweep(repo, *SWEEP), sweep(repo, *SWEEP)
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == b.returncode == 0, outs
    queued = [line for out in outs for line in out.splitlines() if line.startswith("$ dvc exp run --queue")]
    assert sorted(q.split("--name ")[1].split()[0] for q in queued) == ["ablate-baseline-s0", "ablate-no-lrn-s0"]
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo))
    names = [e.name for e in ablations.parse_exp_show(shown)]
    assert sorted(names) == ["ablate-baseline-s0", "ablate-no-lrn-s0"]
