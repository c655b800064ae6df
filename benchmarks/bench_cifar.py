"""Benchmark: the CIFAR-10 stage's training loop against a plain PyTorch loop, in images/s.

    python benchmarks/bench_cifar.py                 # about two minutes on a 2-core CPU
    python benchmarks/bench_cifar.py --images 6400 --repeat 3 --activation tanh

Both train Figure 1's net (alexnet.cifar.nets.Figure1Net, width 1, batch 128, SGD with
momentum) on the same random uint8 32x32 images, one epoch of --images images per run; the
median of --repeat interleaved runs:
  - plain: the textbook loop: a torch.utils.data.DataLoader over a TensorDataset of the float
    images (shuffle, batch 128), NCHW memory, `loss.item()` every step, torch's default threads;
  - ours: alexnet.cifar.training.train_epoch as the stage runs it: the images on the device once as
    float32, the seeded batch order as index tensors, channels-last memory (cifar.channels_last),
    the error counted on the device and read once per epoch.
Also the LRN claim's 11pct net (locally-connected layers, 24x24 crops and flips) in our loop.
Prints a table and writes benchmarks/results/bench_cifar.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import machine, timed, write_result  # noqa: E402

from alexnet.cifar import training as cifar  # noqa: E402
from alexnet.cifar.data import CifarData  # noqa: E402
from alexnet.cifar.nets import Figure1Net  # noqa: E402
from alexnet.config import CifarConfig  # noqa: E402


def plain_epoch(images: np.ndarray, labels: np.ndarray, activation: str) -> None:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() - 128.0
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.from_numpy(labels)),
                                         batch_size=128, shuffle=True)
    net = Figure1Net(activation, input_scale=1 / 64)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    for xb, yb in loader:
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6400, help="images per timed epoch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--activation", default="relu", choices=["relu", "tanh"])
    parser.add_argument("--out", default="benchmarks/results/bench_cifar.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=args.images).astype(np.int64)
    data = CifarData(images, labels, images[:1000], labels[:1000], ())
    cfg = CifarConfig(device="cpu")
    device = torch.device("cpu")
    inputs = cifar.prepare_inputs(data, device, cfg.channels_last)

    def ours() -> None:
        t = cifar.figure1_trainer(cfg, args.activation, 0.01, 0, device, "bench", None)
        cifar.train_epoch(t, inputs.train_x, inputs.train_y, cfg.batch_size)

    def ours_11pct() -> None:
        t = cifar.conv_local_trainer(cfg, True, 0, device, "bench", None)
        patch = cifar.mean_patch(inputs, cfg.lrn_crop)
        crops = cifar.crop_views(cfg.lrn_crop)
        cifar.train_epoch(t, inputs.train_x, inputs.train_y, cfg.lrn_batch_size, lambda xb, g: crops(xb, g) - patch)

    runs = {"plain": lambda: plain_epoch(images, labels, args.activation), "ours": ours, "ours_11pct": ours_11pct}
    walls: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeat):  # interleaved, so a neighbour's load hits every loop alike
        for name, fn in runs.items():
            w, c = timed(fn, 1)
            walls[name] += w
            cpus[name] += c
    rate = {k: args.images / statistics.median(v) for k, v in walls.items()}
    result = {
        "benchmark": "cifar", "images": args.images, "repeat": args.repeat, "activation": args.activation,
        "images_per_second": {k: round(v, 1) for k, v in rate.items()},
        "cpu_seconds_per_1000_images": {k: round(1000 * statistics.median(v) / args.images, 3) for k, v in cpus.items()},
        "speedup_over_plain": round(rate["ours"] / rate["plain"], 3),
        "machine": machine(device),
    }
    print(f"{'loop':<12}{'images/s':>10}{'CPU s / 1000 img':>18}")
    for k in runs:
        print(f"{k:<12}{rate[k]:>10.0f}{result['cpu_seconds_per_1000_images'][k]:>18.3f}")
    print(f"ours / plain: {result['speedup_over_plain']:.2f}x")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
