"""CIFAR-10 in its official file format: the reader, the verifier, and a generated tiny set.

Owns stage `cifar_download` (`cifar_download(cfg, out)`: data/cifar/manifest.json, plus the
generated archive for `cifar.source: tiny`) and the reader the `cifar` stage uses
(`read_cifar(path) -> CifarData`).

The official `cifar-10-python.tar.gz` (Krizhevsky 2009; MD5 c58f30108f718f92721af3b95e74349a)
holds a folder `cifar-10-batches-py/` with `data_batch_1` .. `data_batch_5` (10,000 training
images each), `test_batch` (10,000) and `batches.meta`, each a Python 2 pickle of a dict:
`data` uint8 [n, 3072] (the 1024 red, then green, then blue values of a 32x32 image, row-major),
`labels` (n ints in 0..9), `batch_label`, `filenames`; `batches.meta` has `label_names`,
`num_cases_per_batch`, `num_vis`. Keys are byte strings when read with `encoding="bytes"`.

Safety: the archive's members are checked (no absolute paths, `..`, links or devices) and the
pickles are read by an unpickler that only rebuilds numpy arrays, lists, dicts and strings: a
pickle naming any other callable is refused, so a tampered archive cannot run code.
A wrong MD5 and a truncated archive each stop the stage with one line naming the file.

`cifar.source: tiny` writes, deterministically from `cifar.tiny_seed`, a small set in exactly
that format (a real .tar.gz of pickles) so that CI runs the very reader the real file goes through.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet.errors import ArchiveError, PipelineError
from alexnet.config import CifarConfig
from alexnet.fileio import atomic_dir, iter_tar_files, md5sum, read_json, verify_md5, write_json

ARCHIVE = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
MEMBERS = (*TRAIN_BATCHES, "test_batch", "batches.meta")
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MANIFEST = "manifest.json"
TAR_MTIME = 1243296000  # 2009-05-26, fixed so the generated archive is byte-identical on every run


@dataclass(frozen=True)
class CifarData:
    """Images uint8 [n, 32, 32, 3] RGB (HWC, like the ImageNet stores) and int64 labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    label_names: tuple[str, ...]


