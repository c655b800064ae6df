"""The paper's ablations as DVC experiments (alexnet.claims.sweep: what each command does).

    alexnet-ablations list
    alexnet-ablations run [--arms no-lrn no-dropout] [--seeds 0 1] [--jobs 2] [--dry-run]
    alexnet-ablations status [--arms ...] [--seeds 0 1]
    alexnet-ablations collect --out ablations/results.json

(`python -m alexnet.tools.ablations ...` is the same.) Known errors exit 2 with one line.
"""

from __future__ import annotations

import argparse
import sys

from alexnet.claims.arms import ARMS, ARMS_BY_NAME, MEASURES, overrides_text
from alexnet.claims.sweep import collect, exp_show, parse_set, run, seconds_per_net, status_lines, sweep_status
from alexnet.cli import run_tool
from alexnet.fileio import write_json


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alexnet-ablations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the arms and what each changes")
    r = sub.add_parser("run", help="queue the arms as DVC experiments and run them")
    r.add_argument("--arms", nargs="+", default=[a.name for a in ARMS], choices=[a.name for a in ARMS],
                   help="arms to run (default: all, baseline included)")
    r.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed and arm (default: 0)")
    r.add_argument("--jobs", type=int, default=1, help="queue workers running at once (default 1)")
    r.add_argument("--target", default="evaluate", help="stage each run goes up to (default evaluate; '' = all)")
    r.add_argument("--records", default="records", help="folder with the baseline's run records, train-seed<N>.json")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a param set alike for every arm, baseline included (e.g. train.epochs=2 for a quick check)")
    r.add_argument("--dry-run", action="store_true", help="print the commands and the cost, queue nothing")
    st = sub.add_parser("status", help="per arm and seed: done, running, queued, failed, stale or not run")
    st.add_argument("--arms", nargs="+", default=[a.name for a in ARMS], choices=[a.name for a in ARMS])
    st.add_argument("--seeds", nargs="+", type=int, default=[0])
    st.add_argument("--records", default="records", help="folder with the baseline's run records, train-seed<N>.json")
    c = sub.add_parser("collect", help="gather the arms' metrics from `dvc exp show --json` into a file")
    c.add_argument("--out", default="ablations/results.json")
    c.add_argument("--all-commits", action="store_true", help="look at experiments of every commit, not only HEAD's")
    c.add_argument("--rev", default=None, help="look at the experiments of this commit instead of HEAD's")
    return p


def command(args: argparse.Namespace) -> None:
    if args.command == "list":
        for a in ARMS:
            print(f"{a.name:20s} {overrides_text(a)}\n{'':20s} {a.what}")
            if a.reference != "baseline" and a.judged_on:
                print(f"{'':20s} against: {a.reference}, seed by seed")
            for claim, measure in a.judged_on:
                print(f"{'':20s} judged on: {claim} by {MEASURES[measure].what}")
    elif args.command == "run":
        if "baseline" not in args.arms:
            print("note: the baseline arm is not among --arms; collect needs it for each seed")
        run([ARMS_BY_NAME[n] for n in args.arms], args.seeds, args.jobs, args.dry_run, args.target or None,
            args.records, common=parse_set(args.set))
    elif args.command == "status":
        rows, workers = sweep_status([ARMS_BY_NAME[n] for n in args.arms], args.seeds)
        print("\n".join(status_lines(rows, workers, seconds_per_net(args.records))))
    else:
        extra = (["--all-commits"] if args.all_commits else []) + (["--rev", args.rev] if args.rev else [])
        results = collect(exp_show(*extra))
        write_json(args.out, results)
        print(f"{len(results['runs'])} run(s) written to {args.out}")


def main(argv: list[str] | None = None) -> int:
    return run_tool(command, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
