"""Stage train@<seed>: one net trained the paper's way (SGD, Section 5), resumable, DDP-ready.

Usage (as dvc.yaml runs it, for seed 0):
    python -m stages.train --params params.yaml --seed 0 --prepared data/prepared \
        --stats data/stats --out models/seed0 --checkpoints checkpoints/seed0 \
        --live dvclive/train-seed0 --record records/train-seed0.json

Data-parallel, one node with 8 GPUs (or 2 CPU processes with gloo: same command):
    torchrun --standalone --nproc_per_node 8 -m stages.train <the same arguments>
"""

from __future__ import annotations

import argparse

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.training.train import train  # here: after run_stage pinned the numerics
    train(params, args.seed, args.prepared, args.stats, args.out, args.checkpoints, args.live, args.record)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--seed", type=int, required=True, help="the net's seed (one of train.seeds)")
    parser.add_argument("--prepared", required=True, help="prepared store (data/prepared)")
    parser.add_argument("--stats", required=True, help="training-set statistics (data/stats)")
    parser.add_argument("--out", required=True, help="folder for model.pt and info.json (models/seed<N>)")
    parser.add_argument("--checkpoints", required=True, help="folder for last.pt (checkpoints/seed<N>)")
    parser.add_argument("--live", required=True, help="DVCLive folder (dvclive/train-seed<N>)")
    parser.add_argument("--record", help="JSON with the run's time, speed and git revision "
                        "(records/train-seed<N>.json)")
    run_stage(main, parser)
