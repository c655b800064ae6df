"""Benchmark: where a training step's time goes on a GPU (bare forward+backward+step, no input).

    python benchmarks/bench_gpu_step.py                  # about 2-3 minutes on an H100/H200
    python benchmarks/bench_gpu_step.py --no-compile     # skip the torch.compile rows (slow to build)

Times the paper's net (width 1, 1000 classes, 224 input, the paper's SGD) on one random batch
already on the device, one switch at a time against the fp32 batch-128 row: bf16 autocast,
channels_last, TF32 matmuls, batch size, the LRN layers, the two-GPU grouping, torch.optim.SGD
in place of the paper's update, and torch.compile. Then lists the CUDA kernels that take the
most time in the bf16 + channels_last step (torch.profiler). Each row is the median of --repeat
runs of --steps steps after a warm-up; a row that fails prints its error and the rest go on.
Writes benchmarks/results/bench_gpu_step.json.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, step_rate, top_kernels, write_result

from alexnet.config import ModelConfig, TrainConfig
from alexnet.model.net import build_model
from alexnet.training.optim import build_optimizer

RESULTS = Path(__file__).resolve().parent / "results" / "bench_gpu_step.json"

# name -> (model switches, step switches); every row changes the fp32 batch-128 paper step.
BASE = {"batch": 128, "amp": False, "channels_last": False, "tf32": False, "torch_sgd": False, "compile": False}
ROWS = {
    "paper net, fp32, batch 128": ({}, {}),
    "+ TF32 matmuls and convolutions": ({}, {"tf32": True}),
    "+ bf16 autocast": ({}, {"amp": True}),
    "+ bf16 + channels_last": ({}, {"amp": True, "channels_last": True}),
    "bf16 + channels_last, batch 256": ({}, {"amp": True, "channels_last": True, "batch": 256}),
    "bf16 + channels_last, batch 512": ({}, {"amp": True, "channels_last": True, "batch": 512}),
    "bf16 + channels_last, no LRN": ({"lrn": False}, {"amp": True, "channels_last": True}),
    "bf16 + channels_last, one group (no 2-GPU split)": ({"groups": 1}, {"amp": True, "channels_last": True}),
    "bf16 + channels_last, torch.optim.SGD": ({}, {"amp": True, "channels_last": True, "torch_sgd": True}),
    "bf16 + channels_last + torch.compile": ({}, {"amp": True, "channels_last": True, "compile": True}),
    "bf16 + channels_last + compile, batch 512": ({}, {"amp": True, "channels_last": True, "compile": True,
                                                     "batch": 512}),
}


def make_step(model_switches: dict, s: dict, device: torch.device):
    """A closure running one training step, and the model it trains."""
    torch.backends.cuda.matmul.allow_tf32 = s["tf32"]
    torch.backends.cudnn.allow_tf32 = s["tf32"] or s["amp"]  # bf16 rows: as PyTorch's default
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=1.0, **model_switches), 1000).to(device)
    if s["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if s["compile"] else model
    if s["torch_sgd"]:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True)
    else:
        optimizer = build_optimizer(model.parameters(), TrainConfig())
    x = torch.randn(s["batch"], 3, 224, 224, device=device) * 50
    if s["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (s["batch"],), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=s["amp"]):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu_step needs a CUDA device")
    device = torch.device("cuda")

    rows = {}
    for name, (model_switches, changes) in ROWS.items():
        s = BASE | changes
        if s["compile"] and args.no_compile:
            continue
        try:
            rows[name] = s | model_switches | step_rate(make_step(model_switches, s, device), s["batch"], args.steps,
                                                        args.repeat, device)
            print(f"{name:<52} {rows[name]['images_per_second']:9.0f} img/s {rows[name]['ms_per_step']:7.2f} ms/step",
                  flush=True)
        except Exception as e:  # noqa: BLE001 -- one failing switch must not hide the others
            rows[name] = s | model_switches | {"error": f"{type(e).__name__}: {e}"}
            print(f"{name:<52} failed: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=2)
        torch.cuda.empty_cache()

    kernels = top_kernels(make_step({}, BASE | {"amp": True, "channels_last": True}, device), device)
    print("\nCUDA kernels of the bf16 + channels_last step (batch 128), most time first:")
    print(f"{'ms/step':>8} {'share':>6} {'calls':>6}  kernel")
    for k in kernels:
        print(f"{k['ms_per_step']:8.3f} {k['share']:6.1%} {k['calls_per_step']:6.0f}  {k['kernel']}")

    write_result(args.out, {"benchmark": "gpu_step", "command": "python benchmarks/bench_gpu_step.py "
                            + " ".join(sys.argv[1:]), "machine": machine(device), "steps": args.steps,
                            "repeat": args.repeat, "rows": rows, "top_kernels_bf16_channels_last": kernels})


if __name__ == "__main__":
    main()
