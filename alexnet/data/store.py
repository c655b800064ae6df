"""The prepared store (data/prepared/): its layout, the shard writers alexnet/data/prepare.py
fills, and reading it back.

Owns the store's on-disk layout (docs/architecture.md): meta.json, classes.csv, index.csv and
shards/<split>-<k:05d>.npy, uint8 [n, S, S, 3] each, opened as read-only memory maps so that any
image is a slice of the page cache and nothing is loaded until it is used. `SplitView.images`
gathers any list of indices shard by shard, rows in file order (reads go forward through each
file), each row copied once into its place.

A store of format jpeg (meta.json "format"; a store without the key is npy) holds each image as
JPEG bytes instead: shards/<split>-<k:05d>.jpeg.npy (uint8, the JPEGs concatenated, memory-mapped)
and .offsets.npy (int64 [n + 1]), five times smaller. `images` then decodes on the CPU;
`encoded` hands out the bytes (views of the map) so that a caller can decode a batch elsewhere,
on the GPU with `decode`. Both decode with torchvision.io.decode_jpeg (libjpeg-turbo on the CPU,
the same pixels as Pillow; nvJPEG on CUDA).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

# torch only inside the functions that decode JPEG: reading the layout (prepare, stats) stays light
if TYPE_CHECKING:
    import torch
    from torch import Tensor

from alexnet.config import PrepareConfig
from alexnet.errors import PipelineError

# The layout (docs/architecture.md), here only: alexnet.data.prepare writes through these names.
META = "meta.json"  # written last: a store without it is incomplete
CLASSES = "classes.csv"
INDEX = "index.csv"  # row order = store order
QUARANTINE = "quarantine.csv"
SHARDS = "shards"
META_KEYS = ("size", "source", "eval_split", "splits", "num_classes")
INDEX_COLUMNS = ["split", "shard", "offset", "label", "wnid", "source"]
CLASSES_COLUMNS = ["label", "wnid", "name"]
QUARANTINE_COLUMNS = ["split", "source", "wnid", "reason"]
FORMATS = ("npy", "jpeg")


def layout_files(root: str | Path) -> list[Path]:
    """meta.json and index.csv: what says which images a store holds, in which order, with which
    labels (train's data fingerprint; the pixels are DVC's to hash)."""
    return [Path(root) / META, Path(root) / INDEX]


def write_classes_and_meta(root: str | Path, classes: Sequence[tuple[int, str, str]], meta: dict[str, Any]) -> None:
    """classes.csv (label, wnid, name rows) and then meta.json, last: a store is complete once it exists."""
    root = Path(root)
    with open(root / CLASSES, "w", newline="") as fc:
        w = csv.writer(fc, lineterminator="\n")
        w.writerow(CLASSES_COLUMNS)
        w.writerows(classes)
    (root / META).write_text(json.dumps(meta, indent=2) + "\n")


def shard_path(root: str | Path, split: str, shard: int, fmt: str = "npy") -> Path:
    """Where shard `shard` of `split` lives in the store at `root` (format jpeg: its bytes)."""
    suffix = ".jpeg.npy" if fmt == "jpeg" else ".npy"
    return Path(root) / SHARDS / f"{split}-{shard:05d}{suffix}"


def offsets_path(root: str | Path, split: str, shard: int) -> Path:
    """Where the byte offsets of JPEG shard `shard` of `split` live."""
    return Path(root) / SHARDS / f"{split}-{shard:05d}.offsets.npy"


# --- writing (alexnet.data.prepare fills the shards through these)


class NpyShardWriter:
    """Fills a [shard_size, S, S, 3] buffer and writes shards/<split>-<k:05d>.npy as it fills."""

    def __init__(self, root: Path, split: str, shard_size: int, size: int):
        self.root, self.split, self.shard_size = root, split, shard_size
        self.buf = np.empty((shard_size, size, size, 3), np.uint8)
        self.shard, self.fill, self.total = 0, 0, 0

    def add(self, image: np.ndarray) -> tuple[int, int]:
        """Store one image; returns its (shard, offset)."""
        where = (self.shard, self.fill)
        self.buf[self.fill] = image
        self.fill += 1
        self.total += 1
        if self.fill == self.shard_size:
            self.flush()
        return where

    def flush(self) -> None:
        if self.fill == 0:
            return
        with open(shard_path(self.root, self.split, self.shard), "wb") as f:
            np.save(f, self.buf[: self.fill], allow_pickle=False)
        self.shard += 1
        self.fill = 0


class JpegShardWriter:
    """Collects up to shard_size JPEGs and writes shards/<split>-<k:05d>.jpeg.npy (the bytes
    concatenated, uint8) and .offsets.npy (int64 [n + 1], image i = bytes[offsets[i]:offsets[i + 1]])."""

    def __init__(self, root: Path, split: str, shard_size: int):
        self.root, self.split, self.shard_size = root, split, shard_size
        self.parts: list[bytes] = []
        self.shard, self.total = 0, 0

    def add(self, jpeg: bytes) -> tuple[int, int]:
        """Store one encoded image; returns its (shard, offset)."""
        where = (self.shard, len(self.parts))
        self.parts.append(jpeg)
        self.total += 1
        if len(self.parts) == self.shard_size:
            self.flush()
        return where

    def flush(self) -> None:
        if not self.parts:
            return
        offsets = np.zeros(len(self.parts) + 1, np.int64)
        np.cumsum([len(p) for p in self.parts], out=offsets[1:])
        with open(shard_path(self.root, self.split, self.shard, "jpeg"), "wb") as f:
            np.save(f, np.frombuffer(b"".join(self.parts), np.uint8), allow_pickle=False)
        with open(offsets_path(self.root, self.split, self.shard), "wb") as f:
            np.save(f, offsets, allow_pickle=False)
        self.shard += 1
        self.parts = []


def shard_writer(root: Path, split: str, cfg: PrepareConfig) -> NpyShardWriter | JpegShardWriter:
    """The writer of `split`'s shards in `cfg.format`: `.add(image)` (uint8 [S, S, 3] for npy,
    alexnet.data.resize.encode_jpeg's bytes for jpeg) returns its (shard, offset); `.flush()` writes the last shard."""
    if cfg.format == "jpeg":
        return JpegShardWriter(root, split, cfg.shard_size)
    return NpyShardWriter(root, split, cfg.shard_size, cfg.image_side)


