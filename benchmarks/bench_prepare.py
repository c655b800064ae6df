"""Benchmark: the prepare stage's images/s against plain Pillow, on full-size photo-like JPEGs.

    python benchmarks/bench_prepare.py                 # ~1-2 minutes on a 2-core CPU
    python benchmarks/bench_prepare.py --images 2000 --repeat 5

Generates JPEGs of ImageNet-like sizes (the train set averages about 400x350; many are larger)
in a temp folder, then times, on the same files, the median of --repeat runs of:
  - pillow->jpeg / pillow->png: what a typical script does per file: Image.open, convert("RGB"),
    resize the shorter side to 256 (bilinear, antialiased), centre crop, save one file per image;
  - ours (1 worker), without and with JPEG draft mode: alexnet.data.prepare.write_store, i.e. decode,
    resize, crop, and write the shards, index and metadata of the prepared store;
  - ours, format jpeg (1 worker): the same, each crop also encoded (4:4:4, quality 95);
  - ours with 1 .. all cores (scaling).
Prints a table with the ratios and the bytes stored per image, and writes
benchmarks/results/bench_prepare.json. Images per
CPU-second (this process and its workers) are listed too: on a machine shared with other jobs
the wall-clock scaling says little, the CPU cost per image still holds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import machine, timed, write_result

from alexnet.config import PrepareConfig, resolve_workers
from alexnet.data.prepare import write_store
from alexnet.data.resize import resize_geometry
from alexnet.data.sources.base import ClassInfo, RawRecord

# Width x height of the generated photos, cycled: ImageNet's common camera sizes and aspects.
SHAPES = [(500, 375), (500, 333), (375, 500), (640, 480), (800, 600), (1024, 768), (1600, 1200)]


class FolderDataset:
    """A minimal RawDataset over the generated files: one class, one split, bytes read lazily."""

    classes = [ClassInfo("n00000001", "generated")]
    splits = ["train"]
    eval_split = "train"

    def __init__(self, files: list[Path]):
        self.files = files

    def iter_split(self, split):
        for p in self.files:
            yield RawRecord(p.name, "n00000001", p.read_bytes())

    def count(self, split):
        return len(self.files)


def make_photo(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """Smooth shapes and gradients, mid-frequency texture and sensor-like noise: JPEG sizes like photos."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        f1, f2 = rng.uniform(0.002, 0.02, 2)
        img[..., c] = 128 + 70 * np.sin(xx * f1 + rng.uniform(0, 6)) * np.cos(yy * f2 + rng.uniform(0, 6))
    for _ in range(6):  # blobs
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.3) * min(w, h)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[mask] = img[mask] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    img += 25 * np.sin(xx * 0.3 + yy * 0.2)[..., None] * rng.uniform(0, 1, 3)  # texture
    img += rng.normal(0, 6, img.shape)  # noise
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def generate(folder: Path, n: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        w, h = SHAPES[i % len(SHAPES)]
        path = folder / f"img_{i:05d}.JPEG"
        make_photo(w, h, rng).save(path, "JPEG", quality=90)
        files.append(path)
    return files


def pillow_baseline(files: list[Path], out: Path, fmt: str, size: int = 256) -> None:
    """The plain per-file path: open, convert, resize (shorter side), centre crop, save."""
    out.mkdir(parents=True, exist_ok=True)
    for p in files:
        with Image.open(p) as im:
            im = im.convert("RGB")
            new_w, new_h, left, top = resize_geometry(im.width, im.height, size)
            im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
            im = im.crop((left, top, left + size, top + size))
            if fmt == "jpeg":
                im.save(out / (p.stem + ".jpg"), "JPEG", quality=95)
            else:
                im.save(out / (p.stem + ".png"), "PNG")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=400,
                    help="JPEGs to generate (default 400: fewer and starting the worker pool dominates)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method; the median is reported")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_prepare.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare."))
    try:
        files = generate(tmp / "jpeg", args.images, args.seed)
        mpix = sum(Image.open(p).width * Image.open(p).height for p in files) / len(files) / 1e6
        mbytes = sum(p.stat().st_size for p in files) / len(files) / 1e6
        raw = FolderDataset(files)
        for p in files:  # warm the page cache so every method reads from memory
            p.read_bytes()

        def ours(workers: int, draft: bool, fmt: str = "npy"):
            cfg = PrepareConfig(image_side=args.size, shard_size=1024, workers=workers, draft=draft, format=fmt)
            return lambda: write_store(raw, tmp / "store", cfg, source="bench", progress=False)

        # name: (run, workers, the folder whose files it writes)
        methods: dict[str, tuple] = {
            "pillow->jpeg (1 core)": (lambda: pillow_baseline(files, tmp / "pj", "jpeg", args.size), 1, tmp / "pj"),
            "pillow->png (1 core)": (lambda: pillow_baseline(files, tmp / "pp", "png", args.size), 1, tmp / "pp"),
            "ours, no draft (1 worker)": (ours(1, False), 1, tmp / "store" / "shards"),
            "ours, format jpeg (1 worker)": (ours(1, True, "jpeg"), 1, tmp / "store" / "shards"),
        }
        cores = resolve_workers(0)
        for w in sorted({1, *range(2, cores + 1, max(1, cores // 4)), cores}):
            methods[f"ours ({w} worker{'s' * (w > 1)})"] = (ours(w, True), w, tmp / "store" / "shards")

        rows = {}
        for name, (fn, workers, written) in methods.items():
            times, cpus = timed(fn, args.repeat)
            med, cpu = statistics.median(times), statistics.median(cpus)
            stored = sum(p.stat().st_size for p in written.iterdir()) / len(files)
            rows[name] = {"workers": workers, "seconds": times, "cpu_seconds": cpus, "median_s": med,
                          "images_per_second": len(files) / med, "images_per_cpu_second": len(files) / cpu,
                          "bytes_per_image": stored}
            print(f"  {name:<28} {len(files) / med:8.1f} img/s", file=sys.stderr)

        base = rows["pillow->jpeg (1 core)"]["images_per_second"]
        base_png = rows["pillow->png (1 core)"]["images_per_second"]
        one = rows["ours (1 worker)"]["images_per_second"]
        for r in rows.values():
            r["vs_pillow_jpeg"] = r["images_per_second"] / base
            r["vs_pillow_png"] = r["images_per_second"] / base_png
            r["vs_ours_1_worker"] = r["images_per_second"] / one

        m = machine()
        print(f"\nprepare: {len(files)} JPEGs, mean {mpix:.2f} MP, {mbytes * 1000:.0f} kB, -> {args.size}x{args.size}; "
              f"median of {args.repeat}; {m['cpu']}, {m['cores']} cores, load {m['load_avg_1min']:.1f}")
        print(f"{'method':<28} {'img/s':>8} {'vs pillow->jpeg':>16} {'vs pillow->png':>15} {'vs ours x1':>11}"
              f" {'img/cpu-s':>10} {'kB/img':>7}")
        for name, r in rows.items():
            print(f"{name:<28} {r['images_per_second']:8.1f} {r['vs_pillow_jpeg']:15.2f}x "
                  f"{r['vs_pillow_png']:14.2f}x {r['vs_ours_1_worker']:10.2f}x {r['images_per_cpu_second']:10.1f}"
                  f" {r['bytes_per_image'] / 1000:7.1f}")

        result = {"benchmark": "prepare", "command": "python benchmarks/bench_prepare.py " + " ".join(sys.argv[1:]),
                  "machine": m, "images": len(files), "mean_megapixels": mpix, "mean_jpeg_kb": mbytes * 1000,
                  "shapes": SHAPES, "size": args.size, "repeat": args.repeat, "methods": rows}
        write_result(args.out, result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
