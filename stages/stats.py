"""Stage stats: mean image, channel mean/std and RGB PCA of the prepared training split.

    python -m stages.stats --params params.yaml --prepared data/prepared --out data/stats \
        --record records/stats.json

Reads params section `stats` (its one param, workers, changes no byte: dvc.yaml lists none);
writes data/stats/stats.npz (loaded by alexnet.data.stats.load_stats), data/stats/stats.json (the same,
readable) and the run record (channel means/stds, eigenvalues).
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.data.stats import stats  # here: after run_stage pinned the numerics
    stats(args.prepared, args.out, params.stats, record_path=args.record)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--prepared", required=True, help="prepared store folder (prepare's output)")
    parser.add_argument("--out", required=True, help="statistics folder to write")
    parser.add_argument("--record", required=True, help="run record JSON to write: images, channel moments, timings (records/stats.json)")
    run_stage(main, parser)
