"""Stage prepare: raw images -> data/prepared/ (shorter side 256, central 256x256 crop, RGB).

    python -m stages.prepare --params params.yaml --raw data/raw --out data/prepared \
        --metrics metrics/prepare.json --record records/prepare.json

Reads params section `prepare` (dvc.yaml lists all but workers, which changes no byte) and
`data.root` to find a user's own files (where they are, not what they are: dvc.yaml does not list
it, so moving the files reruns nothing here); writes the store of docs/architecture.md, its counts
(images and quarantined images per split) and the run record (images/s). Undecodable images are listed in
data/prepared/quarantine.csv.
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.data.prepare import prepare  # here: after run_stage pinned the numerics
    prepare(args.raw, args.out, params.prepare, record_path=args.record, root=params.data.root,
            metrics_path=args.metrics)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", required=True, help="raw dataset folder (download's output)")
    parser.add_argument("--out", required=True, help="prepared store folder to write")
    parser.add_argument("--metrics", required=True, help="counts JSON to write: images and quarantined images per split "
                        "(metrics/prepare.json)")
    parser.add_argument("--record", required=True, help="run record JSON to write: images/s, workers, time (records/prepare.json)")
    run_stage(main, parser)
