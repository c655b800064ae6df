"""The tiny generator: deterministic bytes, the exact ILSVRC-2012 layout, a real devkit, the quirks."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections import Counter

import numpy as np
import pytest
import scipy.io
from PIL import Image

from alexnet.config import DataConfig, TinyConfig
from alexnet.data.sources import download_raw, open_raw
from alexnet.data.sources.synsets import SYNSETS, WORDS
from alexnet.data.sources.tiny import TAR_MTIME, choose_classes, generate
from alexnet.fileio import read_json

CFG = TinyConfig(classes=5, train_per_class=4, val_per_class=3, min_side=40, max_side=72, seed=3)
FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "raw"
    download_raw(DataConfig(), CFG, out, progress=False)
    return out


def _members(path):
    with tarfile.open(path) as tf:
        return tf.getmembers(), {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}


def _devkit(raw):
    _, files = _members(raw / FILES[2])
    meta = scipy.io.loadmat(io.BytesIO(files["ILSVRC2012_devkit_t12/data/meta.mat"]), squeeze_me=True)["synsets"]
    truth = [int(x) for x in files["ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"].split()]
    return meta, truth


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, raw):
    again = generate(CFG, tmp_path / "a", progress=False)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (raw / name).read_bytes(), name
    manifest = read_json(raw / "manifest.json")
    assert again["md5"] == manifest["md5"]
    other = TinyConfig(**{**CFG.__dict__, "seed": CFG.seed + 1})
    generate(other, tmp_path / "b", progress=False)
    assert (tmp_path / "b" / FILES[0]).read_bytes() != (raw / FILES[0]).read_bytes()


def test_manifest_records_md5s_that_match_the_files(raw):
    m = read_json(raw / "manifest.json")
    assert m["source"] == "tiny" and m["layout"] == "ilsvrc2012" and m["verified"] is True
    assert m["files"] == {"train": FILES[0], "val": FILES[1], "devkit": FILES[2]}
    for role, name in m["files"].items():
        assert m["md5"][role] == hashlib.md5((raw / name).read_bytes()).hexdigest()


def test_official_layout_and_fixed_tar_metadata(raw):
    members, files = _members(raw / FILES[0])
    assert len(members) == CFG.classes
    for m in members:
        assert re.fullmatch(r"n\d{8}\.tar", m.name) and m.mtime == TAR_MTIME and m.uid == 0
        wnid = m.name[:-4]
        inner = tarfile.open(fileobj=io.BytesIO(files[m.name]))
        names = inner.getnames()
        assert len(names) == CFG.train_per_class
        assert all(re.fullmatch(rf"{wnid}_\d+\.JPEG", n) for n in names)
    val_members, _ = _members(raw / FILES[1])
    n_val = CFG.classes * CFG.val_per_class
    assert sorted(m.name for m in val_members) == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, n_val + 1)]
    with open(raw / FILES[2], "rb") as f:
        assert f.read(10)[4:8] == b"\0\0\0\0"  # gzip header mtime 0: stable bytes


def test_devkit_meta_mat_is_shaped_like_the_real_one(raw):
    meta, truth = _devkit(raw)
    assert meta.dtype.names == ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
                                "wordnet_height", "num_train_images")
    leaves = [s for s in meta if int(s["num_children"]) == 0]
    internal = [s for s in meta if int(s["num_children"]) > 0]
    assert sorted(int(s["ILSVRC2012_ID"]) for s in leaves) == list(range(1, CFG.classes + 1))
    assert internal, "non-leaf synsets exercise the leaf filter"
    ids = {int(s["ILSVRC2012_ID"]) for s in meta}
    for s in internal:
        kids = np.atleast_1d(s["children"]).astype(int)
        assert len(kids) == int(s["num_children"]) and set(kids) <= ids
        assert int(s["ILSVRC2012_ID"]) > CFG.classes
    # Real ImageNet synsets with their devkit words.
    for s in leaves:
        assert WORDS[str(s["WNID"])] == str(s["words"])
        assert int(s["num_train_images"]) == CFG.train_per_class
    # The devkit's numbering is not sorted-wnid order.
    by_id = [str(s["WNID"]) for s in sorted(leaves, key=lambda s: int(s["ILSVRC2012_ID"]))]
    assert by_id != sorted(by_id)
    assert len(truth) == CFG.classes * CFG.val_per_class


def test_reader_labels_follow_the_devkit_not_the_order(raw):
    meta, truth = _devkit(raw)
    wnid_of_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in meta if int(s["num_children"]) == 0}
    ds = open_raw(raw)
    assert [c.wnid for c in ds.classes] == sorted(wnid_of_id.values())
    val = list(ds.iter_split("val"))
    got = {r.source: r.wnid for r in val}
    expected = {f"ILSVRC2012_val_{i:08d}.JPEG": wnid_of_id[t] for i, t in enumerate(truth, start=1)}
    assert got == expected
    # Mapping by position (id k -> k-th sorted wnid) would give other labels: the test can tell.
    naive = {f"ILSVRC2012_val_{i:08d}.JPEG": sorted(wnid_of_id.values())[t - 1] for i, t in enumerate(truth, start=1)}
    assert naive != expected
    assert Counter(got.values()) == {w: CFG.val_per_class for w in wnid_of_id.values()}
    assert ds.count("val") == len(val) and ds.eval_split == "val" and ds.splits == ["train", "val"]


def test_classes_are_real_and_spread_over_the_table(raw):
    ds = open_raw(raw)
    table = [w for w, _ in SYNSETS]
    assert all(c.wnid in table for c in ds.classes)
    assert ds.classes[0].wnid == "n01440764" and ds.classes[0].name == "tench"
    assert len({table.index(c.wnid) // 20 for c in ds.classes}) == CFG.classes  # one per fifth of the table


def test_train_records_and_planted_quirks(raw):
    ds = open_raw(raw)
    quirks = read_json(raw / "manifest.json")["quirks"]
    assert set(quirks) == {"cmyk", "png", "grayscale", "truncated"}
    records = list(ds.iter_split("train"))
    assert len(records) == ds.count("train") == CFG.classes * CFG.train_per_class
    assert all(r.source.startswith(r.wnid + "_") for r in records)
    by_name = {r.source: r.data for r in records}
    formats = {}
    for name, data in by_name.items():
        im = Image.open(io.BytesIO(data))
        formats[name] = (im.format, im.mode)
        if name == quirks["truncated"]:
            with pytest.raises(OSError):
                im.load()
        else:
            im.load()
            assert CFG.min_side <= min(im.size) and max(im.size) <= CFG.max_side
    assert formats[quirks["cmyk"]] == ("JPEG", "CMYK")
    assert formats[quirks["png"]] == ("PNG", "RGB") and quirks["png"].endswith(".JPEG")
    assert formats[quirks["grayscale"]] == ("JPEG", "L")
    normal = [f for n, f in formats.items() if n not in quirks.values()]
    assert set(normal) == {("JPEG", "RGB")}


@pytest.mark.parametrize("classes", [2, 5, 10, 16])
def test_every_pair_of_classes_differs_in_two_attributes(classes):
    ks = choose_classes(TinyConfig(classes=classes))
    for i, a in enumerate(ks):
        for b in ks[i + 1:]:
            hue_gap = min(abs(a.hue - b.hue), 1 - abs(a.hue - b.hue))
            assert (a.shape != b.shape) + (a.texture != b.texture) + (hue_gap > 0.06) >= 2, (a, b)


def test_images_vary_in_size_and_aspect(raw):
    ds = open_raw(raw)
    sizes = {Image.open(io.BytesIO(r.data)).size for r in ds.iter_split("val")}
    assert len(sizes) > len(ds.classes)
    assert any(w != h for w, h in sizes)


def _colour_histogram(data: bytes) -> np.ndarray:
    """Hue histogram of the strongly saturated pixels (the object's; backgrounds are paler)."""
    hsv = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").convert("HSV"), dtype=np.int64)
    hue = hsv[..., 0][hsv[..., 1] > 150] * 16 // 256
    h = np.bincount(hue, minlength=16).astype(float)
    return h / max(h.sum(), 1.0)


def test_learnable_above_chance_by_a_simple_classifier(tmp_path):
    """Nearest class-mean on colour histograms, trained on train and scored on val, beats chance widely."""
    cfg = TinyConfig(classes=6, train_per_class=12, val_per_class=8, min_side=48, max_side=80, seed=1)
    download_raw(DataConfig(), cfg, tmp_path / "raw", progress=False)
    ds = open_raw(tmp_path / "raw")
    quirks = set(read_json(tmp_path / "raw" / "manifest.json")["quirks"].values())
    feats: dict[str, list[np.ndarray]] = {}
    for r in ds.iter_split("train"):
        if r.source not in quirks:
            feats.setdefault(r.wnid, []).append(_colour_histogram(r.data))
    wnids = sorted(feats)
    centroids = np.stack([np.mean(feats[w], axis=0) for w in wnids])
    val = list(ds.iter_split("val"))
    pred = [wnids[int(np.argmin(((centroids - _colour_histogram(r.data)) ** 2).sum(1)))] for r in val]
    accuracy = np.mean([p == r.wnid for p, r in zip(pred, val)])
    assert accuracy > 3 / cfg.classes, accuracy  # chance is 1/6
