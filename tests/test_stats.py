"""Tests for alexnet/data/stats.py: mean image, channel moments and RGB PCA against numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stage_helpers import assert_clear_error, run_stage
from test_store import make_store

from alexnet.config import StatsConfig
from alexnet.data import stats as st
from alexnet.data.store import PreparedStore
from alexnet.errors import PipelineError


def pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(-1, 3).astype(np.float64)


def test_accumulate_exact_against_one_shot_float64():
    rng = np.random.default_rng(0)
    for shape in [(5, 33, 33, 3), (3, 16, 16, 3), (2, 7, 5, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        s = st.accumulate(x)
        p = pixels(x)  # one-shot float64: exact here, all partial sums are integers < 2^53
        assert s.images == shape[0]
        np.testing.assert_array_equal(s.outer, (p.T @ p).astype(np.int64))
        np.testing.assert_array_equal(s.image_sum, x.astype(np.int64).sum(axis=0))


def test_accumulate_flushes_partial_sums(monkeypatch):
    monkeypatch.setattr(st, "FLUSH", 2)  # exercise the uint16 -> int64 hand-over every 2 images
    monkeypatch.setattr(st, "BLOCK", 7)  # and the per-block uint32 product sums, with a ragged last block
    x = np.random.default_rng(1).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    s = st.accumulate(x)
    np.testing.assert_array_equal(s.image_sum, x.astype(np.int64).sum(axis=0))
    np.testing.assert_array_equal(s.outer, (pixels(x).T @ pixels(x)).astype(np.int64))


def test_accumulate_narrow_sums_at_their_limits():
    # 300 all-255 images of 300x300: the uint16 per-pixel sums reach 257 * 255 = 65535 before each
    # hand-over, and each image's 90,000 pixels span two product blocks, the first summing to
    # 65536 * 65025 = 4,261,478,400, just under 2^32. One more image or pixel per block overflows.
    x = np.full((300, 300, 300, 3), 255, np.uint8)
    s = st.accumulate(x)
    assert (s.image_sum == 300 * 255).all()
    assert (s.outer == 300 * 300 * 300 * 255 * 255).all()


def test_accumulate_worst_case_values_exact():
    # All 255, the largest products: still exact (3 * 4096 * 65025 = 799,027,200 per entry).
    x = np.full((3, 64, 64, 3), 255, np.uint8)
    s = st.accumulate(x)
    assert (s.outer == 3 * 64 * 64 * 255 * 255).all()
    x[0, 0, 0] = [254, 255, 253]
    s = st.accumulate(x)
    n = 3 * 64 * 64 - 1
    assert s.outer[0, 2] == n * 255 * 255 + 254 * 253 and s.outer[1, 1] == (n + 1) * 255 * 255


def test_accumulate_rejects_wrong_input():
    with pytest.raises(ValueError):
        st.accumulate(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        st.accumulate(np.zeros((4, 4, 3), np.uint8))


def test_stats_against_numpy(tmp_path):
    truth = make_store(tmp_path, n_train=23, shard_size=5, seed=3)
    x = truth["train"][0]
    s = st.compute_stats(PreparedStore(tmp_path), workers=1, progress=False)
    p = pixels(x)
    np.testing.assert_allclose(s.mean_image, x.astype(np.float64).mean(axis=0), rtol=0, atol=1e-12)
    assert s.mean_image.shape == (8, 8, 3) and s.mean_image.dtype == np.float64
    np.testing.assert_allclose(s.channel_mean, p.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(s.channel_std, p.std(axis=0), rtol=1e-12)
    cov = np.cov(p.T, bias=True)
    np.testing.assert_allclose(s.cov, cov, rtol=1e-11)
    assert int(s.count) == x.shape[0] * 8 * 8
    vals, vecs = np.linalg.eigh(cov)
    np.testing.assert_allclose(s.eigvals, vals[::-1], rtol=1e-10)
    assert s.eigvals[0] >= s.eigvals[1] >= s.eigvals[2]
    for i in range(3):  # same eigenvectors up to sign; column i goes with eigvals[i]
        assert abs(abs(s.eigvecs[:, i] @ vecs[:, 2 - i]) - 1) < 1e-10
        np.testing.assert_allclose(s.cov @ s.eigvecs[:, i], s.eigvals[i] * s.eigvecs[:, i], atol=1e-9)
        assert s.eigvecs[np.argmax(np.abs(s.eigvecs[:, i])), i] > 0  # the sign convention
    np.testing.assert_allclose(s.eigvecs.T @ s.eigvecs, np.eye(3), atol=1e-12)


def test_correlated_colours_give_the_expected_principal_axis(tmp_path):
    # Grey-ish pixels (R = G = B plus small noise): the first principal axis is (1, 1, 1)/sqrt(3).
    truth = make_store(tmp_path, n_train=6, shard_size=4)
    rng = np.random.default_rng(5)
    grey = rng.integers(20, 230, (6, 8, 8, 1))
    x = np.clip(grey + rng.integers(-3, 4, (6, 8, 8, 3)), 0, 255).astype(np.uint8)
    np.save(tmp_path / "shards" / "train-00000.npy", x[:4])
    np.save(tmp_path / "shards" / "train-00001.npy", x[4:])
    del truth
    s = st.compute_stats(PreparedStore(tmp_path), workers=1, progress=False)
    np.testing.assert_allclose(s.eigvecs[:, 0], np.ones(3) / np.sqrt(3), atol=0.01)
    assert s.eigvals[0] > 100 * s.eigvals[1]


def test_identical_for_one_and_two_workers(tmp_path, monkeypatch):
    make_store(tmp_path, n_train=31, shard_size=8, seed=7)
    monkeypatch.setattr(st, "TASK_IMAGES", 3)  # many small tasks, finishing in any order
    store = PreparedStore(tmp_path)
    a = st.compute_stats(store, workers=1, progress=False)
    b = st.compute_stats(store, workers=2, progress=False)
    for name in ("mean_image", "channel_mean", "channel_std", "cov", "eigvals", "eigvecs", "count"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_jpeg_store_stats_equal_those_of_its_decoded_images(tmp_path, monkeypatch):
    """The whole-split scan decodes a jpeg store's shard ranges: the same exact sums as an npy store."""
    truth = make_store(tmp_path / "jpeg", n_train=31, shard_size=8, seed=7, fmt="jpeg")  # truth: decoded
    make_store(tmp_path / "npy", n_train=31, shard_size=8, seed=7)
    for k in range(4):
        np.save(tmp_path / "npy" / "shards" / f"train-{k:05d}.npy", truth["train"][0][8 * k:8 * (k + 1)])
    monkeypatch.setattr(st, "TASK_IMAGES", 3)  # ranges inside shards and up to their ends
    expected = st.compute_stats(PreparedStore(tmp_path / "npy"), workers=1, progress=False)
    for workers in (1, 2):
        got = st.compute_stats(PreparedStore(tmp_path / "jpeg"), workers=workers, progress=False)
        for name in ("mean_image", "channel_mean", "channel_std", "cov", "eigvals", "eigvecs", "count"):
            assert np.array_equal(getattr(got, name), getattr(expected, name)), name


