"""The ablation sweep on a SLURM cluster: one submitit job array of (arm, seed) runs, each a job of
alexnet.claims.clusterjob (clone the pushed commit, `dvc exp run --pull`, push, verify).

`run_slurm` is `alexnet-ablations run --launcher slurm`. It refuses a commit that is not on the
git remote (the jobs clone it from there) and a repository without a default DVC remote (the
jobs push their outputs there). Then, per (arm, seed): skipped when its experiment is already on
the git remote, or when the job this driver submitted for it earlier is still pending or
running (the driver's state file); the rest go to SLURM as one array, at most `jobs` at once.
So the same command after a crash of the driver submits only what is missing, and two drivers
started together (expqueue.planning's lock) submit each run once. It then waits (unless told not
to) until every job has ended, and fails naming the runs that did not land.

The shared folder (`--shared`, every node must see it):
    jobs/                      submitit's pickles and each job's log (<job>_0_log.out/.err)
    state/<commit>/<name>/     each experiment's training state (checkpoints/), for requeues
    sweeps/<commit>.json       the driver's record: experiment name -> SLURM job id

`slurm_status` is `alexnet-ablations status --launcher slurm`: per (arm, seed), collected (in
ablations/results.json), pushed (on the git remote), pending, running, requeued (running or
pending again after a preemption, a time-out or `scontrol requeue`), failed (with its log's last
line) or not submitted. `pull_experiments` is `collect --git-remote`'s `dvc exp pull`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit

from alexnet.claims.arms import Arm, yaml_value
from alexnet.claims.clusterjob import ExperimentJob, JobSpec, git, remote_experiments
from alexnet.claims.expqueue import dvc, planning
from alexnet.claims.sweep import Plan, exp_name, print_plan, run_overrides
from alexnet.errors import PipelineError
from alexnet.fileio import read_json, write_json
from alexnet.pipeline import layout, provenance

ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
          "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT")
CLIENT_TIMEOUT_S = 60  # one squeue or sacct call: a hung controller must not hang the driver
UNKNOWN_GRACE_S = 600  # a job neither squeue nor sacct knows yet (accounting lags) counts as pending this long


@dataclass(frozen=True)
class SlurmSettings:
    """What each job asks SLURM for. Unset partition/account: sbatch's own defaults
    (SBATCH_PARTITION and SBATCH_ACCOUNT in the environment, else the cluster's)."""

    partition: str | None = None
    account: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    time_min: int = 720  # a job past it is requeued by submitit and resumes from its checkpoint
    mem_gb: float | None = None
    parallel: int = 8  # array tasks running at once
    max_timeouts: int = 3  # requeues after a time-out (preemptions are not counted)

    def __post_init__(self) -> None:
        for key in ("gpus_per_job", "cpus_per_job", "time_min", "parallel", "max_timeouts"):
            minimum = 0 if key in ("gpus_per_job", "max_timeouts") else 1
            if getattr(self, key) < minimum:
                raise PipelineError(f"--{key.replace('_', '-')} {getattr(self, key)}: must be at least {minimum}")


def executor(folder: Path, settings: SlurmSettings) -> submitit.AutoExecutor:
    """A submitit executor for SLURM whose jobs import this very alexnet package (the clone's
    own code runs the experiment; this package runs the clone, push and checks around it)."""
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=settings.max_timeouts)
    package_root = Path(__file__).resolve().parents[2]  # the folder holding alexnet/
    params: dict[str, Any] = {
        "name": "ablate", "timeout_min": settings.time_min, "cpus_per_task": settings.cpus_per_job,
        "slurm_array_parallelism": settings.parallel,
        "slurm_setup": [f"export PYTHONPATH={package_root}${{PYTHONPATH:+:$PYTHONPATH}}"],
    }
    if settings.gpus_per_job:
        params["gpus_per_node"] = settings.gpus_per_job
    if settings.partition:
        params["slurm_partition"] = settings.partition
    if settings.account:
        params["slurm_account"] = settings.account
    if settings.mem_gb:
        params["mem_gb"] = settings.mem_gb
    ex.update_parameters(**params)
    return ex


