"""Stage download: a verified raw dataset in data/raw/ (tiny, ILSVRC-2012/2010, image folder, URLs).

    python -m stages.download --params params.yaml --out data/raw --record records/download.json

Reads params sections `data` and `tiny`; writes data/raw/manifest.json (docs/architecture.md) and,
for the tiny and url sources, the official ILSVRC files beside it. A user's own ImageNet files
(data.root) are MD5-verified in place, never copied, and named relative to data.root, so the
manifest is the same wherever they are; where they were and their mtimes go to the run record.
"""

from __future__ import annotations

import argparse
import time

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params
from alexnet.pipeline.records import write_record


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.data.sources import download_raw  # here: after run_stage pinned the numerics
    start = time.perf_counter()
    manifest = download_raw(params.data, params.tiny, args.out)
    if args.record:
        write_record(args.record, {"source": manifest["source"], "data_root": params.data.root,
                                   "files": manifest.get("where")}, seconds=time.perf_counter() - start)
    print(f"download: {manifest['source']} ({manifest['layout']}) -> {args.out}, verified={manifest['verified']}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="output folder (data/raw)")
    parser.add_argument("--record", help="run record JSON: where the user's files were, their mtimes (records/download.json)")
    run_stage(main, parser)
