"""The committed dvc.lock against the clone: its inputs before a repro, its outputs after one.

    alexnet-lockcheck --stale           # before: every dep and param as dvc.lock says
    alexnet-lockcheck                   # after: dvc.lock against the one in HEAD
    alexnet-lockcheck --committed origin/main --lock dvc.lock

Before (`--stale`): a commit that changes pipeline code or params must commit the lock its rerun
produced, or a teammate who clones and pulls reruns the whole pipeline. `dvc status` lists each
stage whose code, data or params differ from dvc.lock; deps merely absent (outputs neither pulled
nor reproduced yet, as in a fresh clone) are not stale. Exit status 1 names each stale stage.

After:
Every output dvc.lock records (cached or not: data, models, evaluations, figures, tables, metrics,
DVCLive curves, the report) must have the committed hash. Left aside, each for a reason that is
not the arithmetic: run records (wall times, revisions, the machine) and checkpoints (training
state kept for resuming, with its timings). Exit status 1 names each output that differs, is new or
is missing, with the stage that writes it and the numerics its committed run record names (the
CPU's vendor, ISA flags and torch's kernel capability: where to look); 0 says how many matched.
`.ci/run` runs both (docs/reproducibility.md).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from alexnet.errors import PipelineError
from alexnet.pipeline import layout

# Outputs whose bytes are not a function of the pipeline's inputs, by design.
NOT_COMPARED = (f"{layout.RECORDS}/", f"{layout.CHECKPOINTS}/")


def output_hashes(lock: dict[str, Any]) -> dict[str, str]:
    """{output path: md5} of every stage's outs in a parsed dvc.lock, outputs NOT_COMPARED aside."""
    return {path: md5 for path, md5 in layout.lock_hashes(lock or {}).items()
            if not any(path == p or path.startswith(p) for p in NOT_COMPARED)}


def differences(committed: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per output whose hash differs, that only one lock has, in path order."""
    old, now = output_hashes(committed), output_hashes(new)
    lines = []
    for path in sorted(old.keys() | now.keys()):
        if path not in now:
            lines.append(f"{path}: in the committed dvc.lock, not produced")
        elif path not in old:
            lines.append(f"{path}: produced, not in the committed dvc.lock")
        elif old[path] != now[path]:
            lines.append(f"{path}: md5 {now[path]}, committed {old[path]}")
    return lines


def produced(path: str, outputs: set[str]) -> bool:
    """Whether a dep is another stage's output, inside one, or a folder holding one (`models` holds
    models/seed0): its state follows that stage, whose own deps say whether it is stale."""
    return any(path == o or o.startswith(path + "/") or path.startswith(o + "/") for o in outputs)


def stale_stages(status: dict[str, Any], outputs: set[str] = frozenset()) -> list[str]:
    """One line per stage of `dvc status --json` whose deps, params or command differ from
    dvc.lock. Left out: deps that are only missing ("deleted") and deps that are the pipeline's
    own `outputs`: in a fresh clone they are not pulled or reproduced yet (a folder of them holds
    only DVC's .gitignore), which is not a stale lock."""
    lines = []
    for stage, changes in sorted(status.items()):
        found = []
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                found.append(str(change))  # "changed command", "always changed"
                continue
            for path, state in change.get("changed deps", {}).items():
                if isinstance(state, dict):  # a params file: {section or key: state}
                    found += [f"param {key} {what}" for key, what in sorted(state.items())]
                elif state != "deleted" and not produced(path, outputs):
                    found.append(f"{path} {state}")
        if found:
            lines.append(f"{stage}: {', '.join(found)}")
    return lines


def dvc_status() -> dict[str, Any]:
    done = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"dvc status failed: {done.stderr.strip()}")
    return json.loads(done.stdout or "{}")


def where_made(lock: dict[str, Any], output: str, revision: str) -> str:
    """The stage that writes `output` and the numerics of the run that made the committed one,
    from the stage's committed run record (records/*.json), for a line under a differing output."""
    for name, outs in layout.stage_outputs(lock or {}).items():
        if output not in outs:
            continue
        for record in (o for o in outs if o.startswith(f"{layout.RECORDS}/")):
            done = subprocess.run(["git", "show", f"{revision}:{record}"], capture_output=True, text=True)
            numerics = json.loads(done.stdout).get("numerics") if done.returncode == 0 else None
            if numerics:
                keys = ("vendor", "cpu", "isa", "cpu_capability", "mkldnn", "mkl_cbwr", "threads")
                made = ", ".join(f"{k} {numerics[k]}" for k in keys if k in numerics)
                return f"stage {name}; the committed one was made with {made} ({record})"
        return f"stage {name}"
    return "no stage of the committed dvc.lock writes it"


def committed_lock(revision: str, path: str = "dvc.lock") -> dict[str, Any]:
    """dvc.lock as committed at `revision` (git show)."""
    done = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"cannot read {path} at {revision}: {done.stderr.strip()}")
    return layout.parse_lock(done.stdout)
