"""Stage evaluate: top-1/top-5 error of the trained nets (and their ensemble), centre crop and the
paper's ten crops (Section 4.1), on the evaluation split.

Usage (as dvc.yaml runs it):
    python -m stages.evaluate --params params.yaml --prepared data/prepared --stats data/stats \
        --models models --out data/eval --metrics metrics/evaluate.json \
        --evaluation reports/evaluation.json --record records/evaluate.json

torchvision's published AlexNet weights (a local state_dict file; nothing is downloaded), with
torchvision's preprocessing, outside the pipeline (its outputs must not land in metrics/):
    python -m stages.evaluate --params params.yaml --prepared data/prepared \
        --torchvision-weights /path/to/alexnet-owt-7be5be79.pth \
        --out torchvision-eval --metrics torchvision-eval/metrics.json \
        --evaluation torchvision-eval/evaluation.json --record torchvision-eval/record.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alexnet.cli import run_stage, stage_parser
from alexnet.config import Params
from alexnet.errors import PipelineError
from alexnet.pipeline import layout

# The pipeline's own outputs (dvc.yaml): a torchvision evaluation written there would overwrite
# them, or put the report out of date.
PIPELINE_OUTPUTS = (layout.METRICS, layout.RECORDS, layout.EVAL, layout.EVALUATION)


def _inside_pipeline_outputs(path: str) -> str | None:
    resolved = Path(path).resolve()
    for out in PIPELINE_OUTPUTS:
        root = Path(out).resolve()
        if resolved == root or root in resolved.parents:
            return out
    return None


def main(args: argparse.Namespace, params: Params) -> None:
    from alexnet.evaluation.evaluate import evaluate  # here: after run_stage pinned the numerics
    if args.torchvision_weights:
        for option in ("out", "metrics", "record", "evaluation"):
            value = getattr(args, option)
            if value and (clash := _inside_pipeline_outputs(value)):
                raise PipelineError(f"--{option} {value} lies in the pipeline's {clash}/: write the torchvision "
                                    "evaluation elsewhere (e.g. torchvision-eval/)")
    elif not args.models or not args.stats:
        raise PipelineError("--models and --stats are needed to evaluate the trained nets "
                            "(or give --torchvision-weights)")
    evaluate(args.prepared, args.stats, args.models, args.out, args.metrics, params, record_path=args.record,
             torchvision_weights=args.torchvision_weights, descriptor_path=args.evaluation)


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--prepared", required=True, help="prepared store (data/prepared)")
    parser.add_argument("--stats", help="training-set statistics (data/stats); not used with --torchvision-weights")
    parser.add_argument("--models", help="folder holding seed<N>/model.pt (models); not used with --torchvision-weights")
    parser.add_argument("--out", required=True, help="folder for probabilities, labels, per-class errors (data/eval)")
    parser.add_argument("--metrics", required=True, help="headline metrics JSON (metrics/evaluate.json)")
    parser.add_argument("--evaluation", help="what was evaluated, JSON: split, images, classes, nets, members, ... "
                        "(reports/evaluation.json)")
    parser.add_argument("--record", help="run record JSON: device, numerics, time (records/evaluate.json)")
    parser.add_argument("--torchvision-weights", metavar="PATH",
                        help="evaluate this torchvision AlexNet state_dict file instead of the trained nets")
    run_stage(main, parser)