class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain containers only; any other global is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"), ("builtins", "bytearray"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, label: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # pickle raises many types on damaged or hostile input
        raise PipelineError(f"{label}: not a CIFAR-10 batch pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise PipelineError(f"{label}: expected a pickled dict, got {type(obj).__name__}")
    # Python 2 pickles read with encoding="bytes" have bytes keys; ours are written the same way.
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _batch(d: dict, label: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise PipelineError(f"{label}: 'data' must be a uint8 array [n, 3072], got "
                            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    labels = np.asarray(labels, dtype=np.int64) if isinstance(labels, list) else None
    if labels is None or labels.shape != (data.shape[0],) or (labels.size and not (0 <= labels.min() <= labels.max() <= 9)):
        raise PipelineError(f"{label}: 'labels' must be {data.shape[0]} integers in 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes R, G, B -> HWC
    return np.ascontiguousarray(images), labels


def read_cifar(path: str | Path, expected_md5: str | None = None) -> CifarData:
    """Read a cifar-10-python.tar.gz, streamed; check its MD5 first when `expected_md5` is given."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"CIFAR-10 archive {path} not found")
    if expected_md5:
        verify_md5(path, expected_md5, progress=False)
    found: dict[str, bytes] = {}
    try:
        for name, data in iter_tar_files(path):  # every member checked (check_member), streamed
            parts = Path(name).parts
            if len(parts) == 2 and parts[0] == FOLDER and parts[1] in MEMBERS:
                found[parts[1]] = data
    except ArchiveError as e:
        raise PipelineError(f"{e} (truncated or damaged archive: get a fresh copy of cifar-10-python.tar.gz)") from e
    missing = [m for m in MEMBERS if m not in found]
    if missing:
        raise PipelineError(f"{path}: not the CIFAR-10 python archive, missing {FOLDER}/" + f", {FOLDER}/".join(missing))
    meta = _unpickle(found["batches.meta"], f"{path}:{FOLDER}/batches.meta")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise PipelineError(f"{path}:{FOLDER}/batches.meta: 'label_names' must list 10 class names")
    train = [_batch(_unpickle(found[b], f"{path}:{FOLDER}/{b}"), f"{path}:{FOLDER}/{b}") for b in TRAIN_BATCHES]
    test = _batch(_unpickle(found["test_batch"], f"{path}:{FOLDER}/test_batch"), f"{path}:{FOLDER}/test_batch")
    return CifarData(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), test[0], test[1],
                     tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names))


# --- the generated tiny set -------------------------------------------------------------------

def _prototypes(rng: np.random.Generator) -> np.ndarray:
    """One smooth 32x32 colour pattern per class: 4x4 random colours, bilinearly upsampled."""
    coarse = rng.uniform(0, 255, size=(10, 4, 4, 3))
    x = np.linspace(0, 3, 32)
    i0 = np.floor(x).astype(int).clip(0, 2)
    t = x - i0
    rows = coarse[:, i0] * (1 - t)[None, :, None, None] + coarse[:, i0 + 1] * t[None, :, None, None]
    return rows[:, :, i0] * (1 - t)[None, None, :, None] + rows[:, :, i0 + 1] * t[None, None, :, None]


def generate_images(per_class: int, seed: int, salt: int) -> tuple[np.ndarray, list[int]]:
    """`per_class` images of each class, uint8 [n, 3072] in CIFAR's plane order, shuffled.

    Each image is its class's prototype, shifted by up to 4 pixels, at a random contrast,
    blended with another class's prototype and covered in pixel noise, so that a small CNN
    learns the classes over several epochs rather than in one step.
    """
    protos = _prototypes(np.random.default_rng(seed))
    rng = np.random.default_rng([seed, salt])
    labels = np.repeat(np.arange(10), per_class)
    rng.shuffle(labels)
    out = np.empty((labels.size, 32, 32, 3))
    for i, c in enumerate(labels):
        dy, dx = rng.integers(-4, 5, size=2)
        own = np.roll(protos[c], (dy, dx), axis=(0, 1))
        other = protos[rng.integers(10)]
        mix = rng.uniform(0.0, 0.45)
        img = (1 - mix) * own + mix * other
        img = 128 + rng.uniform(0.5, 1.2) * (img - 128) + rng.normal(0, 40, size=(32, 32, 3))
        out[i] = img
    data = np.clip(np.round(out), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).reshape(len(labels), 3072)
    return data, labels.tolist()


def _add(tf: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), TAR_MTIME, 0o644
    info.uname = info.gname = "kriz"
    tf.addfile(info, io.BytesIO(payload))


def write_archive(path: str | Path, train_per_class: int, test_per_class: int, seed: int) -> None:
    """A cifar-10-python.tar.gz in the official format, byte-identical for the same arguments."""
    path = Path(path)
    members: dict[str, bytes] = {}
    data, labels = generate_images(train_per_class, seed, salt=1)
    per_batch = np.array_split(np.arange(len(labels)), len(TRAIN_BATCHES))
    for b, idx in zip(TRAIN_BATCHES, per_batch):
        n = int(idx[0]) if idx.size else 0
        members[b] = pickle.dumps({
            b"batch_label": f"training batch {b[-1]} of 5".encode(), b"labels": [labels[i] for i in idx],
            b"data": data[idx], b"filenames": [f"tiny_{n + j:05d}.png".encode() for j in range(idx.size)]}, protocol=2)
    data, labels = generate_images(test_per_class, seed, salt=2)
    members["test_batch"] = pickle.dumps({
        b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
        b"filenames": [f"tiny_test_{j:05d}.png".encode() for j in range(len(labels))]}, protocol=2)
    members["batches.meta"] = pickle.dumps({
        b"num_cases_per_batch": int(per_batch[0].size), b"label_names": [n.encode() for n in LABEL_NAMES],
        b"num_vis": 3072}, protocol=2)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        dir_info = tarfile.TarInfo(FOLDER)
        dir_info.type, dir_info.mtime, dir_info.mode = tarfile.DIRTYPE, TAR_MTIME, 0o755
        tf.addfile(dir_info)
        for name in ("batches.meta", *TRAIN_BATCHES, "test_batch"):
            _add(tf, f"{FOLDER}/{name}", members[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())


# --- stage cifar_download -----------------------------------------------------------------------

def cifar_download(cfg: CifarConfig, out: str | Path) -> dict:
    """Stage `cifar_download`: data/cifar/manifest.json (and the generated archive for tiny).

    tiny: the archive is written into `out` and its own MD5 recorded; file: `cfg.archive` is
    verified in place against the official MD5 (unless cifar.verify_md5 is false) and not copied.
    """
    out = Path(out)
    with atomic_dir(out) as tmp:
        if cfg.source == "tiny":
            write_archive(tmp / ARCHIVE, cfg.tiny_train_per_class, cfg.tiny_test_per_class, cfg.tiny_seed)
            data = read_cifar(tmp / ARCHIVE)  # the reader the real file goes through
            manifest = {"source": "tiny", "archive": ARCHIVE, "md5": md5sum(tmp / ARCHIVE, progress=False),
                        "verified": True, "official_md5": MD5}
        else:
            archive = Path(cfg.archive).expanduser().resolve()
            data = read_cifar(archive, MD5 if cfg.verify_md5 else None)
            manifest = {"source": "file", "archive": str(archive), "md5": MD5 if cfg.verify_md5 else None,
                        "verified": cfg.verify_md5, "official_md5": MD5}
        manifest |= {"train_images": int(data.train_labels.size), "test_images": int(data.test_labels.size),
                     "label_names": list(data.label_names)}
        write_json(tmp / MANIFEST, manifest)
    print(f"CIFAR-10 ({manifest['source']}): {manifest['train_images']} training, {manifest['test_images']} test "
          f"images; MD5 {'verified' if manifest['verified'] else 'not checked (cifar.verify_md5: false)'}")
    return manifest


def open_cifar(raw_dir: str | Path) -> tuple[CifarData, dict]:
    """The data and manifest that stage `cifar_download` described in `raw_dir`."""
    raw_dir = Path(raw_dir)
    path = raw_dir / MANIFEST
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the cifar_download stage first (dvc repro cifar_download)")
    manifest = read_json(path)
    archive = Path(manifest["archive"])
    archive = archive if archive.is_absolute() else raw_dir / archive
    # tiny: its own MD5 (the archive is a DVC output, so this catches a damaged cache); file:
    # verified by cifar_download already (163 MB), so not read twice.
    return read_cifar(archive, manifest["md5"] if manifest["source"] == "tiny" else None), manifest
