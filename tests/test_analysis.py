"""Tests for alexnet.analysis.retrieval and alexnet.analysis.analyze: the retrieval maths against brute force,
precision@k on hand-worked cases, binary codes, the kernel grid, and the stage end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stage_helpers import run_stage

from alexnet.analysis import retrieval
from alexnet.analysis.analyze import kernel_grid


def brute_knn(db: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.sqrt(((q[:, None, :].astype(np.float64) - db[None, :, :]) ** 2).sum(-1))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, axis=1), idx


def test_euclidean_knn_matches_brute_force():
    rng = np.random.default_rng(0)
    db, q = rng.normal(size=(300, 40)).astype(np.float32), rng.normal(size=(25, 40)).astype(np.float32)
    dist, idx = retrieval.euclidean_knn(db, q, 7)
    ref_dist, ref_idx = brute_knn(db, q, 7)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-10)


def test_euclidean_knn_finds_exact_copies_first():
    rng = np.random.default_rng(1)
    db = rng.normal(size=(50, 8))
    dist, idx = retrieval.euclidean_knn(db, db[[3, 17, 42]], 1)
    assert idx[:, 0].tolist() == [3, 17, 42]
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-6)  # sklearn: |x|^2 - 2xy + |y|^2


def test_knn_rejects_k_larger_than_database():
    with pytest.raises(ValueError, match="database of 4"):
        retrieval.euclidean_knn(np.zeros((4, 2)), np.zeros((1, 2)), 5)


def test_precision_at_k_hand_worked():
    neighbours = np.array([[0, 0, 1, 1],
                           [1, 0, 0, 0],
                           [2, 2, 2, 2]])
    queries = np.array([0, 1, 2])
    p = retrieval.precision_at_k(neighbours, queries, [1, 2, 4])
    # query 0: 1, 1, 1/2;  query 1: 1, 1/2, 1/4;  query 2: 1, 1, 1
    assert p == pytest.approx({1: 1.0, 2: (1 + 0.5 + 1) / 3, 4: (0.5 + 0.25 + 1) / 3})


def test_precision_at_k_needs_enough_neighbours():
    with pytest.raises(ValueError, match="precision@5"):
        retrieval.precision_at_k(np.zeros((2, 3), int), np.zeros(2, int), [5])


def test_chance_precision_hand_worked():
    train = np.array([0, 0, 0, 1])  # 3/4 class 0, 1/4 class 1
    query = np.array([0, 1])  # 1/2 each
    assert retrieval.chance_precision(train, query) == pytest.approx(0.75 * 0.5 + 0.25 * 0.5)


def test_pixel_features_are_block_means_of_the_centre_crop():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 256, 256, 3), dtype=np.uint8)
    feats = retrieval.pixel_features(images, 224, 32)
    crop = images[:, 16:240, 16:240].astype(np.float64)  # (256 - 224) / 2 = 16
    blocks = crop.reshape(3, 32, 7, 32, 7, 3).mean(axis=(2, 4))  # 224 / 32 = 7 pixels per block
    ref = blocks.transpose(0, 3, 1, 2).reshape(3, -1)  # channels first, like the net's input
    np.testing.assert_allclose(feats, ref, rtol=1e-5)
    assert feats.shape == (3, 3 * 32 * 32)


@pytest.mark.parametrize("bits", [13, 64, 200])
def test_hamming_knn_matches_brute_force(bits):
    rng = np.random.default_rng(bits)
    db_bits = rng.integers(0, 2, size=(120, bits)).astype(bool)
    q_bits = rng.integers(0, 2, size=(9, bits)).astype(bool)
    db_bits[57] = q_bits[4]  # an exact match must come first at distance 0
    db, q = retrieval.pack_codes(db_bits), retrieval.pack_codes(q_bits)
    ref = (q_bits[:, None, :] != db_bits[None, :, :]).sum(-1)
    np.testing.assert_array_equal(retrieval.hamming_distances(db, q), ref)
    dist, idx = retrieval.hamming_knn(db, q, 10)
    # Ties go to the lower index: a stable sort of the brute-force distances.
    ref_idx = np.argsort(ref, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(dist, np.take_along_axis(ref, ref_idx, axis=1))
    assert idx[4, 0] == 57 and dist[4, 0] == 0


def test_hamming_knn_whole_database_and_ties():
    db_bits = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    dist, idx = retrieval.hamming_knn(retrieval.pack_codes(db_bits), retrieval.pack_codes(np.zeros((1, 4), bool)), 4)
    assert idx.tolist() == [[1, 2, 3, 0]]  # 2 and 3 tie at distance 1: lower index first
    assert dist.tolist() == [[0, 1, 1, 2]]


def test_lsh_codes_follow_the_angle():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(200, 30))
    coder = retrieval.LSHCoder.fit(train, 64, seed=0)
    x = rng.normal(size=(1, 30)) + train.mean(0)
    centred = x - train.mean(0)
    same, opposite = coder.encode(np.vstack([x, train.mean(0) + 2 * centred, train.mean(0) - centred]))[[1, 2]]
    code = coder.encode(x)[0]
    assert retrieval.hamming_distances(code[None], same[None])[0, 0] == 0  # a positive multiple: same side
    assert retrieval.hamming_distances(code[None], opposite[None])[0, 0] == 64  # negated: every bit flips
    np.testing.assert_array_equal(coder.planes, retrieval.LSHCoder.fit(train, 64, seed=0).planes)


def clustered(n_per: int, classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per)
    x = np.maximum(centres[labels] + rng.normal(size=(len(labels), dim)), 0)  # ReLU-like, as fc7
    return x.astype(np.float32), labels


def test_autoencoder_is_seeded_and_its_codes_retrieve_the_class():
    x, labels = clustered(40, 5, 64, seed=4)
    a = retrieval.AutoencoderCoder.fit(x, 16, seed=7, hidden=32, epochs=15)
    b = retrieval.AutoencoderCoder.fit(x, 16, seed=7, hidden=32, epochs=15)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)  # bit-identical rerun on the CPU
    codes = a.encode(x)
    assert codes.shape == (200, 2) and codes.dtype == np.uint8
    _, idx = retrieval.hamming_knn(codes, codes, 6)
    p = retrieval.precision_at_k(labels[idx[:, 1:]], labels, [5])[5]  # skip the query itself
    assert p > 0.9  # five well-separated clusters: chance would be 0.2
    assert np.isfinite(a.final_loss) and a.final_loss < 1.0


def test_kernel_grid_scales_each_kernel_and_places_it():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(5, 3, 4, 4))
    w[2] *= 100  # a large kernel must not wash out the others: each is scaled on its own
    grid = kernel_grid(w, columns=3, gap=1)
    assert grid.shape == (2 * 5 - 1, 3 * 5 - 1, 3)
    for i in range(5):
        r, c = divmod(i, 3)
        patch = grid[r * 5:r * 5 + 4, c * 5:c * 5 + 4]
        ref = (w[i] - w[i].min()) / (w[i].max() - w[i].min())
        np.testing.assert_allclose(patch, ref.transpose(1, 2, 0))
    assert (grid[4, :, :] == 1).all()  # the gap row between the two rows is white
    assert (grid[5:9, 10:14] == 1).all()  # the empty sixth slot stays white


class FakeSplit:
    """An alexnet.data.input.loader.StoreView (what the analysis reads through the loader) over an in-memory array."""

    format = "npy"

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self._images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self._images)

    def images(self, indices) -> np.ndarray:
        return self._images[np.asarray(indices, dtype=np.int64)]


def coloured_images(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """One dominant colour per class plus noise: pixel space alone separates them a little."""
    rng = np.random.default_rng(seed)
    palette = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])
    x = palette[labels][:, None, None, :] + rng.normal(0, 60, size=(len(labels), size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from alexnet.analysis.analyze import FIGURES, Inputs, run_analysis
    from alexnet.config import AnalyzeConfig, ModelConfig
    from alexnet.model.net import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.05, groups=2), num_classes=3).eval()
    train_labels, eval_labels = np.repeat(np.arange(3), 12), np.repeat(np.arange(3), 5)
    probs = np.random.default_rng(1).dirichlet(np.ones(3), size=len(eval_labels)).astype(np.float32)
    inputs = Inputs(model=model, train=FakeSplit(coloured_images(train_labels, 232, 2), train_labels),
                    evaluation=FakeSplit(coloured_images(eval_labels, 232, 3), eval_labels),
                    class_names=["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark"],
                    mean=np.full(3, 120.0, np.float32), probs=probs)
    cfg = AnalyzeConfig(train_subset=30, queries=2, neighbours=3, top5_images=3, precision_k=[1, 5],
                        code_bits=16, tsne_points=12, seed=0)
    outs = []
    for run in range(2):
        out = tmp_path_factory.mktemp(f"figures{run}")
        outs.append((out, run_analysis(inputs, cfg, out)))
    return FIGURES, outs, cfg


def test_run_analysis_writes_every_figure_and_sane_metrics(small_run):
    figures, ((out, m), _), cfg = small_run
    for name in figures.values():
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
    assert m["train_images"] == 30 and m["query_images"] == 15
    assert m["pixel_dim"] == 3 * 32 * 32 and m["code_bits"] == 16 and m["code_bytes_per_image"] == 2
    for method in ("fc7", "pixel", "autoencoder", "lsh"):
        for k in cfg.precision_k:
            assert 0.0 <= m[f"{method}_precision_at_{k}"] <= 1.0
    # Equal class counts: a random neighbour shares the class 1/3 of the time.
    assert m["chance_precision"] == pytest.approx(1 / 3, abs=0.02)
    # Perplexity clamped to (points - 1) / 3 for sklearn's t-SNE on 12 points.
    assert m["tsne_points"] == 12 and m["tsne_perplexity"] == pytest.approx(11 / 3)


def test_run_analysis_is_reproducible(small_run):
    _, ((out_a, a), (out_b, b)), _ = small_run
    timing = {k for k in a if k.endswith(("_query_ms", "_speedup"))}
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    for name in sorted(p.name for p in out_a.iterdir()):
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes(), name


def write_prepared(root, train: np.ndarray, train_labels: np.ndarray, val: np.ndarray, val_labels: np.ndarray,
                   names: list[str]) -> None:
    """A prepared store in the layout of docs/architecture.md, one shard per split."""
    import json

    (root / "shards").mkdir(parents=True)
    rows = ["split,shard,offset,label,wnid,source"]
    for split, images, labels in (("train", train, train_labels), ("val", val, val_labels)):
        np.save(root / "shards" / f"{split}-00000.npy", images)
        rows += [f"{split},0,{i},{c},n{c:08d},{split}_{i}.JPEG" for i, c in enumerate(labels)]
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    (root / "classes.csv").write_text("label,wnid,name\n" + "".join(
        f'{i},n{i:08d},"{n}"\n' for i, n in enumerate(names)))
    (root / "meta.json").write_text(json.dumps({"size": train.shape[1], "source": "tiny", "eval_split": "val",
                                                "splits": {"train": len(train), "val": len(val)},
                                                "num_classes": len(names)}))


@pytest.mark.slow  # a subprocess that imports torch
def test_analyze_stage_end_to_end(tmp_path):
    """stages/analyze.py over files as the earlier stages write them: store, stats, model, probs."""
    import json

    from alexnet.analysis.analyze import analyze
    from alexnet.config import ModelConfig, load_params
    from alexnet.data.stats import compute_stats, save_stats
    from alexnet.data.store import PreparedStore
    from alexnet.errors import PipelineError
    from alexnet.model.net import build_model, save_trained

    train_labels, val_labels = np.repeat(np.arange(3), 8), np.repeat(np.arange(3), 4)
    write_prepared(tmp_path / "prepared", coloured_images(train_labels, 228, 4), train_labels,
                   coloured_images(val_labels, 228, 5), val_labels, ["tench, Tinca tinca", "goldfish", "hen"])
    save_stats(compute_stats(PreparedStore(tmp_path / "prepared"), progress=False), tmp_path / "stats")
    cfg = ModelConfig(width=0.05)
    torch.manual_seed(0)
    save_trained(tmp_path / "models" / "seed7" / "model.pt", build_model(cfg, 3), cfg, 3, {})
    (tmp_path / "eval").mkdir()
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=len(val_labels)).astype(np.float16)
    np.save(tmp_path / "eval" / "probs-seed7-center.npy", probs)
    (tmp_path / "params.yaml").write_text(
        "model: {width: 0.05}\ntrain: {seeds: [7]}\nprepare: {image_side: 228}\n"
        "analyze: {queries: 2, neighbours: 3, top5_images: 2, precision_k: [1, 3], code_bits: 8, tsne_points: 10}\n")
    done = run_stage("analyze", "--params", "params.yaml", "--prepared", "prepared", "--stats", "stats",
                     "--models", "models", "--eval", "eval", "--out", "figures", "--metrics", "metrics/analyze.json",
                     "--record", "records/analyze.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # metrics: the retrieval precisions first (fc7 first), then what a rerun reproduces; the query
    # timings (which vary) only in the run record
    m = json.loads((tmp_path / "metrics" / "analyze.json").read_text())
    precisions = [f"{method}_precision_at_{k}" for method in ("fc7", "pixel", "autoencoder", "lsh") for k in (1, 3)]
    assert list(m)[:len(precisions)] == precisions
    assert all(isinstance(m[k], float) and 0 <= m[k] <= 1 for k in precisions)
    assert m["model_seed"] == 7 and m["train_images"] == 24 and m["query_images"] == 12 and "chance_precision" in m
    r = json.loads((tmp_path / "records" / "analyze.json").read_text())
    assert {"fc7_query_ms", "lsh_speedup"} <= set(r) and not any(k.endswith(("_ms", "_speedup")) for k in m)
    assert r["numerics"]["threads"] >= 1 and r["seconds"] > 0
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(FIGURES_NAMES)
    # The evaluate stage's probabilities for a different number of images: a clear error, and
    # neither metrics nor figures touched.
    np.save(tmp_path / "eval" / "probs-seed7-center.npy", probs[:5])
    (tmp_path / "metrics" / "analyze.json").unlink()
    with pytest.raises(PipelineError, match="hold 5 images, the prepared 12; rerun the evaluate stage"):
        analyze(tmp_path / "prepared", tmp_path / "stats", tmp_path / "models", tmp_path / "eval",
                tmp_path / "figures", tmp_path / "metrics" / "analyze.json", load_params(tmp_path / "params.yaml"))
    assert not (tmp_path / "metrics" / "analyze.json").exists()
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(FIGURES_NAMES)

FIGURES_NAMES = ["fig3_conv1_kernels.png", "fig4_top5.png", "fig4_neighbours.png", "tsne_fc7.png", "figures.json"]


def test_neighbour_figure_shows_the_pictures_it_measured(tmp_path, monkeypatch):
    """Figure 4 right maps fc7 neighbour positions (within the training *subset*) back to store
    rows. From the pictures the figure is handed, recompute their fc7 features and distances by
    hand: a wrong mapping shows other pictures than the ones measured, and the distances disagree."""
    import alexnet.analysis.analyze as A
    from alexnet.config import AnalyzeConfig, ModelConfig
    from alexnet.model.net import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.05, groups=2), num_classes=3).eval()
    train_labels, eval_labels = np.repeat(np.arange(3), 12), np.repeat(np.arange(3), 5)
    train_images = coloured_images(train_labels, 232, 2)
    inputs = A.Inputs(model=model, train=FakeSplit(train_images, train_labels),
                      evaluation=FakeSplit(coloured_images(eval_labels, 232, 3), eval_labels),
                      class_names=["a", "b", "c"], mean=np.full(3, 120.0, np.float32),
                      probs=np.full((15, 3), 1 / 3, np.float32))
    seen = {}

    def capture(query_images, query_labels, neighbour_images, neighbour_labels, distances, names, path):
        seen.update(q=query_images, nb=neighbour_images, nb_labels=neighbour_labels, d=distances)
    monkeypatch.setattr(A, "plot_neighbours", capture)
    cfg = AnalyzeConfig(train_subset=20, queries=15, neighbours=3, top5_images=3, precision_k=[1],
                        code_bits=16, tsne_points=12, seed=0)
    A.run_analysis(inputs, cfg, tmp_path / "figures")

    def fc7(crops: np.ndarray) -> np.ndarray:  # centre-cropped uint8 pictures minus the channel mean
        x = torch.from_numpy(np.ascontiguousarray(crops.astype(np.float32) - 120.0)).permute(0, 3, 1, 2)
        with torch.no_grad():
            return model.fc7_features(x.contiguous()).numpy()

    q, k = seen["nb_labels"].shape
    assert (q, k) == (15, 3)
    query_f = fc7(seen["q"])
    nb_f = fc7(seen["nb"].reshape(q * k, *seen["nb"].shape[2:])).reshape(q, k, -1)
    want = np.linalg.norm(nb_f - query_f[:, None, :], axis=-1)
    np.testing.assert_allclose(seen["d"], want, rtol=1e-3, atol=1e-3)
    # and each neighbour's label is the class of the store row that holds that picture
    crops = train_images[:, 4:228, 4:228]  # (232 - 224) // 2 = 4
    for i in range(q):
        for j in range(k):
            rows = [r for r in range(len(crops)) if np.array_equal(crops[r], seen["nb"][i, j])]
            assert len(rows) == 1 and train_labels[rows[0]] == seen["nb_labels"][i, j]
