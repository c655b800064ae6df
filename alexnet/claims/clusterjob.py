"""One run of the ablation sweep as a cluster job does it, on whatever node it lands.

A job gets a `JobSpec` (the experiment's name, the commit, the git remote, the params it sets)
and, in `run_experiment`:

1. asks the git remote whether the experiment is already there (a job requeued after its push
   landed has nothing left to do);
2. clones the commit into node-local scratch, and links the clone's training state
   (`STATE_DIRS`: checkpoints/, git-ignored, not a DVC output) to a folder on shared storage
   keyed by commit and experiment name, so that a requeued job on any node resumes from the
   last epoch's checkpoint;
3. runs `dvc exp run --pull --allow-missing -n <name> -S ...`: what the experiment does not
   change (the prepared store, say) comes from the DVC remote, and the stages the params change
   rerun under the clone's own code;
4. pushes the experiment with `dvc exp push`, git refs to the remote and outputs to the DVC
   remote, then checks that both landed: the remote's ref names the experiment commit made here
   (a retried run's push prints "diverged ... No experiments to push" and exits 0, leaving the
   result on the node) and `dvc status --cloud` finds nothing left to push.

The experiment's ref, refs/exps/<commit[:2]>/<commit[2:]>/<name>, is a function of the commit and
the name (arm and seed): the same (arm, seed, commit) always lands on the same ref, whichever
clone ran it.

`ExperimentJob` is the callable the driver (alexnet.claims.slurm) submits: submitit's
Checkpointable, so a preempted or timed-out job is requeued with the same spec; it resumes
from the shared checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from alexnet.errors import PipelineError
from alexnet.pipeline import layout

EXPS = "refs/exps"
# Training state that is neither in git nor a DVC output: kept on shared storage per experiment.
STATE_DIRS = (layout.CHECKPOINTS,)


def exp_ref(commit: str, name: str) -> str:
    """DVC's ref for experiment `name` of baseline `commit` (a full SHA)."""
    return f"{EXPS}/{commit[:2]}/{commit[2:]}/{name}"


def git(*args: str, cwd: str | Path | None = None) -> str:
    """`git args...`'s stdout; a failure is a PipelineError with git's last line."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise PipelineError(f"`git {' '.join(args)}` failed: {lines[-1] if lines else done.returncode}")
    return done.stdout


def remote_experiments(url: str, commit: str) -> dict[str, str]:
    """The experiments of `commit` on the git remote at `url`: name -> experiment commit."""
    prefix = exp_ref(commit, "")
    out = {}
    for line in git("ls-remote", url, f"{prefix}*").splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith(prefix):
            out[ref[len(prefix):]] = sha
    return out


@dataclass(frozen=True)
class JobSpec:
    name: str  # the experiment's name (alexnet.claims.sweep.exp_name)
    commit: str  # the full SHA the experiment branches from
    git_url: str  # cloned from, pushed to
    overrides: dict[str, str] = field(default_factory=dict)  # `-S key=value`, values as YAML text
    target: str | None = "evaluate"  # the stage the run goes up to
    shared: str = ""  # a folder every node sees: the training state lives under it
    scratch: str | None = None  # node-local; None: $SLURM_TMPDIR, $TMPDIR or /tmp

    def run_command(self) -> list[str]:
        cmd = ["dvc", "exp", "run", "--pull", "--allow-missing", "-n", self.name]
        for key, value in self.overrides.items():
            cmd += ["-S", f"{key}={value}"]
        return cmd + ([self.target] if self.target else [])

    def state_dir(self) -> Path:
        return Path(self.shared) / "state" / self.commit / self.name


def scratch_dir(spec: JobSpec) -> Path:
    """Where this attempt clones: node-local, one folder per job and restart."""
    root = spec.scratch or os.environ.get("SLURM_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    attempt = f"{os.environ.get('SLURM_JOB_ID', os.getpid())}-r{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    return Path(root) / f"alexnet-{spec.name}-{spec.commit[:7]}-{attempt}"


def _outlive_scheduler_signals() -> None:
    """In DVC and the stages it starts: ignore SIGTERM and submitit's USR2, which SLURM sends to every
    process of a job it preempts or is about to time out. submitit's handler in the job's main
    process then requeues the job; the run ends with the job (SIGKILL) and resumes from its last
    checkpoint, rather than failing the job before the handler runs."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def dvc(args: list[str], cwd: Path, capture: bool = False) -> str:
    """DVC of this interpreter in the clone. Its output goes to the job's log (returned instead when
    `capture`); a failure is a PipelineError with DVC's last line, which `status` shows."""
    print(f"$ {' '.join(args)}", flush=True)
    with subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, text=True, preexec_fn=_outlive_scheduler_signals,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE if capture else subprocess.STDOUT) as proc:
        if capture:
            out, tail = proc.communicate()
        else:
            out, tail = "", ""
            for line in proc.stdout:  # type: ignore[union-attr]
                print(line, end="", flush=True)
                tail = line if line.strip() else tail
    if proc.returncode != 0:
        last = (tail or out).strip().splitlines()
        raise PipelineError(f"`{' '.join(args)}` failed with status {proc.returncode}" + (f": {last[-1]}" if last else ""))
    return out


