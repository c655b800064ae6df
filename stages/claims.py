"""Stage claims: the paper's ablation and CIFAR-10 claims beside ours, with spreads and verdicts,
as Markdown, CSV and LaTeX.

Usage (as dvc.yaml runs it):
    python stages/claims.py --params params.yaml --ablations ablations/results.json \
        --cifar metrics/cifar.json --cifar-record records/cifar.json --out reports/claims
"""

from __future__ import annotations

import argparse

from alexnet.claims import claims
from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    claims(args.ablations, args.cifar, args.out, args.cifar_record)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--ablations", required=True,
                        help="collected ablation runs (ablations/results.json, `python -m alexnet.ablations collect`)")
    parser.add_argument("--cifar", required=True, help="the cifar stage's metrics (metrics/cifar.json)")
    parser.add_argument("--cifar-record", help="the cifar stage's run record: dataset, epochs (records/cifar.json)")
    parser.add_argument("--out", required=True, help="folder for claims.md/.csv/.tex (reports/claims)")
    run_stage(main, parser)
