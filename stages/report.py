"""Stage report: the paper-style report of the run, reports/report.md and a self-contained
reports/report.html (figures embedded), plus the training-curves figure they show.

Usage (as dvc.yaml runs it):
    python -m stages.report --params params.yaml --metrics metrics --evaluation reports/evaluation.json \
        --tables reports/tables --figures reports/figures --live dvclive --models models \
        --lock dvc.lock --curves reports/training_curves.png --out reports/report.html \
        --markdown reports/report.md --claims reports/claims \
        --cifar reports/real/cifar10 reports/real/cifar10-modern reports/cifar
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.report.inputs import ReportInputs  # here: after run_stage pinned the numerics
    from alexnet.report.render import report
    src = ReportInputs(metrics=Path(args.metrics), tables=Path(args.tables), figures=Path(args.figures),
                  live=Path(args.live), models=Path(args.models), lock=Path(args.lock),
                  claims=Path(args.claims), cifar=[Path(c) for c in args.cifar], evaluation=Path(args.evaluation))
    report(params, src, args.out, args.markdown, args.curves)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", required=True, help="metrics folder (prepare.json, evaluate.json, analyze.json)")
    parser.add_argument("--evaluation", required=True, help="what the evaluation evaluated (reports/evaluation.json)")
    parser.add_argument("--tables", required=True, help="the results stage's tables (reports/tables)")
    parser.add_argument("--figures", required=True, help="the analyze stage's figures (reports/figures)")
    parser.add_argument("--live", required=True, help="DVCLive folder with train-seed<N>/ (dvclive)")
    parser.add_argument("--models", required=True, help="trained nets with info.json (models)")
    parser.add_argument("--lock", required=True, help="dvc.lock, for the data hashes (dvc.lock)")
    parser.add_argument("--claims", required=True, help="the claims stage's tables (reports/claims)")
    parser.add_argument("--cifar", nargs="+", required=True,
                        help="CIFAR-10 run folders (reports/real/cifar10 reports/real/cifar10-modern reports/cifar): "
                             "Figure 1 of every one on the real CIFAR-10, else of the first that has one")
    parser.add_argument("--curves", required=True, help="training-curves PNG to write (reports/training_curves.png)")
    parser.add_argument("--out", required=True, help="HTML report to write (reports/report.html)")
    parser.add_argument("--markdown", required=True, help="Markdown report to write (reports/report.md)")
    run_stage(main, parser)