def clone(spec: JobSpec, where: Path) -> None:
    """The commit, checked out in `where`, its training state linked to shared storage."""
    shutil.rmtree(where, ignore_errors=True)
    where.parent.mkdir(parents=True, exist_ok=True)
    git("clone", "--quiet", "--no-checkout", spec.git_url, str(where))
    git("checkout", "--quiet", "--detach", spec.commit, cwd=where)
    exclude = where / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as f:  # a link is not the folder the committed .gitignore names
        f.write("".join(f"/{d}\n" for d in STATE_DIRS))
    for name in STATE_DIRS:
        shared = spec.state_dir() / name
        shared.mkdir(parents=True, exist_ok=True)
        local = where / name
        if local.is_symlink() or local.is_file():
            local.unlink()
        elif local.exists():
            shutil.rmtree(local)
        local.symlink_to(shared.resolve(), target_is_directory=True)


def unpushed(status_json: str) -> list[str]:
    """The outputs `dvc status --cloud --json` lists as not on the DVC remote."""
    try:
        status = json.loads(status_json or "{}")
    except json.JSONDecodeError as e:
        raise PipelineError(f"`dvc status --cloud --json` printed no JSON ({e})") from e
    return sorted(path for path, state in status.items() if state in ("new", "missing"))


def run_experiment(spec: JobSpec) -> dict[str, Any]:
    """Run, push and verify one experiment (see the module docstring); returns its name, ref and
    experiment commit. Raises PipelineError when anything did not land."""
    ref = exp_ref(spec.commit, spec.name)
    landed = remote_experiments(spec.git_url, spec.commit).get(spec.name)
    if landed:
        print(f"{spec.name} is already on {spec.git_url} ({landed[:7]}): nothing to run", flush=True)
        return {"name": spec.name, "ref": ref, "sha": landed, "ran": False}
    where = scratch_dir(spec)
    try:
        clone(spec, where)
        dvc(spec.run_command(), where)
        made = git("rev-parse", "--verify", ref, cwd=where).strip()
        dvc(["dvc", "exp", "push", "origin", spec.name], where)
        there = remote_experiments(spec.git_url, spec.commit).get(spec.name)
        if there != made:
            raise PipelineError(f"{spec.name}: the push did not land: {spec.git_url} has "
                                f"{there[:7] + ' (another run of it)' if there else 'no ref'} for {ref}, "
                                f"this run made {made[:7]}")
        missing = unpushed(dvc(["dvc", "status", "--cloud", "--json"], where, capture=True))
        if missing:
            raise PipelineError(f"{spec.name}: outputs not on the DVC remote after the push: {', '.join(missing)}")
        print(f"{spec.name}: pushed {made[:7]} to {spec.git_url} and its outputs to the DVC remote", flush=True)
        return {"name": spec.name, "ref": ref, "sha": made, "ran": True}
    finally:
        shutil.rmtree(where, ignore_errors=True)


class ExperimentJob(submitit.helpers.Checkpointable):
    """The job: `run_experiment(spec)`. Checkpointable: on preemption or time-out submitit requeues
    the same call, which resumes from the shared checkpoint."""

    def __call__(self, spec: JobSpec) -> dict[str, Any]:
        return run_experiment(spec)


__all__ = ["EXPS", "ExperimentJob", "JobSpec", "STATE_DIRS", "exp_ref", "git", "remote_experiments",
           "run_experiment", "scratch_dir", "unpushed"]
