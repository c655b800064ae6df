"""Benchmark: ten-crop evaluation, images per second, against the bare forward pass.

    python benchmarks/bench_eval.py                       # about a minute on an idle 2-core CPU
    python benchmarks/bench_eval.py --images 2048 --batch-size 128 --repeat 5   # on a GPU

Builds, in a temp folder, --images random 256x256 images as a prepared store (uint8 .npy shards +
index.csv + meta.json, the layout of docs/architecture.md, read through alexnet.data.store) and a
random-weight net of the paper's architecture (--width 1.0: 60,965,224 parameters, 1000 classes).
Then times one full pass (median of --repeat, after a warm-up batch) of:
  - ours: alexnet.evaluation.evaluate.evaluate_net, the stage's own loop: memory-mapped store -> device,
    mean-image subtraction, the ten 224 patches (corners, centre, reflections), one forward of
    10 x batch patches, softmax averaged, centre and ten-crop probabilities back on the CPU;
  - bare forward: the same net on the same patches, cut and normalised beforehand and already on
    the device, in the same batches, output discarded (the ceiling: the net alone);
  - torchvision: the idiom of torchvision's TenCrop documentation, per image: PIL image ->
    TenCrop(224) -> ToTensor + Normalize per crop -> stack; batches to the device, forward,
    softmax averaged (the path a typical user would write).
Prints a table (images/s; ours as a fraction of the bare forward; ours against torchvision) and
writes benchmarks/results/bench_eval.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
from PIL import Image
from torchvision import transforms

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import machine, timed, write_result, write_store

from alexnet.config import ModelConfig
from alexnet.data.input.pixels import ten_crop_input
from alexnet.data.store import PreparedStore
from alexnet.evaluation.evaluate import evaluate_net
from alexnet.model.net import build_model, count_parameters

SIZE, CROP, CLASSES = 256, 224, 1000
RESULTS = Path(__file__).resolve().parent / "results" / "bench_eval.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=16, help="evaluation images (default 16)")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch; ten-crop runs 10x patches (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="timed passes per path; the median is reported")
    p.add_argument("--width", type=float, default=1.0, help="model.width (1.0 = the paper's net)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, SIZE, SIZE, 3), dtype=np.uint8)
    mean = images.astype(np.float64).mean(axis=0).astype(np.float32)  # a mean image, as stats gives
    model = build_model(ModelConfig(width=args.width), CLASSES).to(device).eval()
    n_params = count_parameters(model)
    bs = args.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        # the evaluation split ('val'), in one shard
        write_store(Path(tmp) / "prepared", images, np.arange(len(images)) % CLASSES, shard_size=max(len(images), 1),
                    split="val", num_classes=CLASSES)
        split = PreparedStore(Path(tmp) / "prepared").split("val")

        def ours() -> None:
            evaluate_net(model, split, CROP, mean, "paper", bs, device, desc="ours")

        # bare forward: every batch's ten patches prepared up front, on the device
        patches = [ten_crop_input(torch.from_numpy(images[i:i + bs]).to(device), CROP, mean)
                   for i in range(0, args.images, bs)]

        @torch.inference_mode()
        def bare() -> None:
            for x in patches:
                model(x)

        pil = [Image.fromarray(im) for im in images]
        per_image = transforms.Compose([
            transforms.TenCrop(CROP),
            transforms.Lambda(lambda crops: torch.stack([
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(transforms.ToTensor()(c))
                for c in crops])),
        ])

        @torch.inference_mode()
        def tv() -> None:
            for i in range(0, args.images, bs):
                x = torch.stack([per_image(im) for im in pil[i:i + bs]]).to(device)  # [n, 10, 3, 224, 224]
                n = x.shape[0]
                probs = torch.softmax(model(x.view(-1, 3, CROP, CROP)), dim=1).view(n, 10, -1).mean(1)
                probs.cpu()

        # warm-up: one batch of each (allocators, cuDNN/oneDNN kernel choice)
        with torch.inference_mode():
            model(patches[0])
        runs = {"ours (evaluate_net)": timed(ours, args.repeat, device)[0],
                "bare forward": timed(bare, args.repeat, device)[0],
                "torchvision TenCrop": timed(tv, args.repeat, device)[0]}

    rows = []
    for name, times in runs.items():
        med = statistics.median(times)
        rows.append({"path": name, "median_s": med, "images_per_s": args.images / med,
                     "patches_per_s": 10 * args.images / med, "runs_s": times})
    table = pd.DataFrame(rows).set_index("path")
    ours_ips = table.loc["ours (evaluate_net)", "images_per_s"]
    table["ours_vs_this"] = ours_ips / table["images_per_s"]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"ten-crop evaluation, {args.images} images, batch {bs} ({10 * bs} patches), width {args.width} "
          f"({n_params:,} parameters), {device.type}: {device_name}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(table.drop(columns=["runs_s"]).to_string(float_format=lambda v: f"{v:.3f}"))
    overhead = table.loc["bare forward", "images_per_s"] / ours_ips - 1
    print(f"ours reaches {100 * ours_ips / table.loc['bare forward', 'images_per_s']:.1f}% of the bare forward "
          f"(overhead {100 * overhead:.1f}%); {ours_ips / table.loc['torchvision TenCrop', 'images_per_s']:.2f}x "
          "the torchvision TenCrop path")

    result = {
        "benchmark": "ten-crop evaluation", "machine": machine(device),
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "args": vars(args), "parameters": n_params, "device": device.type, "device_name": device_name,
        "cpu_count": os.cpu_count(), "load_average_1_5_15_min": os.getloadavg(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "python": platform.python_version(),
        "results": {name: {k: v for k, v in row.items() if k != "path"} for name, row in zip(runs, rows)},
        "ours_fraction_of_bare_forward": ours_ips / table.loc["bare forward", "images_per_s"],
        "ours_vs_torchvision": ours_ips / table.loc["torchvision TenCrop", "images_per_s"],
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
