"""Stage evaluate: top-1/top-5 error of the trained nets (and their ensemble), centre crop and the
paper's ten crops (Section 4.1), on the evaluation split; or of a torchvision AlexNet state_dict
when evaluate.torchvision_weights is set.

Usage (as dvc.yaml runs it):
    python stages/evaluate.py --params params.yaml --prepared data/prepared --stats data/stats \
        --models models --out data/eval --metrics metrics/evaluate.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alexnet.cli import run_stage, stage_parser  # noqa: E402
from alexnet.config import Params  # noqa: E402
from alexnet.evaluate import evaluate  # noqa: E402


def main(args: argparse.Namespace, params: Params) -> None:
    evaluate(args.prepared, args.stats, args.models, args.out, args.metrics, params)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--prepared", required=True, help="prepared store (data/prepared)")
    parser.add_argument("--stats", required=True, help="training-set statistics (data/stats)")
    parser.add_argument("--models", required=True, help="folder holding seed<N>/model.pt (models)")
    parser.add_argument("--out", required=True, help="folder for probabilities, labels, per-class errors (data/eval)")
    parser.add_argument("--metrics", required=True, help="metrics JSON (metrics/evaluate.json)")
    run_stage(main, parser)
