"""Stage `stats`: training-set statistics that later stages subtract and augment with.

Owns the mean image (paper, Section 2: "subtracting the mean activity over the training set from
each pixel"), the per-channel mean and standard deviation, and the 3x3 covariance of all
training-set RGB pixel values with its eigenvalues and eigenvectors (paper, Section 4.1: the PCA
behind the colour augmentation), plus `load_stats` for the stages that use them.

Exact: every sum is accumulated as an integer (pixel values are integers 0-255), so the result is
the same bit for bit whatever the number of workers or the order of the shards, and the only
rounding is the final division.
"""

from __future__ import annotations

import io
import math
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from alexnet.config import StatsConfig, resolve_workers
from alexnet.data.store import PreparedStore
from alexnet.errors import PipelineError
from alexnet.fileio import atomic_dir, write_json
from alexnet.pipeline.records import write_record

TRAIN_SPLIT = "train"
TASK_IMAGES = 128  # images per worker task: enough tasks to keep every core busy on small sets
# The narrowest integer types that cannot overflow (measured 1.8x faster than uint32/uint64 sums):
FLUSH = 257  # images summed per pixel in uint16 (257 * 255 = 65535) before moving into int64
BLOCK = 1 << 16  # pixels whose products x_a * x_b <= 255^2 are summed in uint32 (2^16 * 65025 < 2^32)
PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # the upper triangle of x x^T


@dataclass(frozen=True)
class Stats:
    """Training-set statistics, 0-255 units (docs/architecture.md, data/stats/)."""

    mean_image: np.ndarray  # float64 [S, S, 3]
    channel_mean: np.ndarray  # float64 [3], RGB
    channel_std: np.ndarray  # float64 [3]
    cov: np.ndarray  # float64 [3, 3], population covariance of all pixel values
    eigvals: np.ndarray  # float64 [3], descending
    eigvecs: np.ndarray  # float64 [3, 3], column i belongs to eigvals[i]
    count: np.ndarray  # int64 scalar: pixels summed over


@dataclass
class Sums:
    """Exact integer sums over a set of images; adding two is exact and order-free."""

    images: int
    image_sum: np.ndarray  # int64 [S, S, 3]: sum over images of each pixel
    outer: np.ndarray  # int64 [3, 3]: sum over pixels of x x^T

    def __add__(self, other: Sums) -> Sums:
        return Sums(self.images + other.images, self.image_sum + other.image_sum, self.outer + other.outer)