def _load(path: Path, mmap_mode: Literal["r", "c"] | None = None) -> np.ndarray:
    if not path.is_file():
        raise PipelineError(f"{path} is missing: the prepared store is incomplete; rerun prepare")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise PipelineError(f"{path} is not a valid .npy shard ({e}); rerun prepare") from e


class SplitView:
    """One split of the store: labels, names, and images gathered from memory-mapped shards."""

    def __init__(self, root: Path, name: str, size: int, index: pd.DataFrame, fmt: str = "npy"):
        self.root, self.name, self.size = root, name, size
        self.format = fmt  # "npy" or "jpeg"
        self._shard = index["shard"].to_numpy(np.int64)
        self._offset = index["offset"].to_numpy(np.int64)
        self.labels: np.ndarray = index["label"].to_numpy(np.int64)
        self.wnids: list[str] = index["wnid"].astype(str).tolist()
        self.sources: list[str] = index["source"].astype(str).tolist()
        self.num_shards = int(self._shard.max()) + 1 if len(index) else 0
        # Rows each shard must hold at least (largest offset + 1), to check files on first open.
        self._rows = np.zeros(self.num_shards, np.int64)
        np.maximum.at(self._rows, self._shard, self._offset + 1)
        self._maps: dict[int, np.ndarray] = {}
        self._jpegs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"SplitView({self.name!r}, {len(self)} {self.format} images of {self.size}x{self.size}, {self.root})"

    def shard(self, k: int) -> np.ndarray:
        """Shard k of an npy store as a read-only memory map, uint8 [n, S, S, 3] (checked on first open)."""
        mm = self._maps.get(k)
        if mm is None:
            if self.format != "npy":
                raise PipelineError(f"{self.root} is a {self.format} store: its shards hold encoded images "
                                    "(read them with shard_rows, images or encoded)")
            path = shard_path(self.root, self.name, k)
            mm = _load(path, "r")
            rows = int(self._rows[k]) if k < self.num_shards else 0
            if mm.dtype != np.uint8 or mm.ndim != 4 or mm.shape[1:] != (self.size, self.size, 3) \
                    or mm.shape[0] < rows:
                raise PipelineError(
                    f"{path} holds {mm.dtype} {mm.shape}, but index.csv expects uint8 "
                    f"[>= {rows}, {self.size}, {self.size}, 3]; the prepared store is inconsistent")
            self._maps[k] = mm
        return mm

    def jpeg_shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard k of a jpeg store: (its bytes, a uint8 memory map; offsets, int64 [n + 1]),
        checked against index.csv and the file size on first open."""
        shard = self._jpegs.get(k)
        if shard is None:
            data_file, offsets_file = shard_path(self.root, self.name, k, "jpeg"), offsets_path(self.root, self.name, k)
            # Copy-on-write: torch.from_numpy warns on read-only memory; the pages stay the page
            # cache's as long as nothing writes to them, and nothing does.
            data, offsets = _load(data_file, "c"), _load(offsets_file)
            rows = int(self._rows[k]) if k < self.num_shards else 0
            if data.dtype != np.uint8 or data.ndim != 1 or offsets.dtype != np.int64 or offsets.ndim != 1 \
                    or len(offsets) - 1 < rows:
                raise PipelineError(
                    f"{data_file} holds {data.dtype} {data.shape} and {offsets_file} {offsets.dtype} {offsets.shape}, "
                    f"but index.csv expects uint8 bytes and the int64 offsets of >= {rows} images; the prepared "
                    "store is inconsistent; rerun prepare")
            if offsets[0] != 0 or offsets[-1] != data.size or (np.diff(offsets) <= 0).any():
                raise PipelineError(
                    f"{offsets_file} does not cut {data_file} ({data.size} bytes) into consecutive non-empty "
                    f"images (offsets {offsets[0]} .. {offsets[-1]}); the prepared store is inconsistent; rerun prepare")
            shard = self._jpegs[k] = (data, offsets)
        return shard

    def shard_length(self, k: int) -> int:
        """Images in shard k."""
        if self.format == "jpeg":
            return len(self.jpeg_shard(k)[1]) - 1
        return len(self.shard(k))

    def shard_rows(self, k: int, start: int, stop: int) -> np.ndarray:
        """Images [start, stop) of shard k, uint8 [n, S, S, 3] (for whole-split scans): without
        copying for npy, decoded on the CPU for jpeg."""
        import torch

        if self.format == "jpeg":
            rows = np.arange(start, min(stop, self.shard_length(k)), dtype=np.int64)
            shards = np.full(len(rows), k, np.int64)
            return self._decode(self._encoded(shards, rows), shards, rows, torch.device("cpu")).numpy()
        return self.shard(k)[start:stop]

    def _check(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1:
            idx = idx.reshape(-1)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be integers, got {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for split {self.name!r} of {len(self)} images")
        return idx

    def images(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 [len(indices), S, S, 3], in the order given (repeats allowed); decoded on the CPU for jpeg."""
        idx = self._check(indices)
        if self.format == "jpeg":
            return self.decode(idx, self.encoded(idx)).numpy()
        out = np.empty((len(idx), self.size, self.size, 3), np.uint8)
        if len(idx) == 0:
            return out
        shards = self._shard[idx]
        offsets = self._offset[idx]
        # Rows visited in file order (forward reads through each shard), each copied once straight
        # into its place in the batch: measured faster than a fancy-index gather plus scatter.
        order = np.lexsort((offsets, shards))
        maps = {int(k): self.shard(int(k)) for k in np.unique(shards)}
        for pos, k, off in zip(order.tolist(), shards[order].tolist(), offsets[order].tolist()):
            out[pos] = maps[k][off]
        return out

    def encoded(self, indices: Sequence[int] | np.ndarray) -> list[Tensor]:
        """The JPEG bytes of each index of a jpeg store, in the order given: uint8 1-D CPU tensors,
        views of the memory-mapped shards (no copy), for `decode` here or on another device."""
        if self.format != "jpeg":
            raise PipelineError(f"{self.root} is a {self.format} store: it holds no encoded images")
        idx = self._check(indices)
        return self._encoded(self._shard[idx], self._offset[idx])

    def decode(self, indices: Sequence[int] | np.ndarray, encoded: list[Tensor],
               device: torch.device | str = "cpu") -> Tensor:
        """uint8 [n, S, S, 3] on `device` from `encoded(indices)`: libjpeg-turbo on the CPU, one
        batched nvJPEG call on a CUDA device. `indices` only name the files in errors."""
        import torch

        idx = self._check(indices)
        if len(idx) != len(encoded):
            raise ValueError(f"{len(encoded)} encoded images for {len(idx)} indices")
        return self._decode(encoded, self._shard[idx], self._offset[idx], torch.device(device))

    def _encoded(self, shards: np.ndarray, offsets: np.ndarray) -> list[Tensor]:
        import torch

        out = []
        for k, off in zip(shards.tolist(), offsets.tolist()):
            data, bounds = self.jpeg_shard(k)
            out.append(torch.from_numpy(data[bounds[off]:bounds[off + 1]]))
        return out

    def _decode(self, encoded: list[Tensor], shards: np.ndarray, offsets: np.ndarray, device: torch.device) -> Tensor:
        import torch
        from torchvision.io import decode_jpeg

        places = list(zip(shards.tolist(), offsets.tolist()))
        if not encoded:
            return torch.empty((0, self.size, self.size, 3), dtype=torch.uint8, device=device)
        if device.type == "cpu":
            # One image at a time, as decode_jpeg does with a list on the CPU, so that an error
            # names its image.
            decoded = []
            for jpeg, (k, off) in zip(encoded, places):
                try:
                    decoded.append(decode_jpeg(jpeg))
                except RuntimeError as e:
                    raise PipelineError(f"{shard_path(self.root, self.name, k, 'jpeg')} image {off} is not a "
                                        f"valid JPEG ({e}); the prepared store is damaged; rerun prepare") from e
        else:
            try:
                decoded = decode_jpeg(encoded, device=device)
            except RuntimeError as e:
                self._decode(encoded, shards, offsets, torch.device("cpu"))  # names a bad image, if any
                raise PipelineError(f"decoding {len(encoded)} {self.name} images of {self.root} on {device} "
                                    f"failed ({e}), though the CPU decodes them") from e
        for img, (k, off) in zip(decoded, places):
            if img.shape != (3, self.size, self.size):
                raise PipelineError(f"{shard_path(self.root, self.name, k, 'jpeg')} image {off} decodes to "
                                    f"{list(img.shape)}, expected [3, {self.size}, {self.size}]; the prepared store "
                                    "is inconsistent; rerun prepare")
        # decode_jpeg returns CHW views of HWC pixels: permuting back costs nothing, stack copies once.
        return torch.stack([img.permute(1, 2, 0) for img in decoded])


