"""Benchmark: training input pipeline, prepared store -> augmented batch on the device.

    python benchmarks/bench_input.py                      # about a minute on a 2-core CPU
    python benchmarks/bench_input.py --images 4096 --repeat 7 --device cuda

Builds, in a temp folder, the same --images 256x256 photo-like images three times: as a prepared
store (uint8 .npy shards + index.csv + meta.json, the layout of docs/architecture.md, read through
alexnet.data.store), as a prepared store of format jpeg (4:4:4 JPEGs of quality --jpeg-quality, encoded
as prepare encodes them) and as an ImageFolder of JPEG files (quality 90). Then times full
training epochs (batch 128, one warm-up round, median of --repeat; the pipelines take turns epoch
by epoch so that they share the same background load) of:
  - ours: alexnet.data.input.loader.BatchLoader with the paper's augmentation (random 224 crops, flips, PCA
    lighting, mean-image subtraction), batches float32 on --device, with 1 thread and one per core;
  - ours on the jpeg store: decoded by the reader threads (decode="cpu", 1 thread and one per
    core), and decoded batch by batch by the caller on --device (decode="device": nvJPEG on CUDA,
    libjpeg-turbo on a CPU, where only the byte gathering overlaps);
  - decode only: torchvision.io.decode_jpeg over the jpeg store's bytes on one thread, the cost
    per image that N cores divide;
  - torchvision: ImageFolder + RandomCrop(224) + RandomHorizontalFlip + ToTensor + Normalize +
    DataLoader (shuffle, pin_memory on CUDA), batches moved to --device, with one worker process
    per core (--baseline-workers to try others).
The best of ours on the npy store is compared with the best baseline (the jpeg rows and the
store's bytes per image are listed beside it). Prints a table with the ratios and writes
benchmarks/results/bench_input.json. Beside images/s it reports CPU milliseconds per image (this
process, its threads and its worker processes), which stays meaningful when other jobs share
the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms
from torchvision.io import decode_jpeg

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import machine, timed_once, write_result, write_store

from alexnet.config import AugmentConfig
from alexnet.data.input.loader import BatchLoader
from alexnet.data.store import PreparedStore

SIZE, CROP, BATCH, CLASSES = 256, 224, 128, 10
RESULTS = Path(__file__).resolve().parent / "results" / "bench_input.json"


def make_images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields, texture and noise: JPEGs of a photo's size and decode cost."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for i in range(n):
        f = rng.uniform(0.005, 0.08, size=(3, 2))
        ph = rng.uniform(0, 6.3, size=(3, 2))
        img = 128 + 90 * np.sin(xx[..., None] * f[:, 0] + ph[:, 0]) * np.cos(yy[..., None] * f[:, 1] + ph[:, 1])
        img += rng.normal(0, 12, size=img.shape)
        out[i] = np.clip(img, 0, 255)
    return out


def stored_bytes_per_image(folder: Path, n: int) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.suffix != ".csv"
               and f.name != "meta.json") / n


def write_jpegs(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root / f"n{label:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.JPEG", quality=90)


def stats_of(images: np.ndarray):
    """Mean image and RGB PCA, as the stats stage computes them (0-255 units)."""
    pixels = images.reshape(-1, 3).astype(np.float64)
    vals, vecs = np.linalg.eigh(np.cov(pixels, rowvar=False))
    order = np.argsort(vals)[::-1]
    return type("Stats", (), dict(mean_image=images.mean(axis=0, dtype=np.float64), channel_mean=pixels.mean(0),
                                  eigvals=vals[order], eigvecs=vecs[:, order]))


def time_interleaved(runs: dict, repeat: int, device: torch.device) -> dict[str, dict]:
    """Wall and CPU seconds per epoch of each pipeline, taking turns epoch by epoch so that all
    of them see the same background load; the first round (page cache, worker start) is a warm-up."""
    result = {key: {"seconds": [], "cpu_seconds": []} for key in runs}
    for r in range(repeat + 1):
        for key, run_epoch in runs.items():
            result[key]["images"], wall, cpu = timed_once(lambda: run_epoch(r), device)
            if r:
                result[key]["seconds"].append(wall)
                result[key]["cpu_seconds"].append(cpu)
    return result


def ours_pipeline(view, stats, device: torch.device, workers: int, decode: str = "auto"):
    """One epoch of our loader per call; returns the images delivered."""
    loader = BatchLoader(view, BATCH, input_size=CROP, stats=stats, augment=AugmentConfig(), device=device,
                         seed=0, shuffle=True, drop_last=True, workers=workers, decode=decode)

    def run(epoch: int) -> int:
        n = 0
        for x, y in loader.epoch(epoch):
            n += len(y)
        return n
    return run


def decode_only(view):
    """torchvision.io.decode_jpeg over every image of a jpeg store, on this one thread."""
    encoded = view.encoded(np.arange(len(view)))

    def run(epoch: int) -> int:
        for jpeg in encoded:
            decode_jpeg(jpeg)
        return len(encoded)
    return run


def torchvision_pipeline(folder: Path, device: torch.device, workers: int):
    """One epoch of the typical torchvision input pipeline per call; returns the images delivered."""
    tf = transforms.Compose([transforms.RandomCrop(CROP), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    data = torchvision.datasets.ImageFolder(str(folder), transform=tf)
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(0))

    def run(epoch: int) -> int:
        n = 0
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            n += len(y)
        return n
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=0, help="our loader threads (0: try 1 and one per core)")
    p.add_argument("--baseline-workers", type=int, nargs="*", default=None,
                   help="DataLoader worker counts to try (default: one per core; 0 is very slow here)")
    p.add_argument("--jpeg-quality", type=int, default=95, help="quality of the jpeg store (prepare.jpeg_quality)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.images < BATCH:
        p.error(f"--images must be at least one batch ({BATCH})")
    device = torch.device(args.device)
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="bench_input_") as tmp:
        tmp = Path(tmp)
        print(f"building {args.images} images as prepared stores (npy, jpeg) and as JPEG files in {tmp} ...",
              flush=True)
        images = make_images(args.images)
        labels = np.arange(args.images) % CLASSES
        write_store(tmp / "prepared", images, labels, num_classes=CLASSES)
        write_store(tmp / "prepared_jpeg", images, labels, num_classes=CLASSES, fmt="jpeg",
                    jpeg_quality=args.jpeg_quality)
        write_jpegs(tmp / "jpeg", images, labels)
        jpeg_bytes = sum(f.stat().st_size for f in (tmp / "jpeg").rglob("*.JPEG"))
        stored = {"npy": stored_bytes_per_image(tmp / "prepared", args.images),
                  "jpeg": stored_bytes_per_image(tmp / "prepared_jpeg", args.images), "files": jpeg_bytes / args.images}
        stats = stats_of(images)
        del images
        view = PreparedStore(tmp / "prepared").split("train")
        jpeg_view = PreparedStore(tmp / "prepared_jpeg").split("train")

        runs, names = {}, {}
        thread_counts = [args.workers] if args.workers else sorted({1, cores})
        for workers in thread_counts:
            key = f"ours_threads{workers}"
            runs[key] = ours_pipeline(view, stats, device, workers)
            names[key] = (f"ours: prepared store + BatchLoader, full augmentation ({workers} threads)", workers, "npy")
        for workers in thread_counts:
            key = f"jpeg_cpu_threads{workers}"
            runs[key] = ours_pipeline(jpeg_view, stats, device, workers, decode="cpu")
            names[key] = (f"ours, jpeg store, decoded by the reader threads ({workers} threads)", workers, "jpeg")
        key = f"jpeg_device_threads{thread_counts[-1]}"
        runs[key] = ours_pipeline(jpeg_view, stats, device, thread_counts[-1], decode="device")
        names[key] = (f"ours, jpeg store, decoded by the caller on {device} ({thread_counts[-1]} threads gather)",
                      thread_counts[-1], "jpeg")
        runs["decode_only"] = decode_only(jpeg_view)
        names["decode_only"] = ("decode only: torchvision decode_jpeg of the jpeg store (1 thread)", 1, "jpeg")
        for workers in args.baseline_workers or [cores]:
            key = f"torchvision_workers{workers}"
            runs[key] = torchvision_pipeline(tmp / "jpeg", device, workers)
            names[key] = (f"torchvision: ImageFolder JPEG + transforms + DataLoader ({workers} workers)", workers,
                          "files")
        timed = time_interleaved(runs, args.repeat, device)
        rows = [{"pipeline": names[key][0], "key": key, "workers": names[key][1],
                 "bytes_per_image": stored[names[key][2]], **timed[key]} for key in runs]
        del runs  # ends the DataLoader workers before the temp folder goes

    for r in rows:
        r["median_seconds"] = statistics.median(r["seconds"])
        r["images_per_second"] = r["images"] / r["median_seconds"]
        r["cpu_ms_per_image"] = 1000 * statistics.median(r["cpu_seconds"]) / r["images"]
    best = max((r for r in rows if r["key"].startswith("ours")), key=lambda r: r["images_per_second"])
    ours = best["images_per_second"]
    best_jpeg = max((r for r in rows if r["key"].startswith("jpeg")), key=lambda r: r["images_per_second"])
    baseline = max((r for r in rows if r["key"].startswith("torchvision")), key=lambda r: r["images_per_second"])
    for r in rows:
        r["ratio_vs_baseline"] = r["images_per_second"] / baseline["images_per_second"]
        r["cpu_ratio_vs_baseline"] = baseline["cpu_ms_per_image"] / r["cpu_ms_per_image"]

    print(f"\ninput pipeline, {device}, {args.images} images of {SIZE}x{SIZE} -> batches of {BATCH}x3x{CROP}x{CROP}, "
          f"median of {args.repeat} epochs")
    print(f"{'pipeline':<80} {'images/s':>9} {'ratio':>7} {'CPU ms/img':>11} {'ratio':>7} {'kB/img':>7}")
    for r in rows:
        print(f"{r['pipeline']:<80} {r['images_per_second']:>9.0f} {r['ratio_vs_baseline']:>6.2f}x "
              f"{r['cpu_ms_per_image']:>11.2f} {r['cpu_ratio_vs_baseline']:>6.2f}x {r['bytes_per_image'] / 1000:>7.1f}")
    print(f"\nbest of ours / best torchvision baseline: {ours / baseline['images_per_second']:.1f}x images/s "
          f"(target >= 5x), {baseline['cpu_ms_per_image'] / best['cpu_ms_per_image']:.1f}x less CPU time per image; "
          f"load average {os.getloadavg()[0]:.1f} on {cores} cores")
    print(f"jpeg store (quality {args.jpeg_quality}, 4:4:4): best {best_jpeg['images_per_second'] / ours:.2f}x the npy "
          f"store's images/s at {stored['npy'] / stored['jpeg']:.1f}x fewer bytes per image")

    result = {
        "benchmark": "input_pipeline",
        "command": "python benchmarks/bench_input.py " + " ".join(sys.argv[1:]),
        "machine": machine(device),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__},
        "images": args.images, "image_size": SIZE, "crop": CROP, "batch_size": BATCH, "repeat": args.repeat,
        "jpeg_mean_bytes": jpeg_bytes / args.images,
        "jpeg_quality": args.jpeg_quality,
        "store_bytes_per_image": {"npy": stored["npy"], "jpeg": stored["jpeg"]},
        "rows": rows,
        "ours": best["key"],
        "baseline": baseline["key"],
        "load_average_1min_at_end": os.getloadavg()[0],
        "speedup_vs_baseline": ours / baseline["images_per_second"],
        "cpu_time_ratio_vs_baseline": baseline["cpu_ms_per_image"] / best["cpu_ms_per_image"],
        "jpeg_best": best_jpeg["key"],
        "jpeg_speedup_vs_baseline": best_jpeg["images_per_second"] / baseline["images_per_second"],
    }
    write_result(args.out, result)


if __name__ == "__main__":
    main()
