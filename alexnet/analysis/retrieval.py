"""Retrieval maths for the analysis stage: nearest neighbours, precision@k, binary codes.

Owns the numbers behind Figure 4 (right) and the paper's closing suggestion (Section 6.1): exact
Euclidean search in fc7 space, the pixel-space baseline it is compared with, and compression of
fc7 vectors to short binary codes searched by Hamming distance. Two coders: an auto-encoder with
a binarised bottleneck, as the paper proposes (after Krizhevsky & Hinton 2011), and random-
hyperplane LSH (Charikar 2002) as the well-known baseline. Pure functions over numpy arrays;
no files, no figures (those are in `alexnet.analysis.analyze`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from torch import nn

from alexnet.data.input import pixels
from alexnet.training.optim import CorrectlyRoundedAdam

# Pixel-space baseline: the centre crop average-pooled to 32x32 RGB (3072-d), the "tiny images"
# size of Torralba et al. 2008. Subtracting a common mean image would not change any Euclidean
# distance, so raw 0-255 values are used.
PIXEL_SIZE = 32


def euclidean_knn(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest database rows of each query by Euclidean distance (exact, brute force).

    Returns (distances [q, k] float64, indices [q, k] int64), nearest first.
    """
    _check_k(k, len(database))
    # Brute force in float64: exact, and on a few thousand rows faster than a tree in 4096-d.
    nn_index = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean")
    nn_index.fit(np.asarray(database, dtype=np.float64))
    dist, idx = nn_index.kneighbors(np.asarray(queries, dtype=np.float64))
    return dist, idx.astype(np.int64)


def precision_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Mean over queries of the fraction of the first k neighbours that share the query's class.

    `neighbour_labels` is [q, K] (nearest first) with K >= max(ks).
    """
    neighbour_labels = np.asarray(neighbour_labels)
    query_labels = np.asarray(query_labels)
    if neighbour_labels.ndim != 2 or len(neighbour_labels) != len(query_labels):
        raise ValueError(f"neighbour labels {neighbour_labels.shape} do not match {len(query_labels)} queries")
    if max(ks) > neighbour_labels.shape[1]:
        raise ValueError(f"precision@{max(ks)} needs {max(ks)} neighbours, got {neighbour_labels.shape[1]}")
    same = neighbour_labels == query_labels[:, None]
    return {int(k): float(same[:, :k].mean()) for k in ks}


def chance_precision(train_labels: np.ndarray, query_labels: np.ndarray) -> float:
    """Precision of neighbours drawn at random from the database: sum_c P(query c) P(train c)."""
    classes = np.union1d(train_labels, query_labels)
    p_train = np.array([(train_labels == c).mean() for c in classes])
    p_query = np.array([(query_labels == c).mean() for c in classes])
    return float((p_train * p_query).sum())


def pixel_features(images_u8: np.ndarray, crop: int, size: int = PIXEL_SIZE) -> np.ndarray:
    """Centre `crop` x `crop` patch of uint8 [N, S, S, 3] images, area-averaged to size x size.

    Returns float32 [N, size * size * 3] in 0-255 units: the pixel-space retrieval baseline.
    """
    s = images_u8.shape[1]
    if crop > s:
        raise ValueError(f"crop {crop} is larger than the {s}x{s} images")
    x = torch.from_numpy(np.ascontiguousarray(pixels.center_crop(images_u8, crop))).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="area")
    return x.reshape(len(x), -1).numpy()


# --- binary codes ---------------------------------------------------------------------------

def pack_codes(bits: np.ndarray) -> np.ndarray:
    """Bool/0-1 [N, B] -> uint8 [N, ceil(B/8)], 8 bits per byte (zero-padded)."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1)