def accumulate(images: np.ndarray) -> Sums:
    """Exact sums over uint8 images [n, S, S, 3] (an array or a memory-mapped slice of one)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 [n, S, S, 3] images, got {images.dtype} {images.shape}")
    n, h, w, _ = images.shape
    image_sum = np.zeros((h, w, 3), np.int64)
    outer = [[0] * 3 for _ in range(3)]  # Python integers: no overflow however many images
    partial = np.zeros((h, w, 3), np.uint16)
    planes = np.empty((3, h * w), np.uint8)
    prod = np.empty(h * w, np.uint16)
    for i in range(n):
        img = images[i]
        np.add(partial, img, out=partial)
        if (i + 1) % FLUSH == 0:
            image_sum += partial
            partial[:] = 0
        # Channel planes (contiguous: twice as fast to multiply as strided columns), then each
        # product x_a * x_b in uint16 and its sum in uint32 per BLOCK pixels: integer arithmetic
        # throughout, no BLAS (whose threads oversubscribe the workers).
        np.copyto(planes, img.reshape(h * w, 3).T)
        for a, b in PAIRS:
            np.multiply(planes[a], planes[b], out=prod, dtype=np.uint16)
            for start in range(0, h * w, BLOCK):
                outer[a][b] += int(prod[start:start + BLOCK].sum(dtype=np.uint32))
    image_sum += partial
    for a, b in PAIRS:
        outer[b][a] = outer[a][b]
    return Sums(n, image_sum, np.array(outer, np.int64))


def finalize(sums: Sums) -> Stats:
    """Means, covariance and its eigen-decomposition from exact sums (one rounding each)."""
    if sums.images == 0:
        raise PipelineError("no training images to compute statistics over")
    h, w, _ = sums.image_sum.shape
    p = sums.images * h * w  # pixels
    s = [int(v) for v in sums.image_sum.reshape(-1, 3).sum(axis=0)]  # exact int64 sums per channel
    g = [[int(v) for v in row] for row in sums.outer]
    mean_image = sums.image_sum / float(sums.images)
    channel_mean = np.array([s[a] / p for a in range(3)])
    # cov_ab = (p * sum x_a x_b - sum x_a * sum x_b) / p^2, numerator in exact Python integers:
    # no cancellation, one correctly rounded division.
    cov = np.array([[(p * g[a][b] - s[a] * s[b]) / (p * p) for b in range(3)] for a in range(3)])
    channel_std = np.sqrt(np.diag(cov))
    vals, vecs = eigh3(cov.tolist())
    return Stats(mean_image=mean_image, channel_mean=channel_mean, channel_std=channel_std, cov=cov,
                 eigvals=np.array(vals), eigvecs=np.array(vecs), count=np.int64(p))


def eigh3(a: list[list[float]], max_sweeps: int = 50) -> tuple[list[float], list[list[float]]]:
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric 3x3 matrix, by cyclic
    Jacobi rotations in a fixed order in Python floats.

    Why not numpy's eigh: LAPACK's result depends on the BLAS kernels the CPU selects (an AVX2
    and an AVX-512 machine differed in the last digit of an eigenvalue), and the eigenvectors
    feed the colour augmentation of every training step. Here every operation is an IEEE-754
    double +, -, *, / or sqrt, each correctly rounded, so the bits are the same on every machine.
    Each eigenvector's sign is fixed: its largest-magnitude component (the first, on a tie) is
    positive.
    """
    a = [[float(v) for v in row] for row in a]
    if any(a[i][j] != a[j][i] for i in range(3) for j in range(3)):
        raise ValueError("eigh3 needs a symmetric matrix")
    v = [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]
    for _ in range(max_sweeps):
        if a[0][1] == 0.0 and a[0][2] == 0.0 and a[1][2] == 0.0:
            break
        for p, q in ((0, 1), (0, 2), (1, 2)):
            apq = a[p][q]
            if apq == 0.0:
                continue
            # Negligible against both diagonal entries: zero it instead of rotating (no effect
            # on the diagonal at double precision).
            if abs(a[p][p]) + 100.0 * abs(apq) == abs(a[p][p]) and abs(a[q][q]) + 100.0 * abs(apq) == abs(a[q][q]):
                a[p][q] = a[q][p] = 0.0
                continue
            theta = (a[q][q] - a[p][p]) / (2.0 * apq)
            # t = tan of the rotation angle, the smaller root of t^2 + 2 t theta - 1 = 0
            t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0)) if abs(theta) < 1e150 else 0.5 / abs(theta)
            if theta < 0:
                t = -t
            c = 1.0 / math.sqrt(t * t + 1.0)
            s = t * c
            a[p][p] -= t * apq
            a[q][q] += t * apq
            a[p][q] = a[q][p] = 0.0
            r = 3 - p - q  # the third index
            arp, arq = a[r][p], a[r][q]
            a[r][p] = a[p][r] = c * arp - s * arq
            a[r][q] = a[q][r] = s * arp + c * arq
            for row in v:
                vp, vq = row[p], row[q]
                row[p] = c * vp - s * vq
                row[q] = s * vp + c * vq
    else:
        raise ValueError(f"eigh3 did not converge in {max_sweeps} sweeps")
    # Descending; equal eigenvalues keep their index order (sorted is stable).
    order = sorted(range(3), key=lambda i: -a[i][i])
    vals = [a[i][i] for i in order]
    cols = [[v[r][i] for r in range(3)] for i in order]
    for k, col in enumerate(cols):
        big = max(range(3), key=lambda r: (abs(col[r]), -r))
        if col[big] < 0:
            cols[k] = [-x for x in col]
    return vals, [[cols[i][r] for i in range(3)] for r in range(3)]


