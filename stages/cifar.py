"""Stage cifar: the paper's Figure 1 (ReLU vs tanh, epochs to 25% training error, lr chosen per
activation by a grid, then several seeds) and its CIFAR-10 LRN claim (cuda-convnet's 13pct and
11pct nets, test error with and without LRN, per seed).

Usage (as dvc.yaml runs it):
    python -m stages.cifar --params params.yaml --data data/cifar --out reports/cifar \
        --metrics metrics/cifar.json --record records/cifar.json --checkpoints checkpoints/cifar
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.claims.cifar.run import cifar  # here: after run_stage pinned the numerics
    cifar(params.cifar, args.data, args.out, args.metrics, args.record, args.checkpoints, params.numerics)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, help="the cifar_download stage's folder (data/cifar)")
    parser.add_argument("--out", required=True, help="folder for figure1.png, the curves and runs.json (reports/cifar)")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write (metrics/cifar.json)")
    parser.add_argument("--record", required=True, help="timings JSON to write (records/cifar.json)")
    parser.add_argument("--checkpoints", help="folder for each net's per-epoch checkpoint (a rerun resumes from them)")
    run_stage(main, parser)
