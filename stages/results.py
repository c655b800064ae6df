"""Stage results: the paper's Table 1 (ILSVRC-2010 test) and Table 2 (ILSVRC-2012) with the
reproduced numbers beside them, as Markdown, CSV and LaTeX.

Usage (as dvc.yaml runs it):
    python -m stages.results --params params.yaml --evaluation metrics/evaluate.json \
        --evaluated reports/evaluation.json --out reports/tables
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.evaluation.results import results  # here: after run_stage pinned the numerics
    results(args.evaluation, args.out, params, descriptor_path=args.evaluated)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--evaluation", required=True, help="evaluation metrics (metrics/evaluate.json)")
    parser.add_argument("--evaluated", help="what the evaluation evaluated: split, images, classes, nets "
                        "(reports/evaluation.json)")
    parser.add_argument("--out", required=True, help="folder for table1/table2 .md/.csv/.tex (reports/tables)")
    run_stage(main, parser)
