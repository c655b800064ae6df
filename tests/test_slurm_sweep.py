"""`alexnet-ablations run --launcher slurm` on a real one-node SLURM cluster (tests/conftest.py's
`cluster`): a two-arm sweep through sbatch that pushes to a bare git remote and a local DVC
remote, collected in another clone into ablations/results.json and the claims table; a run
preempted mid-training (SIGTERM, then submitit's USR2, as SLURM preempts) that is requeued and
resumes from its shared checkpoint with the uninterrupted run's result; and a rerun of the driver
after it went away that submits only what is missing. About two minutes on a 2-core machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sweep_repo import make_project, remote_json, sh, uninterrupted_top1

from alexnet.claims.clusterjob import remote_experiments
from alexnet.claims.table import claims
from alexnet.tools import ablations as tool

pytestmark = pytest.mark.slurm


def options(cluster, tmp_path: Path) -> list[str]:
    return ["--launcher", "slurm", "--partition", cluster.partition, "--gpus-per-job", "0", "--cpus-per-job", "1",
            "--time-min", "30", "--shared", str(tmp_path / "shared"), "--scratch", str(tmp_path / "scratch"),
            "--poll", "1"]


def ablations(capsys, *argv: str) -> str:
    """`alexnet-ablations argv` in the current folder; its output (it must succeed)."""
    code = tool.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return out


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.5)


def status(capsys, cluster, tmp_path: Path, *arms: str) -> dict[str, str]:
    out = ablations(capsys, "status", "--launcher", "slurm", "--shared", str(tmp_path / "shared"), "--arms", *arms)
    return {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines() if line.startswith("ablate-")}


def test_a_two_arm_sweep_is_pushed_collected_and_in_the_claims_table(cluster, tmp_path, monkeypatch, capsys):
    project = make_project(tmp_path, epochs=2)
    monkeypatch.chdir(project.repo)
    sweep = ["run", "--arms", "baseline", "no-lrn", "--seeds", "0", "--jobs", "2", *options(cluster, tmp_path)]
    out = ablations(capsys, *sweep)
    assert "Submitted job array" in out and "(2 task(s), at most 2 at once)" in out
    assert "All runs are on the git remote" in out
    pushed = remote_experiments(str(project.remote), project.commit)
    assert set(pushed) == {"ablate-baseline-s0", "ablate-no-lrn-s0"}

    # the lab collects in a clone of its own: `dvc exp pull`, then results.json and the claims table
    lab = tmp_path / "lab"
    sh("git", "clone", "-q", str(project.remote), str(lab), cwd=tmp_path)
    monkeypatch.chdir(lab)
    ablations(capsys, "collect", "--git-remote", "origin", "--out", "ablations/results.json")
    runs = {r["arm"]: r for r in json.loads((lab / "ablations" / "results.json").read_text())["runs"]}
    assert runs["baseline"]["experiment_rev"] == pushed["ablate-baseline-s0"]
    assert runs["baseline"]["baseline_rev"] == project.commit
    assert runs["baseline"]["top1_error"] == uninterrupted_top1(project, tmp_path / "base")
    assert runs["no-lrn"]["top1_error"] == uninterrupted_top1(project, tmp_path / "no-lrn", lrn=False)
    assert runs["no-lrn"]["top1_error"] > runs["baseline"]["top1_error"]
    table = claims(lab / "ablations" / "results.json", [tmp_path / "no-cifar-run"], lab / "reports" / "claims")
    lrn = table[table["claim"] == "lrn-top1"].iloc[0]
    assert lrn["n"] == 1 and lrn["mean"] == pytest.approx(runs["no-lrn"]["top1_error"] - runs["baseline"]["top1_error"])
    row = next(line for line in (lab / "reports" / "claims" / "claims.md").read_text().splitlines()
               if "model.lrn=false" in line)
    assert f"+{lrn['mean']:.2f}" in row and "pipeline check" in row  # the tiny toy is not the paper's data
    assert {r: s.split()[0] for r, s in status(capsys, cluster, tmp_path, "baseline", "no-lrn").items()} == \
        {"ablate-baseline-s0": "collected", "ablate-no-lrn-s0": "collected"}

    # the same command again: everything is on the remote, nothing is submitted
    monkeypatch.chdir(project.repo)
    out = ablations(capsys, *sweep)
    assert "skip ablate-baseline-s0: on the git remote" in out and "skip ablate-no-lrn-s0: on the git remote" in out
    assert "Submitted" not in out


def test_a_preempted_run_resumes_and_a_rerun_submits_only_what_is_missing(cluster, tmp_path, monkeypatch, capsys):
    epochs = 6
    project = make_project(tmp_path, epochs=epochs)
    monkeypatch.setenv("SWEEP_TEST_EPOCH_S", "1.5")  # sbatch passes it on to the job and DVC to the stage
    monkeypatch.chdir(project.repo)
    shared = tmp_path / "shared"
    # a driver that went away after submitting the baseline (as a crashed one would)
    out = ablations(capsys, "run", "--arms", "baseline", "--no-wait", *options(cluster, tmp_path))
    assert "Submitted job array" in out and "Not waiting" in out
    job = json.loads((shared / "sweeps" / f"{project.commit}.json").read_text())["jobs"]["ablate-baseline-s0"]["job_id"]
    state = shared / "state" / project.commit / "ablate-baseline-s0" / "checkpoints" / "seed0"
    wait_until(lambda: (state / "last.json").is_file() and json.loads((state / "last.json").read_text())[0] >= 2,
               180, "two epochs of the baseline's job")

    cluster.run("scancel", "--signal", "TERM", job)  # SLURM preempting: SIGTERM, then submitit's signal
    cluster.run("scancel", "--signal", "USR2", job)
    wait_until(lambda: status(capsys, cluster, tmp_path, "baseline")["ablate-baseline-s0"].startswith("requeued"),
               60, "status to show the baseline requeued")

    # the driver's command again, with a second arm: only that arm is submitted
    out = ablations(capsys, "run", "--arms", "baseline", "no-lrn", *options(cluster, tmp_path))
    assert f"skip ablate-baseline-s0: job {job} is " in out
    assert "(1 task(s)" in out and "All runs are on the git remote" in out
    sweep_jobs = json.loads((shared / "sweeps" / f"{project.commit}.json").read_text())["jobs"]
    assert sweep_jobs["ablate-baseline-s0"]["job_id"] == job
    assert sweep_jobs["ablate-no-lrn-s0"]["job_id"].split("_")[0] != job.split("_")[0]

    # the baseline ran twice, the second time from its checkpoint, to the uninterrupted result
    starts = [int(s) for s in (state / "starts").read_text().split()]
    assert len(starts) == 2 and 0 == starts[0] < starts[1] < epochs, starts
    pushed = remote_experiments(str(project.remote), project.commit)
    assert remote_json(project, pushed["ablate-baseline-s0"], "metrics/evaluate.json")["top1_error"] == \
        uninterrupted_top1(project, tmp_path)
    accounting = cluster.run("sacct", "--jobs", job, "--duplicates", "--noheader", "--parsable2", "--format=State",
                             "--allocations").split()
    assert accounting[0] == "REQUEUED" and accounting[-1] == "COMPLETED", accounting
    assert status(capsys, cluster, tmp_path, "baseline")["ablate-baseline-s0"].startswith("pushed")


def test_a_failed_run_is_named_with_its_log_line(cluster, tmp_path, monkeypatch, capsys):
    project = make_project(tmp_path, epochs=2)
    monkeypatch.chdir(project.repo)
    code = tool.main(["run", "--arms", "no-lrn", "--set", "train.epochs=oops", *options(cluster, tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: 1 of 1 run(s) not on the git remote: ablate-no-lrn-s0 (") and \
        "failed to reproduce 'evaluate'" in err
    row = status(capsys, cluster, tmp_path, "no-lrn")["ablate-no-lrn-s0"]
    assert row.startswith("failed") and "failed to reproduce 'evaluate'" in row
