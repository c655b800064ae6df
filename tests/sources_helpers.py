"""Builders for small ILSVRC-format releases, written independently of alexnet.data.sources."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def tar_bytes(members: list[tuple[str, bytes]], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


def meta_mat(synsets: list[dict], id_field: str) -> bytes:
    """meta.mat with a `synsets` struct array: each dict has id, wnid, words, children (ids), n_train."""
    fields = [id_field, "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
    rows = np.empty((len(synsets), 1), dtype=[(f, object) for f in fields])
    for i, s in enumerate(synsets):
        kids = s.get("children", [])
        rows[i, 0] = (float(s["id"]), s["wnid"], s["words"], "a gloss", float(len(kids)),
                      np.array([kids], dtype=float) if kids else np.zeros((1, 0)), 0.0, float(s.get("n_train", 0)))
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": rows})
    return buf.getvalue()


# Hand-worked example: the devkit numbers three classes in an order unlike sorted wnid order.
# sorted wnids: n01000001 (label 0), n02000002 (label 1), n03000003 (label 2)
LEAVES = [
    {"id": 1, "wnid": "n03000003", "words": "third, tertius", "n_train": 2},
    {"id": 2, "wnid": "n01000001", "words": "first", "n_train": 3},
    {"id": 3, "wnid": "n02000002", "words": "second, secundus", "n_train": 1},
]
INTERNAL = [{"id": 4, "wnid": "n00000004", "words": "thing", "children": [1, 2, 3], "n_train": 6}]
COLOURS = {"n01000001": (250, 0, 0), "n02000002": (0, 250, 0), "n03000003": (0, 0, 250)}
VAL_TRUTH = [3, 1, 2, 2, 1]  # ILSVRC ids of val images 1..5 -> wnids n02, n03, n01, n01, n03


def train_members() -> list[tuple[str, bytes]]:
    inner = []
    for leaf in LEAVES:
        w = leaf["wnid"]
        inner.append((f"{w}.tar", tar_bytes([(f"{w}_{k}.JPEG", jpeg(COLOURS[w])) for k in range(leaf["n_train"])])))
    return inner


def make_ilsvrc2012(root: Path, val_truth: list[int] = VAL_TRUTH) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    wnid_of = {leaf["id"]: leaf["wnid"] for leaf in LEAVES}
    files = {
        "train": tar_bytes(train_members()),
        # members deliberately out of numeric order: the name, not the position, gives the index
        "val": tar_bytes([(f"ILSVRC2012_val_{i:08d}.JPEG", jpeg(COLOURS.get(wnid_of.get(t), (9, 9, 9))))
                          for i, t in reversed(list(enumerate(val_truth, start=1)))]),
        "devkit": tar_bytes([
            ("ILSVRC2012_devkit_t12/data/meta.mat", meta_mat(LEAVES + INTERNAL, "ILSVRC2012_ID")),
            ("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt",
             "".join(f"{t}\n" for t in val_truth).encode()),
            ("ILSVRC2012_devkit_t12/COPYING", b"x")], gz=True),
    }
    names = {"train": "ILSVRC2012_img_train.tar", "val": "ILSVRC2012_img_val.tar",
             "devkit": "ILSVRC2012_devkit_t12.tar.gz"}
    out = {}
    for role, data in files.items():
        (root / names[role]).write_bytes(data)
        out[role] = root / names[role]
    return out
