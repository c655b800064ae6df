"""What every stage script and command-line tool shares: argument parsing and turning known errors
into one clear line and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from alexnet.config import Params, load_params
from alexnet.errors import USER_ERRORS
from alexnet.fileio import disk_full_as_error
from alexnet.runtime.pinning import pin


def stage_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the `--params` option; the stage adds its own paths."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def run_stage(main: Callable[[argparse.Namespace, Params], None], parser: argparse.ArgumentParser,
              argv: list[str] | None = None) -> None:
    """Parse args, load and validate params, pin the numerics, run `main`; known errors exit 2
    with one clear line. Only a real command line (`argv` None) is pinned, re-executed under the
    pinned environment if need be: a caller in the same process (a test) keeps its environment."""
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        if argv is None:
            pin(params.numerics)
        with disk_full_as_error():  # a write outside alexnet.fileio's helpers: still one line
            main(args, params)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run_tool(main: Callable[[argparse.Namespace], int | None], parser: argparse.ArgumentParser,
             argv: list[str] | None = None) -> int:
    """A command-line tool (alexnet.tools): parse args, run `main`; known errors exit 2 with one
    clear line, as a stage's do. `main` returns the exit status (None: 0), e.g. 1 for a finding."""
    args = parser.parse_args(argv)
    try:
        with disk_full_as_error():
            return main(args) or 0
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
