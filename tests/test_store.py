"""Tests for alexnet/store.py: reading a store laid out as docs/architecture.md says.

The stores here are written by hand (np.save + csv), independently of alexnet/prepare.py, so a
layout mistake on either side would show; one test round-trips through prepare as well.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from alexnet.cli import PipelineError
from alexnet.store import PreparedStore, shard_path

S = 8
CLASSES = [("n01440764", "tench, Tinca tinca"), ("n01443537", "goldfish"), ("n09999999", "NA")]


def make_store(root: Path, n_train: int = 11, n_val: int = 5, shard_size: int = 4, seed: int = 0) -> dict:
    """Write a store by hand; returns the images and rows per split for checking."""
    rng = np.random.default_rng(seed)
    (root / "shards").mkdir(parents=True)
    truth = {}
    rows = []
    for split, n in (("train", n_train), ("val", n_val)):
        images = rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8)
        labels = rng.integers(0, len(CLASSES), n)
        for k in range(0, n, shard_size):
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
            "num_classes": len(CLASSES)}
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
        assert view.shard_files == [shard_path(tmp_path, split, k) for k in range(-(-len(images) // 4))]


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


def test_iter_batches(tmp_path):
    truth = make_store(tmp_path, n_train=11, shard_size=4)
    view = PreparedStore(tmp_path).split("train")
    batches = list(view.iter_batches(3))
    assert [len(i) for i, _ in batches] == [3, 3, 3, 2]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in batches]), np.arange(11))
    np.testing.assert_array_equal(np.concatenate([x for _, x in batches]), truth["train"][0])
    order = np.array([10, 3, 7, 0, 1])
    got = list(view.iter_batches(2, order))
    np.testing.assert_array_equal(np.concatenate([i for i, _ in got]), order)
    np.testing.assert_array_equal(np.concatenate([x for _, x in got]), truth["train"][0][order])
    with pytest.raises(ValueError):
        next(view.iter_batches(0))


def test_bad_indices(tmp_path):
    make_store(tmp_path)
    view = PreparedStore(tmp_path).split("val")
    with pytest.raises(IndexError):
        view.images([5])
    with pytest.raises(IndexError):
        view.images([-1])
    with pytest.raises(TypeError):
        view.images(np.array([0.5]))


def test_pickle_reopens_maps(tmp_path):
    truth = make_store(tmp_path)
    view = PreparedStore(tmp_path).split("train")
    view.images([0, 5])  # opens two maps
    state = pickle.dumps(view)
    assert len(state) < 4096  # the maps themselves are not pickled
    np.testing.assert_array_equal(pickle.loads(state).images([1, 9]), truth["train"][0][[1, 9]])


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
    from test_prepare import CLASSES as PCLASSES, make_raw

    from alexnet.config import PrepareConfig
    from alexnet.prepare import process_image, write_store

    raw = make_raw(n_train=9, n_val=3, corrupt=True)
    write_store(raw, tmp_path / "p", PrepareConfig(size=32, shard_size=4, workers=1), "fake", progress=False)
    store = PreparedStore(tmp_path / "p")
    wnids = [c.wnid for c in PCLASSES]
    for split in raw.splits:
        good = [r for r in raw.records[split] if not r.source.startswith(("truncated", "text"))]
        view = store.split(split)
        assert view.sources == [r.source for r in good]
        np.testing.assert_array_equal(view.labels, [wnids.index(r.wnid) for r in good])
        expected = np.stack([process_image(r.data, 32) for r in good])
        np.testing.assert_array_equal(view.images(np.arange(len(good))[::-1]), expected[::-1])
