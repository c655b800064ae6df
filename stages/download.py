"""Stage download: a verified raw dataset in data/raw/ (tiny, ILSVRC-2012/2010, image folder, URLs).

Usage:
    python stages/download.py --params params.yaml --out data/raw
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alexnet.cli import run_stage, stage_parser  # noqa: E402
from alexnet.sources import download_raw  # noqa: E402


def main(args, params) -> None:  # noqa: ANN001
    manifest = download_raw(params.data, params.tiny, args.out)
    print(f"download: {manifest['source']} ({manifest['layout']}) -> {args.out}, verified={manifest['verified']}")


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", required=True, help="output folder (data/raw)")
    run_stage(main, parser)
