"""Running a stage script the way dvc.yaml does: a fresh interpreter, output captured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def stage_command(name: str, *args: object) -> list[str]:
    """The command line of stages/<name>.py with `args`."""
    return [sys.executable, str(REPO / "stages" / f"{name}.py"), *map(str, args)]


def run_stage(name: str, *args: object, cwd: Path, timeout: float | None = 300) -> subprocess.CompletedProcess:
    """Run stages/<name>.py to the end; stdout and stderr come back as text."""
    return subprocess.run(stage_command(name, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_clear_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A bad input's contract: exit status 2, a last line `error: ...` naming it, no traceback
    (progress bars may come before it)."""
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert last.startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in last, result.stderr
