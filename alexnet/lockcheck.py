"""Compare the outputs a `dvc repro` just wrote with the committed ones: bit identity, checked.

    python -m alexnet.lockcheck                      # dvc.lock against the one in HEAD
    python -m alexnet.lockcheck --committed origin/main --lock dvc.lock

Every output dvc.lock records (cached or not: data, models, evaluations, figures, tables, metrics,
DVCLive curves, the report) must have the committed hash. Left aside, each for a reason that is
not the arithmetic: run records (wall times, revisions, the machine) and checkpoints (training
state kept for resuming, with its timings). Exit status 1 names each output that differs, is new or is missing; 0 says how
many matched. `.ci/run` runs it after `dvc repro` (README, "Exact reruns").
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args(argv)
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
        return 1
    print(f"every compared output ({len(output_hashes(new))}) has the hash committed at {args.committed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