# --- the repository against its remotes ------------------------------------------------------------

def remote_url(remote: str) -> str:
    """The git remote's URL as a job on another node can use it (a local path made absolute)."""
    url = git("remote", "get-url", remote).strip()
    if "://" not in url and ":" not in url.split("/")[0]:  # a path, not scp-like host:path
        url = str(Path(url).resolve())
    return url


def check_pushed(commit: str, remote: str) -> None:
    """Refuse a commit that no branch of the remote holds: a job's clone would not have it."""
    git("fetch", "--quiet", remote)
    if not git("branch", "--remotes", "--contains", commit, "--list", f"{remote}/*").split():
        raise PipelineError(f"commit {commit[:7]} is not on git remote {remote!r}: push it first "
                            f"(`git push {remote} HEAD`); each job clones it from there")


def check_dvc_remote() -> None:
    """Refuse a repository whose committed .dvc/config names no default DVC remote."""
    try:
        name = dvc("remote", "default", "--project").strip()
    except PipelineError:
        name = ""
    if not name:
        raise PipelineError("no default DVC remote in .dvc/config: each job pushes its outputs there and pulls "
                            "what it does not rerun (`dvc remote add -d <name> <url>`, then commit and push)")


# --- what SLURM says of the jobs -------------------------------------------------------------------

def _client(*command: str) -> str | None:
    """A SLURM client command's stdout, or None when it failed or hung (asked again next time)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def job_states(job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per job id (array tasks as <array>_<task>): its state and how often it was requeued.
    sacct (accounting) for every job, squeue's fresher word for those still queued or running (it
    forgets ended jobs, and errs when it knows none). Raises PipelineError when sacct fails: which
    jobs still run is then unknown."""
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    arrays = ",".join(sorted({i.split("_")[0] for i in ids}))
    acct = _client("sacct", "--jobs", arrays, "--allocations", "--duplicates", "--noheader", "--parsable2",
                   "--format=JobID,State")
    if acct is None:
        raise PipelineError(f"`sacct --jobs {arrays}` failed or hung: cannot tell which jobs still run "
                            "(is SLURM's accounting up?); try again")
    out: dict[str, dict[str, Any]] = {}
    for line in acct.splitlines():  # a job's earlier runs first (--duplicates), then its current one
        job, _, state = line.partition("|")
        if job in ids:
            entry = out.setdefault(job, {"state": "", "requeues": 0})
            entry["requeues"] += entry["state"] != ""  # each earlier record is a run that was requeued
            entry["state"] = state.split()[0] if state else ""
    for line in (_client("squeue", "--array", "--noheader", "--format=%i|%T", "--jobs", arrays) or "").splitlines():
        job, _, state = line.strip().partition("|")
        if job in ids:
            out.setdefault(job, {"state": "", "requeues": 0})["state"] = state
    return out


def active(record: dict[str, Any] | None, states: dict[str, dict[str, Any]]) -> str | None:
    """The state of the job `record` (the driver's) names while it is pending or running, else None."""
    if not record:
        return None
    state = states.get(record["job_id"], {}).get("state", "")
    if state in ACTIVE:
        return state
    if not state:  # unknown to SLURM yet: pending, for a while after its submission
        age = datetime.now(timezone.utc) - datetime.fromisoformat(record["submitted"])
        return "SUBMITTED" if age.total_seconds() < UNKNOWN_GRACE_S else None
    return None


def last_log_line(folder: Path, job_id: str) -> str:
    """What a job said last: the last line of its stderr (the error a failed job raised), else of its
    stdout, leaving out srun's and slurmstepd's own lines and the error's class name."""
    paths = submitit.core.utils.JobPaths(folder, job_id=job_id, task_id=0)
    for path in (paths.stderr, paths.stdout):
        text = path.read_text(errors="replace") if path.is_file() else ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("srun:", "slurmstepd:"))]
        if lines:
            return lines[-1].removeprefix("alexnet.errors.PipelineError: ")
    return ""


