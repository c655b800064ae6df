"""Stage cifar: the paper's Figure 1 (ReLU vs tanh, epochs to 25% training error, lr chosen per
activation by a sweep) and its CIFAR-10 LRN claim (test error with and without LRN).

Usage (as dvc.yaml runs it):
    python stages/cifar.py --params params.yaml --data data/cifar --out reports/cifar \
        --metrics metrics/cifar.json --run-record records/cifar.json
"""

from __future__ import annotations

import argparse

from alexnet.cifar import cifar
from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    cifar(params.cifar, args.data, args.out, args.metrics, args.run_record)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--data", required=True, help="the cifar_download stage's folder (data/cifar)")
    parser.add_argument("--out", required=True, help="folder for figure1.png and curves.csv (reports/cifar)")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write (metrics/cifar.json)")
    parser.add_argument("--run-record", required=True, help="timings JSON to write (records/cifar.json)")
    run_stage(main, parser)
