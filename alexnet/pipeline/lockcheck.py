"""The committed dvc.lock against the clone: its inputs before a repro, its outputs after one.

    python -m alexnet.pipeline.lockcheck --stale              # before: every dep and param as dvc.lock says
    python -m alexnet.pipeline.lockcheck                      # after: dvc.lock against the one in HEAD
    python -m alexnet.pipeline.lockcheck --committed origin/main --lock dvc.lock

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
`.ci/run` runs both (README, "Exact reruns").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# Outputs whose bytes are not a function of the pipeline's inputs, by design.
NOT_COMPARED = ("records/", "checkpoints/")


def output_hashes(lock: dict[str, Any]) -> dict[str, str]:
    """{output path: md5} of every stage's outs in a parsed dvc.lock, outputs NOT_COMPARED aside."""
    hashes = {}
    for stage in (lock or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            path = out["path"]
            if not any(path == p or path.startswith(p) for p in NOT_COMPARED):
                hashes[path] = out.get("md5", "")
    return hashes


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


def stale_stages(status: dict[str, Any]) -> list[str]:
    """One line per stage of `dvc status --json` whose deps, params or command differ from
    dvc.lock; deps that are only missing ("deleted": not pulled or reproduced yet) are left out."""
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
                elif state != "deleted":
                    found.append(f"{path} {state}")
        if found:
            lines.append(f"{stage}: {', '.join(found)}")
    return lines


def dvc_status() -> dict[str, Any]:
    done = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: dvc status failed: {done.stderr.strip()}")
    return json.loads(done.stdout or "{}")


def where_made(lock: dict[str, Any], output: str, revision: str) -> str:
    """The stage that writes `output` and the numerics of the run that made the committed one,
    from the stage's committed run record (records/*.json), for a line under a differing output."""
    for name, stage in (lock or {}).get("stages", {}).items():
        outs = [o["path"] for o in stage.get("outs", [])]
        if output not in outs:
            continue
        for record in (o for o in outs if o.startswith("records/")):
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
        raise SystemExit(f"error: cannot read {path} at {revision}: {done.stderr.strip()}")
    return yaml.safe_load(done.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--committed", default="HEAD", help="the git revision whose dvc.lock is the reference")
    ap.add_argument("--lock", type=Path, default=Path("dvc.lock"), help="the dvc.lock just written")
    ap.add_argument("--stale", action="store_true",
                    help="instead: check that every dep and param of the clone is the one dvc.lock records")
    args = ap.parse_args(argv)
    if args.stale:
        stale = stale_stages(dvc_status())
        if stale:
            print(f"error: the committed dvc.lock is stale for {len(stale)} stage(s): rerun them and commit the "
                  "lock and outputs (dvc repro):", file=sys.stderr)
            for line in stale:
                print(f"  {line}", file=sys.stderr)
            return 1
        print("every stage's deps and params are the ones dvc.lock records")
        return 0
    if not args.lock.is_file():
        print(f"error: {args.lock} not found: run dvc repro first", file=sys.stderr)
        return 2
    old, new = committed_lock(args.committed, args.lock.as_posix()), yaml.safe_load(args.lock.read_text())
    diff = differences(old, new)
    if diff:
        print(f"error: {len(diff)} output(s) differ from the dvc.lock committed at {args.committed} "
              "(README, \"Exact reruns\"):", file=sys.stderr)
        for line in diff:
            print(f"  {line}", file=sys.stderr)
            print(f"    {where_made(old, line.split(':', 1)[0], args.committed)}", file=sys.stderr)
        return 1
    print(f"every compared output ({len(output_hashes(new))}) has the hash committed at {args.committed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