def hamming_distances(database: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """All Hamming distances [q, n] between packed uint8 codes (XOR + popcount)."""
    if database.dtype != np.uint8 or queries.dtype != np.uint8 or database.shape[1] != queries.shape[1]:
        raise ValueError("codes must be packed uint8 arrays of the same width (see pack_codes)")
    w = database.shape[1]
    if w % 8 == 0:  # 64 bits at a time: 8x fewer XORs and popcounts than bytes
        database, queries = database.view(np.uint64), queries.view(np.uint64)
    out = np.empty((len(queries), len(database)), dtype=np.int64)
    # Chunk the queries so the [chunk, n, words] XOR stays under ~16M elements.
    chunk = max(1, (1 << 24) // max(1, database.size))
    for s in range(0, len(queries), chunk):
        x = np.bitwise_xor(queries[s:s + chunk, None, :], database[None, :, :])
        out[s:s + chunk] = np.bitwise_count(x).sum(axis=2, dtype=np.int64)
    return out


def hamming_knn(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest packed codes by Hamming distance; ties go to the lower database index.

    Returns (distances [q, k] int64, indices [q, k] int64), nearest first.
    """
    n = len(database)
    _check_k(k, n)
    dist = hamming_distances(database, queries)
    # One int64 key per pair orders by distance, then index: deterministic under ties.
    key = dist * n + np.arange(n, dtype=np.int64)[None, :]
    part = np.argpartition(key, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(key), 1))
    order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return np.take_along_axis(dist, idx, axis=1), idx


@dataclass
class LSHCoder:
    """Random-hyperplane LSH (Charikar 2002): bit j = [ (x - mean) . r_j > 0 ], r_j ~ N(0, I)."""

    mean: np.ndarray
    planes: np.ndarray  # [dim, bits]

    @classmethod
    def fit(cls, features: np.ndarray, bits: int, seed: int) -> "LSHCoder":
        rng = np.random.default_rng(seed)
        planes = rng.standard_normal((features.shape[1], bits))
        return cls(mean=features.mean(axis=0, dtype=np.float64), planes=planes)

    def encode(self, features: np.ndarray) -> np.ndarray:
        return pack_codes((np.asarray(features, np.float64) - self.mean) @ self.planes > 0)


class _SignST(torch.autograd.Function):
    """Binarise in the forward pass, pass the gradient straight through (Bengio et al. 2013)."""

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        return torch.where(x > 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        return g


class BinaryAutoencoder(nn.Module):
    """fc7 -> hidden -> `bits` binary units -> hidden -> fc7, trained to reconstruct fc7.

    The paper (Section 6.1) proposes exactly this for fast retrieval; the bottleneck is tanh
    binarised to +-1 with a straight-through gradient, so the code used at search time is the
    one the decoder was trained on.
    """

    def __init__(self, dim: int, bits: int, hidden: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, bits))
        self.decoder = nn.Sequential(nn.Linear(bits, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(_SignST.apply(torch.tanh(self.encoder(x))))


@dataclass
class AutoencoderCoder:
    """A trained `BinaryAutoencoder` with the standardisation it was trained under."""

    model: BinaryAutoencoder
    mean: np.ndarray
    scale: float
    final_loss: float

    @classmethod
    def fit(cls, features: np.ndarray, bits: int, seed: int, hidden: int = 256, epochs: int = 10,
            batch_size: int = 128, lr: float = 3e-3, progress: Callable | None = None) -> "AutoencoderCoder":
        """Train on `features` (the training set's fc7), seeded: bit-identical reruns on the CPU.

        Small on purpose (one hidden layer of 256, 10 epochs of Adam): it trains in seconds on
        a few thousand fc7 vectors on a CPU.
        """
        x = np.asarray(features, np.float32)
        mean = x.mean(axis=0)
        # One scalar scale of the centred features, not per dimension: a unit that barely varies
        # (dead ReLUs are all zero) must not be blown up to the size of the informative ones.
        scale = float((x - mean).std()) or 1.0
        data = torch.from_numpy((x - mean) / scale)
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BinaryAutoencoder(x.shape[1], bits, min(hidden, x.shape[1]))
        opt = CorrectlyRoundedAdam(model.parameters(), lr=lr)  # torch's Adam differs between CPUs
        model.train()
        loss_value = float("nan")
        epoch_iter = range(epochs) if progress is None else progress(range(epochs))
        for _ in epoch_iter:
            total, count = 0.0, 0
            for batch in torch.randperm(len(data), generator=gen).split(batch_size):
                xb = data[batch]
                loss = F.mse_loss(model(xb), xb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(batch)
                count += len(batch)
            loss_value = total / count
        model.eval()
        return cls(model=model, mean=mean, scale=scale, final_loss=loss_value)

    @torch.no_grad()
    def encode(self, features: np.ndarray) -> np.ndarray:
        x = torch.from_numpy((np.asarray(features, np.float32) - self.mean) / self.scale)
        return pack_codes((self.model.encoder(x) > 0).numpy())


def median_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of `repeats` calls of `fn` (one untimed warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _check_k(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"asked for {k} nearest neighbours in a database of {n} items")