# --- the sweep -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shared:
    root: Path

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def sweep_file(self, commit: str) -> Path:
        return self.root / "sweeps" / f"{commit}.json"

    def submitted(self, commit: str) -> dict[str, dict[str, Any]]:
        path = self.sweep_file(commit)
        return (read_json(path) or {}).get("jobs", {}) if path.is_file() else {}


def job_spec(arm: Arm, seed: int, commit: str, url: str, target: str | None, common: dict[str, Any] | None,
             shared: Shared, scratch: str | None) -> JobSpec:
    overrides = {k: yaml_value(v) for k, v in run_overrides(arm, seed, common).items()}
    return JobSpec(exp_name(arm.name, seed), commit, url, overrides, target, str(shared.root), scratch)


def plan_jobs(arms: list[Arm], seeds: list[int], pushed: dict[str, str], submitted: dict[str, dict[str, Any]],
              states: dict[str, dict[str, Any]]) -> Plan:
    """What to submit: every (arm, seed) but those on the git remote and those whose job is still
    pending or running."""
    plan = Plan()
    for arm in arms:
        for seed in seeds:
            name = exp_name(arm.name, seed)
            state = active(submitted.get(name), states)
            if name in pushed:
                plan.skipped.append((arm, seed, f"on the git remote ({pushed[name][:7]})"))
            elif state:
                plan.skipped.append((arm, seed, f"job {submitted[name]['job_id']} is {state.lower()}"))
            else:
                plan.queue.append((arm, seed))
    return plan


def run_slurm(arms: list[Arm], seeds: list[int], settings: SlurmSettings, *, git_remote: str = "origin",
              shared: str | Path = ".dvc/tmp/slurm", scratch: str | None = None, target: str | None = "evaluate",
              common: dict[str, Any] | None = None, records_dir: str | Path = layout.RECORDS, dry_run: bool = False,
              wait: bool = True, poll: float = 30.0) -> Plan:
    """Submit what is missing of the sweep as one job array; wait for every job of it (see the
    module docstring). Raises PipelineError naming the runs that did not land."""
    commit = provenance.head_commit()
    if not commit:
        raise PipelineError("not in a git repository with a commit: the jobs clone a pushed commit")
    url = remote_url(git_remote)
    check_pushed(commit, git_remote)
    check_dvc_remote()
    if provenance.dirty_paths():
        print(f"note: uncommitted changes are not part of the jobs: they run commit {commit[:7]}")
    where = Shared(Path(shared).resolve())
    with planning():  # two drivers started together submit each run once
        submitted = where.submitted(commit)
        states = job_states(j["job_id"] for j in submitted.values())
        plan = plan_jobs(arms, seeds, remote_experiments(url, commit), submitted, states)
        print_plan(plan, settings.parallel, records_dir, common)
        specs = [job_spec(arm, seed, commit, url, target, common, where, scratch) for arm, seed in plan.queue]
        for spec in specs:
            print(f"$ sbatch (array task): {' '.join(spec.run_command())}")
        if dry_run or not specs and not wait:
            return plan
        if specs:
            jobs = executor(where.jobs, settings).map_array(ExperimentJob(), specs)
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            submitted.update({s.name: {"job_id": j.job_id, "submitted": now} for s, j in zip(specs, jobs)})
            write_json(where.sweep_file(commit), {"commit": commit, "git_url": url, "jobs": submitted})
            print(f"Submitted job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} task(s), at most "
                  f"{settings.parallel} at once); logs in {where.jobs}")
    if wait:
        wait_for_jobs(arms, seeds, commit, url, where, poll)
    else:
        print("Not waiting: `alexnet-ablations status --launcher slurm` follows them; the same `run` command "
              "again submits only what is missing.")
    return plan


