"""Jobs through submitit on a real single-node SLURM cluster (tests/slurm_cluster.py starts
Debian's daemons for this module): a job's result and its accounting state, a job array, and a
checkpointable job that is preempted mid-run, requeued by SLURM and resumed from its own state.

Needs Debian's slurmctld, slurmd, slurm-client, munge, slurmdbd and mariadb-server, and root
(.ci/slurm/install.sh installs them): skipped without them, except under CI, where it fails.
About a minute on a 2-core machine. The cluster is tests/conftest.py's `cluster` fixture, one per
test session, shared with tests/test_slurm_sweep.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import pytest
import submitit
from slurm_cluster import Cluster

pytestmark = pytest.mark.slurm

# A job unpickles its function in a fresh interpreter that cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# submitit takes a USR2 in a job's first min(80 %, timeout - 10 min) for a preemption, a later one
# for a time-out (which uses up one of max_num_timeout requeues): a job of 10 minutes or less
# only ever times out.
TIMEOUT_MIN = 30
JOB_TIMEOUT_S = 120


def executor_for(cluster: Cluster, folder: Path) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(slurm_partition=cluster.partition, timeout_min=TIMEOUT_MIN, cpus_per_task=1)
    return executor


def square(x: int) -> int:
    return x * x


class SumOfSquares(submitit.helpers.Checkpointable):
    """Sums i * i for i < steps, one step every `step_s`; after each step the partial sum goes to
    `folder`/state.json, where a restart resumes from. Each start appends its first i to `starts`.
    Checkpointable: on preemption, submitit requeues the same call."""

    def __call__(self, folder: Path, steps: int, step_s: float) -> int:
        state = folder / "state.json"
        i, total = json.loads(state.read_text()) if state.exists() else (0, 0)
        with (folder / "starts").open("a") as starts:
            starts.write(f"{i}\n")
        while i < steps:
            total, i = total + i * i, i + 1
            partial = state.with_suffix(".tmp")
            partial.write_text(json.dumps([i, total]))
            partial.replace(state)  # whole or not at all: a kill mid-write loses no progress
            time.sleep(step_s)
        return total


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether `condition` held within `timeout_s` (polled every 0.2 s)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def result_of(job: submitit.Job, timeout_s: float = JOB_TIMEOUT_S) -> object:
    """The job's result; fails (with the job's stderr) instead of waiting for ever."""
    assert wait_until(job.done, timeout_s), f"job {job.job_id} not done in {timeout_s} s ({job.state}): {job.stderr()}"
    return job.result()


def sacct_states(cluster: Cluster, job_id: str, *options: str) -> list[str]:
    """The job's states in accounting (of its allocation, not its steps)."""
    out = cluster.run("sacct", "--jobs", job_id, "--allocations", "--noheader", "--parsable2",
                      "--format=State", *options)
    return out.split()


def test_a_job_returns_its_result_and_is_completed_in_accounting(cluster, tmp_path):
    job = executor_for(cluster, tmp_path / "jobs").submit(square, 7)
    assert result_of(job) == 49
    completed = wait_until(lambda: sacct_states(cluster, job.job_id) == ["COMPLETED"], 30)
    assert completed, sacct_states(cluster, job.job_id)


def test_a_job_array_returns_every_result(cluster, tmp_path):
    jobs = executor_for(cluster, tmp_path / "jobs").map_array(square, [1, 2, 3])
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1  # one array, three tasks
    assert [result_of(job) for job in jobs] == [1, 4, 9]


def test_a_preempted_job_is_requeued_and_resumes_from_its_state(cluster, tmp_path):
    steps, step_s = 16, 0.5  # 8 s: time to preempt it after 2 steps
    uninterrupted = tmp_path / "uninterrupted"
    uninterrupted.mkdir()
    expected = SumOfSquares()(uninterrupted, steps, 0)
    work = tmp_path / "work"
    work.mkdir()
    job = executor_for(cluster, tmp_path / "jobs").submit(SumOfSquares(), work, steps, step_s)
    state = work / "state.json"
    assert wait_until(lambda: state.exists() and json.loads(state.read_text())[0] >= 2, JOB_TIMEOUT_S), job.stderr()
    job._interrupt()  # as SLURM preempts: SIGTERM, then USR2; submitit checkpoints and requeues
    assert result_of(job) == expected
    starts = [int(i) for i in (work / "starts").read_text().split()]
    assert len(starts) == 2 and 0 == starts[0] < starts[1] < steps, starts  # ran twice, resumed mid-way
    assert "REQUEUED" in sacct_states(cluster, job.job_id, "--duplicates")  # the first run's record
