"""Stage claims: the paper's claims (ablations, Figure 1, CIFAR-10 LRN) beside ours, with 95%
intervals and verdicts, as Markdown, CSV and LaTeX.

Usage (as dvc.yaml runs it):
    python -m stages.claims --params params.yaml --ablations ablations/results.json \
        --cifar reports/real/cifar10 reports/real/cifar10-modern reports/cifar --out reports/claims
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.claims.table import claims  # here: after run_stage pinned the numerics
    claims(args.ablations, args.cifar, args.out)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--ablations", required=True,
                        help="collected ablation runs (ablations/results.json, `alexnet-ablations collect`)")
    parser.add_argument("--cifar", required=True, nargs="+",
                        help="folders with a CIFAR-10 runs.json (the committed real-data runs, reports/real/cifar10*; "
                             "stage cifar's, reports/cifar): every one on the real CIFAR-10 is shown, else the "
                             "first that exists; none: 'not run'")
    parser.add_argument("--out", required=True, help="folder for claims.md/.csv/.tex (reports/claims)")
    run_stage(main, parser)