def wait_for_jobs(arms: list[Arm], seeds: list[int], commit: str, url: str, where: Shared, poll: float) -> None:
    """Until no job of the sweep is pending or running; then every run must be on the git remote."""
    names = [exp_name(a.name, s) for a in arms for s in seeds]
    start = time.monotonic()
    while True:
        submitted = where.submitted(commit)
        try:
            states = job_states(submitted[n]["job_id"] for n in names if n in submitted)
        except PipelineError as e:  # a controller or accounting hiccup: ask again, do not give up
            print(f"  {e}", flush=True)
            time.sleep(poll)
            continue
        waiting = [n for n in names if active(submitted.get(n), states)]
        pushed = remote_experiments(url, commit)
        if not waiting:
            break
        print(f"  {sum(n in pushed for n in names)} of {len(names)} run(s) on the git remote, {len(waiting)} "
              f"pending or running ({time.monotonic() - start:.0f} s so far)", flush=True)
        time.sleep(poll)
    missing = [n for n in names if n not in pushed]
    if missing:
        why = [f"{n} ({last_log_line(where.jobs, submitted[n]['job_id'])})" if n in submitted else f"{n} (not submitted)"
               for n in missing]
        raise PipelineError(f"{len(missing)} of {len(names)} run(s) not on the git remote: {'; '.join(why)} "
                            "(rerun the same command to retry them)")
    print("All runs are on the git remote: `alexnet-ablations collect --git-remote <remote>` gathers them.")


def slurm_status(arms: list[Arm], seeds: list[int], *, git_remote: str = "origin",
                 shared: str | Path = ".dvc/tmp/slurm", results: str | Path = layout.ABLATION_RESULTS,
                 ) -> list[dict[str, Any]]:
    """Per (arm, seed): the cluster's view (see the module docstring)."""
    commit = provenance.head_commit()
    url = remote_url(git_remote)
    where = Shared(Path(shared).resolve())
    submitted = where.submitted(commit)
    try:
        states = job_states(j["job_id"] for j in submitted.values())
    except PipelineError as e:
        print(f"note: {e}")
        states = {}
    pushed = remote_experiments(url, commit)
    collected = {r.get("experiment_rev") for r in (read_json(results).get("runs", []) if Path(results).is_file() else [])}
    rows = []
    for arm in arms:
        for seed in seeds:
            name = exp_name(arm.name, seed)
            job = submitted.get(name, {}).get("job_id")
            info = states.get(job, {}) if job else {}
            state, requeues = info.get("state", ""), info.get("requeues", 0)
            detail = f"job {job}" if job else ""
            if name in pushed:
                row = ("collected" if pushed[name] in collected else "pushed", f"{pushed[name][:7]}")
            elif job and not state:
                row = ("unknown", f"{detail}: neither squeue nor sacct knows it")
            elif state in ACTIVE:
                label = "requeued" if requeues or state.startswith("REQUEUE") else \
                    "pending" if state == "PENDING" else "running"
                row = (label, f"{detail}, {state.lower()}" + (f", requeued {requeues}x" if requeues else ""))
            elif job:
                row = ("failed", f"{detail} {state.lower() or 'ended'}: {last_log_line(where.jobs, job)}")
            else:
                row = ("not submitted", "")
            rows.append({"run": name, "state": row[0], "detail": row[1]})
    return rows


def slurm_status_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{r['run']:32s} {r['state']:13s} {r['detail']}".rstrip() for r in rows]
    counts = {s: sum(r["state"] == s for r in rows) for s in
              ("collected", "pushed", "pending", "running", "requeued", "failed", "not submitted")}
    return lines + ["; ".join(f"{n} {s}" for s, n in counts.items() if n) or "no runs"]


def pull_experiments(git_remote: str, rev: str | None = None, all_commits: bool = False) -> None:
    """`dvc exp pull --no-cache <remote>`: the experiments' commits (metrics and run records are in
    git); `dvc exp pull <remote> <name>` gets one's models when wanted."""
    args = ["exp", "pull", "--no-cache", *(["--all-commits"] if all_commits else []),
            *(["--rev", rev] if rev else []), git_remote]
    print(f"$ dvc {' '.join(args)}")
    print(dvc(*args).strip())


__all__ = ["ACTIVE", "SlurmSettings", "active", "executor", "job_states", "plan_jobs", "pull_experiments", "run_slurm",
           "slurm_status", "slurm_status_lines"]

