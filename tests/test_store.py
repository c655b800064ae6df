"""Tests for alexnet/data/store.py: reading a store laid out as docs/architecture.md says.

The stores here are written by hand (np.save + csv), independently of alexnet/data/prepare.py, so a
layout mistake on either side would show; one test round-trips through prepare as well.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data.store import PreparedStore, offsets_path, shard_path
from alexnet.errors import PipelineError

S = 8
CLASSES = [("n01440764", "tench, Tinca tinca"), ("n01443537", "goldfish"), ("n09999999", "NA")]


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def pil_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def write_jpeg_shard(root: Path, split: str, k: int, encoded: list[bytes]) -> None:
    """shards/<split>-<k>.jpeg.npy (the bytes concatenated) and .offsets.npy (int64 [n + 1])."""
    np.save(root / "shards" / f"{split}-{k:05d}.jpeg.npy", np.frombuffer(b"".join(encoded), np.uint8))
    np.save(root / "shards" / f"{split}-{k:05d}.offsets.npy", np.cumsum([0] + [len(e) for e in encoded]))


def make_store(root: Path, n_train: int = 11, n_val: int = 5, shard_size: int = 4, seed: int = 0,
               fmt: str | None = None) -> dict:
    """Write a store by hand; returns the images (for jpeg: as Pillow decodes the stored bytes)
    and rows per split for checking. fmt None writes no format key: a store from before it."""
    rng = np.random.default_rng(seed)
    (root / "shards").mkdir(parents=True)
    truth = {}
    rows = []
    for split, n in (("train", n_train), ("val", n_val)):
        images = rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8)
        labels = rng.integers(0, len(CLASSES), n)
        for k in range(0, n, shard_size):
            if fmt == "jpeg":
                encoded = [jpeg(x) for x in images[k:k + shard_size]]
                images[k:k + shard_size] = [pil_decode(e) for e in encoded]
                write_jpeg_shard(root, split, k // shard_size, encoded)
            else:
                np.save(root / "shards" / f"{split}-{k // shard_size:05d}.npy", images[k:k + shard_size])
        for i in range(n):
            rows.append([split, i // shard_size, i % shard_size, labels[i], CLASSES[labels[i]][0], f"{split}_{i}.JPEG"])
        truth[split] = (images, labels)
    with open(root / "index.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["split", "shard", "offset", "label", "wnid", "source"])
        w.writerows(rows)
    with open(root / "classes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "wnid", "name"])
        w.writerows([i, wnid, name] for i, (wnid, name) in enumerate(CLASSES))
    meta = {"size": S, "source": "hand", "eval_split": "val", "splits": {"train": n_train, "val": n_val},
            "num_classes": len(CLASSES)} | ({"format": fmt} if fmt else {})
    (root / "meta.json").write_text(json.dumps(meta))
    return truth


def test_metadata(tmp_path):
    make_store(tmp_path)
    store = PreparedStore(tmp_path)
    assert store.meta["source"] == "hand" and store.size == S
    assert store.num_classes == 3 and store.eval_split == "val" and store.splits == ["train", "val"]
    assert list(store.classes.columns) == ["label", "wnid", "name"]
    assert store.classes["name"].tolist() == ["tench, Tinca tinca", "goldfish", "NA"]  # "NA" stays a string
    assert store.classes["wnid"].tolist() == [c[0] for c in CLASSES]


def test_labels_names_and_lengths(tmp_path):
    truth = make_store(tmp_path)
    store = PreparedStore(tmp_path)
    for split, (images, labels) in truth.items():
        view = store.split(split)
        assert len(view) == len(images)
        assert view.labels.dtype == np.int64
        np.testing.assert_array_equal(view.labels, labels)
        assert view.wnids == [CLASSES[i][0] for i in labels]
        assert view.sources == [f"{split}_{i}.JPEG" for i in range(len(images))]
        assert all(shard_path(tmp_path, split, k).is_file() for k in range(-(-len(images) // 4)))


def test_images_any_order_with_repeats(tmp_path):
    truth = make_store(tmp_path, n_train=23, shard_size=5)
    view = PreparedStore(tmp_path).split("train")
    images = truth["train"][0]
    rng = np.random.default_rng(1)
    for idx in (rng.permutation(23), rng.integers(0, 23, 40), [22, 0, 22, 5, 6, 7, 8, 9], [3], np.arange(5, 15)):
        got = view.images(idx)
        assert got.dtype == np.uint8 and got.shape == (len(idx), S, S, 3)
        np.testing.assert_array_equal(got, images[np.asarray(idx)])
    assert view.images([]).shape == (0, S, S, 3)
    got = view.images(np.array([4, 2], dtype=np.int32))
    np.testing.assert_array_equal(got, images[[4, 2]])


def test_bad_indices(tmp_path):
    make_store(tmp_path)
    view = PreparedStore(tmp_path).split("val")
    with pytest.raises(IndexError):
        view.images([5])
    with pytest.raises(IndexError):
        view.images([-1])
    with pytest.raises(TypeError):
        view.images(np.array([0.5]))


def test_missing_store(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        PreparedStore(tmp_path / "nope")


@pytest.mark.parametrize("name", ["meta.json", "index.csv", "classes.csv"])
def test_incomplete_store(tmp_path, name):
    make_store(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(PipelineError, match=name):
        PreparedStore(tmp_path)


def test_inconsistent_store(tmp_path):
    make_store(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["splits"]["train"] = 12
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PipelineError, match="inconsistent"):
        PreparedStore(tmp_path)


def test_missing_or_short_shard(tmp_path):
    make_store(tmp_path, n_train=11, shard_size=4)
    store = PreparedStore(tmp_path)
    shard_path(tmp_path, "train", 2).unlink()
    view = store.split("train")
    view.images([0, 7])  # shards 0 and 1 are fine
    with pytest.raises(PipelineError, match="missing"):
        view.images([8])
    np.save(shard_path(tmp_path, "train", 2), np.zeros((2, S, S, 3), np.uint8))  # index wants 3 rows
    with pytest.raises(PipelineError, match="inconsistent"):
        PreparedStore(tmp_path).split("train").images([8])
    np.save(shard_path(tmp_path, "train", 2), np.zeros((3, S, S, 3), np.float32))
    with pytest.raises(PipelineError, match="inconsistent"):
        PreparedStore(tmp_path).split("train").images([8])


def test_unknown_split(tmp_path):
    make_store(tmp_path)
    with pytest.raises(PipelineError, match="test"):
        PreparedStore(tmp_path).split("test")


def test_round_trip_through_prepare(tmp_path):
    """What prepare writes, the store reads back: the same pixels, labels and names."""
    from test_prepare import CLASSES as PCLASSES
    from test_prepare import make_raw

    from alexnet.config import PrepareConfig
    from alexnet.data.prepare import write_store
    from alexnet.data.resize import process_image

    raw = make_raw(n_train=9, n_val=3, corrupt=True)
    write_store(raw, tmp_path / "p", PrepareConfig(image_side=32, shard_size=4, workers=1), "fake", progress=False)
    store = PreparedStore(tmp_path / "p")
    wnids = [c.wnid for c in PCLASSES]
    for split in raw.splits:
        good = [r for r in raw.records[split] if not r.source.startswith(("truncated", "text"))]
        view = store.split(split)
        assert view.sources == [r.source for r in good]
        np.testing.assert_array_equal(view.labels, [wnids.index(r.wnid) for r in good])
        expected = np.stack([process_image(r.data, 32) for r in good])
        np.testing.assert_array_equal(view.images(np.arange(len(good))[::-1]), expected[::-1])


def test_store_without_format_key_is_npy(tmp_path):
    make_store(tmp_path)  # meta.json as written before the format key existed
    view = PreparedStore(tmp_path).split("train")
    assert PreparedStore(tmp_path).format == view.format == "npy"
    with pytest.raises(PipelineError, match="no encoded images"):
        view.encoded([0])


def test_jpeg_store_reads_what_pillow_decodes(tmp_path):
    truth = make_store(tmp_path, n_train=23, shard_size=5, fmt="jpeg")
    store = PreparedStore(tmp_path)
    view = store.split("train")
    images = truth["train"][0]  # Pillow's decoding of the stored bytes
    assert store.format == view.format == "jpeg"
    assert shard_path(tmp_path, "train", 0, "jpeg").name == "train-00000.jpeg.npy"
    assert all(shard_path(tmp_path, "train", k, "jpeg").is_file() for k in range(5))
    rng = np.random.default_rng(1)
    for idx in (rng.permutation(23), rng.integers(0, 23, 40), [22, 0, 22, 5], [3], np.arange(5, 15)):
        got = view.images(idx)
        assert got.dtype == np.uint8 and got.shape == (len(idx), S, S, 3) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, images[np.asarray(idx)])
    assert view.images([]).shape == (0, S, S, 3)
    assert [view.shard_length(k) for k in range(5)] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(view.shard_rows(1, 2, 9), images[7:10])  # stop past the end: clipped
    np.testing.assert_array_equal(view.images(np.arange(23)), images)
    np.testing.assert_array_equal(PreparedStore(tmp_path).split("val").images([4, 0]), truth["val"][0][[4, 0]])
    with pytest.raises(PipelineError, match="jpeg store"):
        view.shard(0)  # the raw-pixel map of an npy store


def test_encoded_bytes_are_views_of_the_shard_and_decode_anywhere(tmp_path):
    make_store(tmp_path, n_train=11, shard_size=4, fmt="jpeg")
    view = PreparedStore(tmp_path).split("train")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (11, S, S, 3), dtype=np.uint8)  # make_store's draws, before encoding
    idx = [10, 3, 4, 3]
    enc = view.encoded(idx)
    assert [bytes(e.numpy()) for e in enc] == [jpeg(images[i]) for i in idx]
    assert all(e.dtype == torch.uint8 and e.dim() == 1 for e in enc)
    data, offsets = view.jpeg_shard(2)  # image 10 = row 2 of shard 2: no copy, a slice of the map
    assert enc[0].data_ptr() == data.ctypes.data + int(offsets[2])
    got = view.decode(idx, enc, "cpu")
    assert got.dtype == torch.uint8 and got.shape == (4, S, S, 3) and got.device.type == "cpu"
    np.testing.assert_array_equal(got.numpy(), view.images(idx))
    with pytest.raises(ValueError, match="3 encoded images for 4"):
        view.decode(idx, enc[:3])


def _damage(tmp_path, what: str) -> None:
    data_file, offsets_file = shard_path(tmp_path, "train", 1, "jpeg"), offsets_path(tmp_path, "train", 1)
    data, offsets = np.load(data_file), np.load(offsets_file)
    if what == "truncated":
        np.save(data_file, data[:-10])
    elif what == "short":
        np.save(offsets_file, offsets[:-2])  # 2 images where index.csv lists 4
    elif what == "unordered":
        offsets[[1, 2]] = offsets[[2, 1]]
        np.save(offsets_file, offsets)
    elif what == "float":
        np.save(offsets_file, offsets.astype(np.float64))
    elif what == "missing":
        offsets_file.unlink()
    elif what == "not_npy":
        data_file.write_bytes(b"garbage")
    elif what == "bad_jpeg":
        data[offsets[2]:offsets[3]] = 0x55  # image 2: same length, no JPEG markers
        np.save(data_file, data)
    elif what == "cut_jpeg":  # image 3 ends early; offsets still agree with the file
        keep = int(offsets[3]) + (int(offsets[4]) - int(offsets[3])) // 2
        np.save(data_file, data[:keep])
        offsets[4] = keep
        np.save(offsets_file, offsets)
    elif what == "wrong_size":
        write_jpeg_shard(tmp_path, "train", 1, [jpeg(np.zeros((S, S + 2, 3), np.uint8))] * 4)


@pytest.mark.parametrize("what,message", [
    ("truncated", r"train-00001.offsets.npy does not cut .*train-00001.jpeg.npy.*rerun prepare"),
    ("short", r"train-00001.jpeg.npy.*index.csv expects.* >= 4 images.*rerun prepare"),
    ("unordered", r"train-00001.offsets.npy does not cut.*rerun prepare"),
    ("float", r"float64.*inconsistent; rerun prepare"),
    ("missing", r"train-00001.offsets.npy is missing.*rerun prepare"),
    ("not_npy", r"train-00001.jpeg.npy is not a valid .npy.*rerun prepare"),
    ("bad_jpeg", r"train-00001.jpeg.npy image 2 is not a valid JPEG.*rerun prepare"),
    ("cut_jpeg", r"train-00001.jpeg.npy image 3 is not a valid JPEG.*rerun prepare"),
    ("wrong_size", rf"train-00001.jpeg.npy image 0 decodes to \[3, {S}, {S + 2}\], expected \[3, {S}, {S}\].*rerun prepare"),
])
def test_damaged_jpeg_shard_is_a_clear_error(tmp_path, what, message):
    make_store(tmp_path, n_train=11, shard_size=4, fmt="jpeg")
    _damage(tmp_path, what)
    view = PreparedStore(tmp_path).split("train")
    view.images([0, 3, 8])  # shards 0 and 2 are fine
    row = {"bad_jpeg": 6, "cut_jpeg": 7}.get(what, 4)  # an image of shard 1 that the damage reaches
    with pytest.raises(PipelineError, match=message):
        view.images([row])
    with pytest.raises(PipelineError, match=message):  # the whole-split scan of the stats stage
        [view.shard_rows(k, 0, view.shard_length(k)) for k in range(view.num_shards)]
    if what in ("bad_jpeg", "cut_jpeg", "wrong_size"):  # the bytes are handed out; decoding names the image
        with pytest.raises(PipelineError, match=message):
            view.decode([row], view.encoded([row]))


def test_unknown_format(tmp_path):
    make_store(tmp_path, fmt="jpeg")
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps(meta | {"format": "png"}))
    with pytest.raises(PipelineError, match="format 'png' is not one of npy, jpeg; rerun prepare"):
        PreparedStore(tmp_path)
