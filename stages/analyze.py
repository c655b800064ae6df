"""Stage analyze: Figure 3 kernels, Figure 4 top-5 and fc7 neighbours, binary codes, t-SNE.

Usage (as dvc.yaml runs it):
    python -m stages.analyze --params params.yaml --prepared data/prepared --stats data/stats \
        --models models --eval data/eval --out reports/figures --metrics metrics/analyze.json \
        --record records/analyze.json
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.analysis.analyze import analyze  # here: after run_stage pinned the numerics
    analyze(args.prepared, args.stats, args.models, args.eval, args.out, args.metrics, params,
            record_path=args.record)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--prepared", required=True, help="prepared store (data/prepared)")
    parser.add_argument("--stats", required=True, help="training-set statistics (data/stats)")
    parser.add_argument("--models", required=True, help="trained nets; the first seed's is used (models)")
    parser.add_argument("--eval", required=True, help="evaluation outputs with the softmax probabilities (data/eval)")
    parser.add_argument("--out", required=True, help="folder for the PNG figures (reports/figures)")
    parser.add_argument("--metrics", required=True, help="retrieval precisions, counts, losses JSON to write (metrics/analyze.json)")
    parser.add_argument("--record", help="run record JSON to write: query timings, time (records/analyze.json)")
    run_stage(main, parser)
