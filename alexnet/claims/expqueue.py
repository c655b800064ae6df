"""DVC's experiment queue as a long sweep sees it: task states, stale tasks, workers, one planner.

DVC 3's queue (celery) lists a task as Running until its worker records the result. A worker
killed with -9 (a crash, an out-of-memory kill, a lost ssh session) never does, so the task stays
Running for ever and `dvc queue start` passes it by. A Running task is *stale* when no worker is
active and the `dvc exp exec-run` process DVC started for it is gone: DVC's process file for it
(`.dvc/tmp/exps/run/<rev>/<rev>.json`) names the pid, and a return code once it ended (an active
worker collects such a task itself, see `stale`). `dvc queue kill` is DVC's own way to settle such a task: its process cannot be signalled, so DVC marks the
task failed, after which it can be removed and queued again (alexnet.claims.sweep.run does).

`planning()` is a lock (one `.dvc/tmp` file, flock) held while a command looks at the queue and
adds to it, so two sweeps started together queue each experiment once.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alexnet.errors import PipelineError

RUN_DIR = Path(".dvc/tmp/exps/run")  # DVC's per-task process files
LOCK = Path(".dvc/tmp/alexnet-sweep.lock")
WAITING = ("Queued", "Running")


@dataclass(frozen=True)
class Task:
    rev: str  # the short stash revision `dvc queue status` prints
    name: str
    status: str  # Queued | Running | Success | Failed (as DVC prints them)


def dvc(*args: str) -> str:
    """Run `dvc args...`; a failure is a PipelineError with DVC's last line."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        msg = (result.stderr or result.stdout or "").strip().splitlines()
        raise PipelineError(f"`dvc {' '.join(args)}` failed: {msg[-1] if msg else result.returncode}")
    return result.stdout or ""


def parse_status(text: str) -> tuple[list[Task], int | None]:
    """The tasks of `dvc queue status` and its active worker count (None if it printed none)."""
    tasks, workers = [], None
    for line in text.splitlines():
        cells = line.split()
        if line.startswith("Worker status:"):
            try:
                workers = int(cells[2])
            except (IndexError, ValueError):
                workers = None
        elif len(cells) >= 3 and cells[0] != "Task" and cells[-1] in ("Queued", "Running", "Success", "Failed"):
            # Task  Name  Created (one or two cells)  Status; an unnamed task has no Name cell
            name = cells[1] if len(cells) >= 5 or (len(cells) == 4 and ":" not in cells[1]) else ""
            tasks.append(Task(cells[0], name, cells[-1]))
    return tasks, workers


def status() -> tuple[list[Task], int | None]:
    return parse_status(dvc("queue", "status"))


def process_alive(rev: str, run_dir: Path = RUN_DIR) -> bool | None:
    """Whether the `dvc exp exec-run` process of the task `rev` (short or full) still runs; None
    when DVC left no process file for it (not started yet, or another DVC layout)."""
    infos = sorted(run_dir.glob(f"{rev}*/{rev}*.json")) if run_dir.is_dir() else []
    if not infos:
        return None
    try:
        info = json.loads(infos[0].read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if info.get("returncode") is not None or not isinstance(info.get("pid"), int):
        return False  # it ended, yet the task was never marked done: its worker died
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a pid reused by an unrelated process since
        return b"exec-run" in Path(f"/proc/{info['pid']}/cmdline").read_bytes()
    except OSError:
        return True


def stale(tasks: list[Task], workers: int | None, run_dir: Path = RUN_DIR) -> list[Task]:
    """The Running tasks nobody will finish: no worker is active, and the task's process is gone
    (killed, or ended and never collected) or never started. While a worker is active it collects
    a task whose process has just ended (listed Running meanwhile: seconds here, minutes for
    ILSVRC-size outputs) and marks a killed one failed, so nothing is stale then; with several
    workers, a dead one's task is settled once the others are done."""
    if workers != 0:
        return []
    return [t for t in tasks if t.status == "Running" and process_alive(t.rev, run_dir) is not True]


def settle_stale(tasks: list[Task]) -> None:
    """Mark stale tasks failed (`dvc queue kill`: their process cannot be signalled, so DVC does)
    and remove them from the queue, so that they can be queued again."""
    if not tasks:
        return
    names = [t.name or t.rev for t in tasks]
    dvc("queue", "kill", *names)
    dvc("queue", "remove", *names)


def start_workers(jobs: int) -> None:
    """`dvc queue start -j jobs` (a no-op for workers already running). Its output goes to a file,
    not a pipe: the daemon DVC leaves behind keeps the command's stdout and stderr open until the
    worker ends, so a captured `dvc queue start` would not return before the whole queue had run."""
    log = LOCK.parent / "alexnet-queue-start.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        result = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        raise PipelineError(f"`dvc queue start -j {jobs}` failed: {lines[-1] if lines else result.returncode}")


def last_log_line(name: str) -> str:
    """The last non-empty line of a task's log (`dvc queue logs`), or '' where there is none."""
    result = subprocess.run(["dvc", "queue", "logs", name], capture_output=True, text=True)
    lines = [ln.strip() for ln in (result.stdout or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@contextmanager
def planning(lock: Path = LOCK) -> Iterator[None]:
    """Held while a sweep reads the queue and queues into it (waits for another sweep's turn)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


__all__ = ["Task", "WAITING", "dvc", "last_log_line", "parse_status", "planning", "process_alive",
           "settle_stale", "stale", "start_workers", "status"]
