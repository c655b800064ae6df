"""The cluster launcher without a cluster: one sweep job (alexnet.claims.clusterjob) run through
submitit's debug executor against a real bare git remote and a local DVC remote (clone, pull,
run, push, verify; a retried job; a push that diverged), the driver's one-line refusals
(alexnet.claims.slurm), and which runs a rerun of the driver submits."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import submitit
from sweep_repo import make_project, remote_json, sh

from alexnet.claims import clusterjob
from alexnet.claims.arms import ARMS_BY_NAME
from alexnet.claims.clusterjob import ExperimentJob, JobSpec, exp_ref, remote_experiments, unpushed
from alexnet.claims.slurm import active, plan_jobs
from alexnet.errors import PipelineError
from alexnet.tools import ablations as tool

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("dvc") is None or shutil.which("git") is None, reason="needs dvc, git")]


def spec_for(project, tmp_path, lrn: bool) -> JobSpec:
    name = "ablate-baseline-s0" if lrn else "ablate-no-lrn-s0"
    overrides = {"train.seeds": "[0]", **({} if lrn else {"model.lrn": "false"})}
    return JobSpec(name, project.commit, str(project.remote), overrides, "evaluate", str(tmp_path / "shared"),
                   str(tmp_path / "scratch"))


def run_job(spec: JobSpec, tmp_path: Path):
    """The job as SLURM would run it, in this process (submitit's debug executor)."""
    job = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="debug").submit(ExperimentJob(), spec)
    return job.result()


def test_a_job_pulls_runs_pushes_and_checks_that_it_landed(tmp_path):
    project = make_project(tmp_path)
    spec = spec_for(project, tmp_path, lrn=False)
    result = run_job(spec, tmp_path)
    assert result["ran"] and result["ref"] == exp_ref(project.commit, "ablate-no-lrn-s0")
    on_remote = remote_experiments(str(project.remote), project.commit)
    assert on_remote == {"ablate-no-lrn-s0": result["sha"]}
    # its metrics as committed in the experiment; the model's bytes on the DVC remote
    assert remote_json(project, result["sha"], "metrics/evaluate.json")["top1_error"] > 0
    lock = sh("git", "--git-dir", str(project.remote), "show", f"{result['sha']}:dvc.lock", cwd=tmp_path)
    model_md5 = lock.split("path: models")[1].split("md5: ")[1].split()[0].removesuffix(".dir")
    assert (project.dvc_remote / "files" / "md5" / model_md5[:2] / (model_md5[2:] + ".dir")).is_file()
    # training state stayed on shared storage, keyed by commit and name; the clone is gone
    assert (spec.state_dir() / "checkpoints" / "seed0" / "last.json").is_file()
    assert not any((tmp_path / "scratch").iterdir())

    # the same job again (a retry after its push landed): nothing to run, the same commit
    again = run_job(spec, tmp_path)
    assert (again["ran"], again["sha"]) == (False, result["sha"])


def test_a_push_that_diverged_fails_the_job(tmp_path, monkeypatch):
    """Two copies of a job (a duplicate submission, a requeue racing its first run): the second
    checked the remote before the first one's push landed, so it runs too. Its `dvc exp push`
    then prints "diverged ... No experiments to push" and exits 0; the job must not succeed."""
    project = make_project(tmp_path)
    spec = spec_for(project, tmp_path, lrn=True)
    first = run_job(spec, tmp_path)
    looked = []

    def before_the_first_push_landed(url, commit):
        looked.append(url)
        return {} if len(looked) == 1 else remote_experiments(url, commit)

    monkeypatch.setattr(clusterjob, "remote_experiments", before_the_first_push_landed)
    with pytest.raises(PipelineError, match=f"the push did not land: .* has {first['sha'][:7]} "
                                            r"\(another run of it\) for refs/exps/.*, this run made "):
        ExperimentJob()(spec)  # in this process: the debug executor would open pdb on the error
    assert remote_experiments(str(project.remote), project.commit) == {spec.name: first["sha"]}


def test_unpushed_reads_dvc_status_cloud():
    assert unpushed("{}") == []
    assert unpushed('{"models": "new", "data": "deleted", "x": "missing"}') == ["models", "x"]


def refused(capsys, argv) -> str:
    assert tool.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_the_driver_refuses_an_unpushed_commit_and_a_missing_dvc_remote(tmp_path, monkeypatch, capsys):
    project = make_project(tmp_path)
    monkeypatch.chdir(project.repo)
    run = ["run", "--launcher", "slurm", "--arms", "baseline", "--shared", str(tmp_path / "shared")]
    (project.repo / "notes.txt").write_text("local only\n")
    sh("git", "add", "notes.txt", cwd=project.repo)
    sh("git", "commit", "-qm", "not pushed", cwd=project.repo)
    err = refused(capsys, run)
    assert err.startswith("error: commit ") and "is not on git remote 'origin': push it first" in err

    sh("git", "push", "-q", "origin", "main", cwd=project.repo)
    sh("dvc", "remote", "default", "--unset", cwd=project.repo)
    sh("git", "commit", "-qam", "no default DVC remote", cwd=project.repo)
    sh("git", "push", "-q", "origin", "main", cwd=project.repo)
    assert "no default DVC remote in .dvc/config" in refused(capsys, run)
    assert not (tmp_path / "shared").exists()  # nothing submitted


def test_a_rerun_submits_what_is_neither_pushed_nor_pending_or_running():
    arms = [ARMS_BY_NAME[n] for n in ("baseline", "no-lrn", "no-dropout", "no-conv3")]
    pushed = {"ablate-baseline-s0": "a" * 40}
    submitted = {f"ablate-{n}-s0": {"job_id": f"7_{i}"} for i, n in enumerate(("baseline", "no-lrn", "no-dropout"))}
    states = {"7_0": {"state": "COMPLETED"}, "7_1": {"state": "RUNNING"}, "7_2": {"state": "FAILED"}}
    plan = plan_jobs(arms, [0], pushed, submitted, states)
    assert [(a.name, s) for a, s in plan.queue] == [("no-dropout", 0), ("no-conv3", 0)]
    assert [(a.name, why) for a, _, why in plan.skipped] == [("baseline", "on the git remote (aaaaaaa)"),
                                                             ("no-lrn", "job 7_1 is running")]


def test_a_job_slurm_does_not_know_yet_counts_as_pending_for_a_while():
    now = datetime.now(timezone.utc)
    fresh = {"job_id": "9_0", "submitted": now.isoformat()}
    old = {"job_id": "9_0", "submitted": (now - timedelta(hours=1)).isoformat()}
    assert active(fresh, {}) == "SUBMITTED" and active(old, {}) is None  # accounting lag, or a lost job
    assert active(old, {"9_0": {"state": "PENDING"}}) == "PENDING" and active(None, {}) is None
    assert active(fresh, {"9_0": {"state": "FAILED"}}) is None


def test_a_local_remote_path_is_given_to_the_jobs_absolute(tmp_path, monkeypatch):
    from alexnet.claims.slurm import remote_url

    project = make_project(tmp_path)
    sh("git", "remote", "set-url", "origin", os.path.relpath(project.remote, project.repo), cwd=project.repo)
    monkeypatch.chdir(project.repo)
    assert remote_url("origin") == str(project.remote)
