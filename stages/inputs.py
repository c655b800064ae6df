"""Stage inputs: what identifies the user's own files (data.root), so DVC reruns what they feed.

    python stages/inputs.py --params params.yaml --out data/inputs.json

Reads params section `data`. For data.source ilsvrc2012, ilsvrc2010 and imagefolder the files
stay outside the repository, where DVC cannot see them change; this stage (always_changed in
dvc.yaml) records their path, bytes and mtime_ns (an image folder: a digest of its listing)
without reading them, in milliseconds. The file is byte-identical while nothing changed, so DVC
reruns download (which MD5-checks them again) and what follows only when one was replaced.
For the tiny and url sources the files live in data/raw/, which DVC hashes itself.
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params
from alexnet.fileio import write_json


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.sources import identify  # here: after run_stage pinned the numerics
    write_json(args.out, identify(params.data))


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="output JSON (data/inputs.json)")
    run_stage(main, parser)