def test_stage_outputs_and_load(tmp_path):
    make_store(tmp_path / "prep", n_train=9)
    out = tmp_path / "stats"
    s = st.stats(tmp_path / "prep", out, StatsConfig(workers=1), record_path=tmp_path / "m.json",
                 progress=False)
    loaded = st.load_stats(out)
    for name in ("mean_image", "channel_mean", "channel_std", "cov", "eigvals", "eigvecs", "count"):
        assert np.array_equal(getattr(loaded, name), getattr(s, name)), name
    with np.load(out / "stats.npz") as z:  # the contract's keys, as plain np.load sees them
        assert set(z.files) == {"mean_image", "channel_mean", "channel_std", "cov", "eigvals", "eigvecs", "count"}
        assert z["mean_image"].dtype == np.float64 and z["eigvecs"].shape == (3, 3)
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["train_images"] == 9 and record["workers"] == 1 and record["seconds"] > 0
    readable = json.loads((out / "stats.json").read_text())
    assert readable["pixels"] == 9 * 64
    assert readable["channel_mean"]["g"] == pytest.approx(float(s.channel_mean[1]))
    assert [readable["eigvals"][k] for k in ("pc1", "pc2", "pc3")] == pytest.approx(list(s.eigvals))
    np.testing.assert_allclose(readable["cov"], s.cov, rtol=1e-15)
    # A rerun writes the same bytes (fixed zip timestamps): DVC sees an unchanged output.
    first = (out / "stats.npz").read_bytes()
    st.stats(tmp_path / "prep", out, StatsConfig(workers=2), progress=False)
    assert (out / "stats.npz").read_bytes() == first


def test_errors(tmp_path):
    with pytest.raises(PipelineError, match="stats stage"):
        st.load_stats(tmp_path)
    make_store(tmp_path / "prep", n_train=0)
    with pytest.raises(PipelineError, match="no training images"):
        st.stats(tmp_path / "prep", tmp_path / "out", StatsConfig(workers=1), progress=False)
    assert not (tmp_path / "out").exists()


def test_stage_script_reports_a_clear_error(tmp_path):
    """The stage as dvc.yaml runs it: a missing store is one line on stderr and exit status 2."""
    (tmp_path / "params.yaml").write_text("stats:\n  workers: 1\n")
    r = run_stage("stats", "--params", "params.yaml", "--prepared", "prep", "--out", "stats", "--record", "m.json",
                  cwd=tmp_path)
    assert_clear_error(r, "prepare stage")
    assert not (tmp_path / "stats").exists()
