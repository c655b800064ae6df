"""Tests for alexnet/claims/expqueue.py without DVC: reading `dvc queue status`, telling stale tasks apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from alexnet.claims import expqueue
from alexnet.claims.expqueue import Task

STATUS = """Task     Name                Created    Status
b38a14f  ablate-baseline-s0  01:03 AM   Running
1bf4275  ablate-no-lrn-s0    01:03 AM   Queued
8d8f571                      01:04 AM   Failed
5584c43  ablate-x-s1         13:04      Success

Worker status: 0 active, 1 idle
"""


def test_parse_status_reads_tasks_names_and_workers():
    tasks, workers = expqueue.parse_status(STATUS)
    assert tasks == [Task("b38a14f", "ablate-baseline-s0", "Running"), Task("1bf4275", "ablate-no-lrn-s0", "Queued"),
                     Task("8d8f571", "", "Failed"), Task("5584c43", "ablate-x-s1", "Success")]
    assert workers == 0
    assert expqueue.parse_status("No experiment tasks in the queue.\n") == ([], None)


def _wait_for_exec(pid: int, marker: str = "exec-run") -> None:
    """Until the child has exec'd (right after the fork, /proc shows the parent's command line)."""
    deadline = time.monotonic() + 30
    while marker.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _process_file(run_dir, rev: str, **info) -> None:
    d = run_dir / (rev + "0" * 33)
    d.mkdir(parents=True)
    (d / f"{d.name}.json").write_text(json.dumps({"pid": None, "returncode": None, **info}))


def test_stale_is_a_running_task_whose_process_is_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "exec-run"])
    _wait_for_exec(live.pid)
    try:
        _process_file(tmp_path, "aaaaaaa", pid=dead.pid)  # killed: no return code, no process
        _process_file(tmp_path, "bbbbbbb", pid=live.pid)  # still running
        _process_file(tmp_path, "ccccccc", pid=os.getpid(), returncode=0)  # ended, never collected
        tasks = [Task("aaaaaaa", "a", "Running"), Task("bbbbbbb", "b", "Running"), Task("ccccccc", "c", "Running"),
                 Task("ddddddd", "d", "Running"), Task("eeeeeee", "e", "Queued")]
        assert expqueue.process_alive("bbbbbbb", tmp_path) is True
        assert expqueue.process_alive("ddddddd", tmp_path) is None  # no process file yet
        # an active worker collects c and marks a failed (the sweep that killed a task whose process had just
        # ended, listed Running until collected, failed with "not a valid running experiment"); without one,
        # every Running task but the live b is stale
        assert expqueue.stale(tasks, 1, tmp_path) == []
        assert [t.name for t in expqueue.stale(tasks, 0, tmp_path)] == ["a", "c", "d"]
    finally:
        live.kill()
        live.wait()


def test_a_reused_pid_of_another_program_is_not_the_task(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "sleeper"])
    _wait_for_exec(other.pid, "sleeper")
    try:
        _process_file(tmp_path, "aaaaaaa", pid=other.pid)
        assert expqueue.process_alive("aaaaaaa", tmp_path) is False
    finally:
        other.kill()
        other.wait()


def test_planning_lock_is_exclusive(tmp_path):
    lock = tmp_path / "sub" / "plan.lock"
    code = ("import fcntl, sys; f = open(sys.argv[1], 'a'); "
            "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)")
    with expqueue.planning(lock):
        held = subprocess.run([sys.executable, "-c", code, str(lock)], capture_output=True)
        assert held.returncode != 0  # another process cannot take it meanwhile
    free = subprocess.run([sys.executable, "-c", code, str(lock)], capture_output=True)
    assert free.returncode == 0
