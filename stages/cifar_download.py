"""Stage cifar_download: CIFAR-10 for Figure 1 and the LRN claim, read from the user's copy
(cifar.source: python or binary archive, or an image folder at cifar.path), checked and stored as
arrays; or, by default (cifar.source: tiny), a generated tiny set written in the official format.

Usage (as dvc.yaml runs it):
    python -m stages.cifar_download --params params.yaml --out data/cifar
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.claims.cifar.data import cifar_download  # here: after run_stage pinned the numerics
    cifar_download(params.cifar, args.out)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="folder for the image arrays and manifest.json: data/cifar")
    run_stage(main, parser)