def compute_sums(store: PreparedStore, split: str = TRAIN_SPLIT, workers: int = 0,
                 progress: bool = True) -> Sums:
    """Exact sums over every image of `split`, in parallel over ranges of each shard.

    Threads, not processes: numpy's loops release the GIL, the shards are shared memory maps,
    and nothing is pickled (measured 1.3x faster than a process pool on 2 cores).
    """
    view = store.split(split)
    size = store.size
    tasks = [(k, a, min(a + TASK_IMAGES, n)) for k in range(view.num_shards)
             for n in [view.shard_length(k)] for a in range(0, n, TASK_IMAGES)]
    total = Sums(0, np.zeros((size, size, 3), np.int64), np.zeros((3, 3), np.int64))
    workers = min(resolve_workers(workers), max(1, len(tasks)))
    with tqdm(total=sum(t[2] - t[1] for t in tasks), unit="img", desc=f"stats {split}",
              disable=not progress) as bar, ThreadPoolExecutor(workers) as pool:
        # Integer sums: the order results arrive in cannot change the total.
        for part in pool.map(lambda task: accumulate(view.shard_rows(*task)), tasks):
            total = total + part
            bar.update(part.images)
    return total


def compute_stats(store: PreparedStore, split: str = TRAIN_SPLIT, workers: int = 0,
                  progress: bool = True) -> Stats:
    """The statistics of `split` of the prepared store."""
    return finalize(compute_sums(store, split, workers, progress))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (what np.savez writes) with fixed timestamps, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    return buf.getvalue()


def _summary(stats: Stats) -> dict[str, Any]:
    rgb = ("r", "g", "b")
    return {
        "pixels": int(stats.count),
        "channel_mean": dict(zip(rgb, map(float, stats.channel_mean))),
        "channel_std": dict(zip(rgb, map(float, stats.channel_std))),
        # pc1 >= pc2 >= pc3, keyed rather than a list so that `dvc metrics show` lists them.
        "eigvals": {f"pc{i + 1}": float(v) for i, v in enumerate(stats.eigvals)},
    }


def save_stats(stats: Stats, out_dir: str | Path) -> None:
    """Write out_dir/stats.npz (the contract) and a readable stats.json, atomically as a folder."""
    with atomic_dir(out_dir) as tmp:
        (tmp / "stats.npz").write_bytes(_npz_bytes({f.name: getattr(stats, f.name) for f in fields(Stats)}))
        readable = _summary(stats) | {
            "cov": stats.cov.tolist(),
            "eigvecs_columns": stats.eigvecs.tolist(),
            "image_size": list(stats.mean_image.shape),
            "mean_image_range": [float(stats.mean_image.min()), float(stats.mean_image.max())],
        }
        write_json(tmp / "stats.json", readable)


def load_stats(stats_dir: str | Path) -> Stats:
    """Read data/stats/stats.npz into `Stats`."""
    path = Path(stats_dir) / "stats.npz"
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the stats stage first")
    with np.load(path, allow_pickle=False) as z:
        missing = [f.name for f in fields(Stats) if f.name not in z.files]
        if missing:
            raise PipelineError(f"{path} lacks {', '.join(missing)}; rerun the stats stage")
        return Stats(**{f.name: z[f.name] for f in fields(Stats)})


def stats(prepared_dir: str | Path, out_dir: str | Path, cfg: StatsConfig,
          record_path: str | Path | None = None, progress: bool = True) -> Stats:
    """Stage entry point: statistics of the prepared training split -> data/stats (the numbers,
    stats.json readable), and the run record (images, workers, time)."""
    start = time.perf_counter()
    store = PreparedStore(prepared_dir)
    if TRAIN_SPLIT not in store.splits:
        raise PipelineError(f"the prepared store {prepared_dir} has no {TRAIN_SPLIT!r} split")
    result = compute_stats(store, TRAIN_SPLIT, cfg.workers, progress)
    save_stats(result, out_dir)
    if record_path is not None:
        write_record(record_path, {"train_images": store.meta["splits"][TRAIN_SPLIT], "workers": cfg.workers},
                     seconds=time.perf_counter() - start)
    return result
