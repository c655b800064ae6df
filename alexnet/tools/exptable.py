"""The experiments table: headline metrics and only the params that differ (alexnet.claims.exptable).

    alexnet-exptable                    # this commit's experiments, at most 120 columns
    alexnet-exptable --all-commits --width 160
"""

from __future__ import annotations

import argparse
import json
import sys

from alexnet.claims.expqueue import dvc
from alexnet.claims.exptable import render, rows_of
from alexnet.cli import run_tool


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="alexnet-exptable", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=120, help="the widest line (default 120)")
    ap.add_argument("--all-commits", action="store_true", help="experiments of every commit, not only HEAD's")
    return ap


def command(args: argparse.Namespace) -> None:
    show = dvc("exp", "show", "--json", *(["--all-commits"] if args.all_commits else []))
    print(render(rows_of(json.loads(show)), args.width))


def main(argv: list[str] | None = None) -> int:
    return run_tool(command, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
