"""The committed dvc.lock against the clone (alexnet.pipeline.lockcheck: what each check means).

    alexnet-lockcheck --stale           # before a repro: every dep and param as dvc.lock records
    alexnet-lockcheck                   # after a repro: every output's hash as committed at HEAD
    alexnet-lockcheck --committed origin/main --lock dvc.lock

Exit status 1 names each stale stage or differing output; 2 is an error (one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alexnet.cli import run_tool
from alexnet.errors import PipelineError
from alexnet.pipeline.layout import LOCK, lock_hashes, read_lock
from alexnet.pipeline.lockcheck import committed_lock, differences, dvc_status, output_hashes, stale_stages, where_made


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="alexnet-lockcheck", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--committed", default="HEAD", help="the git revision whose dvc.lock is the reference")
    ap.add_argument("--lock", type=Path, default=Path(LOCK),
                    help="the dvc.lock just written (with --stale: the committed one, for its outputs)")
    ap.add_argument("--stale", action="store_true",
                    help="instead: check that every dep and param of the clone is the one dvc.lock records")
    return ap


def check_stale(lock: Path) -> int:
    outputs = set(lock_hashes(read_lock(lock)))
    stale = stale_stages(dvc_status(), outputs)
    if stale:
        print(f"error: the committed dvc.lock is stale for {len(stale)} stage(s): rerun them and commit the "
              "lock and outputs (dvc repro):", file=sys.stderr)
        for line in stale:
            print(f"  {line}", file=sys.stderr)
        return 1
    print("every stage's deps and params are the ones dvc.lock records")
    return 0


def check_outputs(committed: str, lock: Path) -> int:
    if not lock.is_file():
        raise PipelineError(f"{lock} not found: run dvc repro first")
    old, new = committed_lock(committed, lock.as_posix()), read_lock(lock)
    diff = differences(old, new)
    if diff:
        print(f"error: {len(diff)} output(s) differ from the dvc.lock committed at {committed} "
              "(docs/reproducibility.md):", file=sys.stderr)
        for line in diff:
            print(f"  {line}", file=sys.stderr)
            print(f"    {where_made(old, line.split(':', 1)[0], committed)}", file=sys.stderr)
        return 1
    print(f"every compared output ({len(output_hashes(new))}) has the hash committed at {committed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda a: check_stale(a.lock) if a.stale else check_outputs(a.committed, a.lock), parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
