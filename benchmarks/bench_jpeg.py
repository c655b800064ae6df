"""Benchmark: the jpeg store's encoding, chosen by measurement (bytes, fidelity, decode speed).

    python benchmarks/bench_jpeg.py                    # about 30 seconds on a 2-core CPU
    python benchmarks/bench_jpeg.py --crops 40 --repeat 7

Encodes 256x256 images as prepare's format jpeg would (Pillow, alexnet.data.resize.encode_jpeg for
the chosen setting) at several qualities, with and without chroma subsampling, and reports per
setting: mean bytes per image, PSNR of the decoded image against the stored uint8 one (over all
pixels, and the worst image), torchvision.io.decode_jpeg images/s on one thread (median of
--repeat passes) and Pillow's encode images/s. Two sets of images:
  - photos: --crops crops per photo, of random size and place, resized to 256x256 (bilinear, as
    prepare), from the three real photos that ship with matplotlib and scikit-learn
    (grace_hopper.jpg, china.jpg, flower.jpg);
  - synthetic: bench_input.py's images (smooth colour fields plus N(0, 12) noise per channel):
    the worst case for JPEG, colour noise.
Also compares Pillow's encoder with torchvision.io.encode_jpeg (which only does 4:2:0). Prints
the table and writes benchmarks/results/bench_jpeg.json.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from matplotlib import cbook
from PIL import Image
from sklearn.datasets import load_sample_images
from torchvision.io import decode_jpeg, encode_jpeg

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from bench_input import make_images
from common import machine, timed, write_result

from alexnet.data.resize import JPEG_SUBSAMPLING, RESAMPLE
from alexnet.data.resize import encode_jpeg as prepare_encode

SIZE = 256
SETTINGS = [(0, q) for q in (85, 90, 95, 98)] + [(2, q) for q in (90, 95)]  # (Pillow subsampling, quality)
SUBSAMPLING = {0: "4:4:4", 2: "4:2:0"}
RESULTS = Path(__file__).resolve().parent / "results" / "bench_jpeg.json"


def photo_crops(per_photo: int, seed: int) -> np.ndarray:
    """Square crops (45-100% of the shorter side, anywhere) of the sample photos, resized to SIZE."""
    with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as f:
        photos = [Image.open(f).convert("RGB")]
    photos += [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = []
    for photo in photos:
        w, h = photo.size
        for _ in range(per_photo):
            side = int(rng.uniform(0.45, 1.0) * min(w, h))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            out.append(np.asarray(photo.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), RESAMPLE)))
    return np.stack(out)


def encode(image: np.ndarray, quality: int, subsampling: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def median_rate(fn, n: int, repeat: int) -> float:
    """Images per second of fn() over n images, median of `repeat` passes after one warm-up."""
    fn()
    return n / statistics.median(timed(fn, repeat)[0])


def measure(images: np.ndarray, subsampling: int, quality: int, repeat: int) -> dict:
    encoded = [encode(x, quality, subsampling) for x in images]
    tensors = [torch.frombuffer(bytearray(e), dtype=torch.uint8) for e in encoded]
    decoded = np.stack([decode_jpeg(t).permute(1, 2, 0).numpy() for t in tensors])
    return {
        "subsampling": SUBSAMPLING[subsampling], "quality": quality,
        "bytes_per_image": float(np.mean([len(e) for e in encoded])),
        "psnr_db": psnr(decoded, images),
        "psnr_db_worst_image": min(psnr(d, x) for d, x in zip(decoded, images)),
        "decode_images_per_second": median_rate(lambda: [decode_jpeg(t) for t in tensors], len(images), repeat),
        "encode_images_per_second": median_rate(lambda: [encode(x, quality, subsampling) for x in images],
                                                len(images), repeat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=int, default=20, help="crops per sample photo (3 photos)")
    ap.add_argument("--synthetic", type=int, default=60, help="synthetic images")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", "The image decoding and encoding capabilities of TorchVision", DeprecationWarning)
    torch.set_num_threads(1)  # one core: the rates divide over N cores

    sets = {"photos": photo_crops(args.crops, args.seed), "synthetic": make_images(args.synthetic, args.seed)}
    rows = []
    for name, images in sets.items():
        for subsampling, quality in SETTINGS:
            rows.append({"images": name, "count": len(images), **measure(images, subsampling, quality, args.repeat)})
            r = rows[-1]
            print(f"  {name} {r['subsampling']} q{quality}: {r['bytes_per_image'] / 1000:.1f} kB", file=sys.stderr)

    photos = sets["photos"]
    chosen = [prepare_encode(x, 95) for x in photos]
    assert chosen == [encode(x, 95, JPEG_SUBSAMPLING) for x in photos]  # the table's 4:4:4 is prepare's
    chw = [torch.from_numpy(x).permute(2, 0, 1).contiguous() for x in photos]
    encoders = {
        "pillow_420_q95": median_rate(lambda: [encode(x, 95, 2) for x in photos], len(photos), args.repeat),
        "torchvision_420_q95": median_rate(lambda: encode_jpeg(chw, quality=95), len(photos), args.repeat),
    }
    same_bytes = all(bytes(t.numpy()) == encode(x, 95, 2) for t, x in zip(encode_jpeg(chw, quality=95), photos))

    m = machine()
    print(f"\njpeg store encoding, 256x256, torchvision decode_jpeg and Pillow encode on 1 thread, median of "
          f"{args.repeat}; {m['cpu']}")
    print(f"{'images':<10} {'chroma':<6} {'q':>3} {'kB/img':>7} {'PSNR dB':>8} {'worst':>6} {'decode/s':>9} {'encode/s':>9}")
    for r in rows:
        print(f"{r['images']:<10} {r['subsampling']:<6} {r['quality']:>3} {r['bytes_per_image'] / 1000:>7.1f} "
              f"{r['psnr_db']:>8.1f} {r['psnr_db_worst_image']:>6.1f} {r['decode_images_per_second']:>9.0f} "
              f"{r['encode_images_per_second']:>9.0f}")
    print(f"\nencoder, 4:2:0 q95 on the photos: Pillow {encoders['pillow_420_q95']:.0f}/s, torchvision encode_jpeg "
          f"{encoders['torchvision_420_q95']:.0f}/s, same bytes: {same_bytes}")

    result = {"benchmark": "jpeg_encoding", "command": "python benchmarks/bench_jpeg.py " + " ".join(sys.argv[1:]),
              "machine": m,
              "size": SIZE, "repeat": args.repeat, "rows": rows, "encoders_images_per_second": encoders,
              "pillow_and_torchvision_420_bytes_equal": same_bytes}
    write_result(args.out, result)


if __name__ == "__main__":
    main()