class PreparedStore:
    """The store at `root`: `.meta`, `.classes`, `.num_classes`, `.eval_split`, `.split(name)`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise PipelineError(f"prepared store {self.root} not found: run the prepare stage first")
        for name in (META, CLASSES, INDEX):
            if not (self.root / name).is_file():
                raise PipelineError(f"{self.root / name} is missing: the prepared store is incomplete; "
                                    "rerun prepare")
        try:
            self.meta: dict[str, Any] = json.loads((self.root / META).read_text())
        except json.JSONDecodeError as e:
            raise PipelineError(f"{self.root / META} is not valid JSON: {e}") from e
        missing = [k for k in META_KEYS if k not in self.meta]
        if missing:
            raise PipelineError(f"{self.root / META} lacks {', '.join(missing)}")
        self.format: str = self.meta.get("format", "npy")  # stores written before the key are npy
        if self.format not in FORMATS:
            raise PipelineError(f"{self.root / META}: format {self.format!r} is not one of "
                                f"{', '.join(FORMATS)}; rerun prepare")
        self.size: int = int(self.meta["size"])
        self.eval_split: str = self.meta["eval_split"]
        self.classes: pd.DataFrame = pd.read_csv(self.root / CLASSES, dtype={"wnid": str, "name": str},
                                                 keep_default_na=False)
        self.num_classes: int = int(self.meta["num_classes"])
        if len(self.classes) != self.num_classes or list(self.classes["label"]) != list(range(self.num_classes)):
            raise PipelineError(f"{self.root / CLASSES} does not list labels 0..{self.num_classes - 1} "
                                "as meta.json says")
        index = pd.read_csv(self.root / INDEX, dtype={"split": str, "wnid": str, "source": str},
                            keep_default_na=False)
        if list(index.columns) != INDEX_COLUMNS:
            raise PipelineError(f"{self.root / INDEX} has columns {list(index.columns)}, "
                                f"expected {INDEX_COLUMNS}")
        self._index = {name: part.reset_index(drop=True) for name, part in index.groupby("split", sort=False)}
        for name, n in self.meta["splits"].items():
            got = len(self._index.get(name, ()))
            if got != n:
                raise PipelineError(f"{self.root / INDEX} lists {got} {name} images, meta.json {n}: "
                                    "the prepared store is inconsistent; rerun prepare")
        self._views: dict[str, SplitView] = {}

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    def split(self, name: str) -> SplitView:
        """The view of split `name` (train, val, or test for ILSVRC-2010)."""
        if name not in self.meta["splits"]:
            raise PipelineError(f"split {name!r} is not in the prepared store {self.root} "
                                f"(it has {', '.join(self.splits)})")
        if name not in self._views:
            part = self._index.get(name, pd.DataFrame(columns=INDEX_COLUMNS))
            self._views[name] = SplitView(self.root, name, self.size, part, self.format)
        return self._views[name]

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.meta["splits"].items())
        return f"PreparedStore({self.root}, {self.format}, {self.size}px, {self.num_classes} classes, {parts})"
