"""The analysis stage: the paper's qualitative figures and the numbers behind them (Section 6.1).

Owns what `stages/analyze.py` produces from the first seed's trained net:
    Figure 3          conv1 kernels as a grid of colour patches, the two groups (GPUs) apart;
    Figure 4 left     top-5 predictions with probabilities for a seeded set of evaluation images;
    Figure 4 right    for a few evaluation images, the nearest training images in fc7 space;
    retrieval         precision@k by class of fc7 search against a pixel-space baseline, and of
                      short binary codes (auto-encoder, LSH) searched by Hamming distance, with
                      query times (the maths is in `alexnet.analysis.retrieval`);
    t-SNE             fc7 features of evaluation images in 2-D, coloured by class.
Figures are PNG files in one folder; the numbers are one flat JSON of metrics.
"""

from __future__ import annotations

import math
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure  # files only: no pyplot, no backend switch
from sklearn.manifold import TSNE
from tqdm import tqdm

from alexnet.analysis import retrieval
from alexnet.config import AnalyzeConfig, Params
from alexnet.data.input import pixels
from alexnet.data.input.loader import BatchLoader
from alexnet.errors import PipelineError
from alexnet.fileio import atomic_dir, write_json
from alexnet.model import netstore
from alexnet.pipeline.layout import FIGURES_LIST, seed_name
from alexnet.pipeline.records import write_record
from alexnet.runtime import backend as runtime

# File names in the figures folder; the report refers to them by these names.
FIGURES = {
    "kernels": "fig3_conv1_kernels.png",
    "top5": "fig4_top5.png",
    "neighbours": "fig4_neighbours.png",
    "tsne": "tsne_fc7.png",
}
BATCH_SIZE = 128  # images per forward pass when extracting fc7 features


@dataclass
class Inputs:
    """What the analysis reads, already loaded (the stage builds it from paths)."""

    model: torch.nn.Module
    train: Any  # alexnet.data.store.SplitView of the training split
    evaluation: Any  # SplitView of the evaluation split
    class_names: list[str]
    mean: np.ndarray | None  # subtracted from each pixel before the net (augment.mean)
    probs: np.ndarray  # [eval images, classes] softmax of the net's centre crop (from evaluate)


def short_name(name: str, width: int = 18) -> str:
    """First synonym of a WordNet class name ('tench, Tinca tinca' -> 'tench'), shortened."""
    first = name.split(",")[0].strip()
    return first if len(first) <= width else first[: width - 1] + "…"


@torch.no_grad()
def extract(model: torch.nn.Module, split: Any, indices: np.ndarray, mean: np.ndarray | None,
            desc: str) -> tuple[np.ndarray, np.ndarray]:
    """(fc7 features float32 [n, d], pixel-baseline features float32 [n, 3072]) for `indices`."""
    device = next(model.parameters()).device
    size = pixels.input_size_of(model)
    feats, pixel_feats = [], []
    # The stored images through the one loader training and evaluation use (rows in `indices`'
    # order, uint8, JPEGs decoded on the CPU); centring stays on the CPU, as the features were made.
    loader = BatchLoader(split, BATCH_SIZE, input_size=size, stats=None, augment=None, device="cpu", seed=0,
                         shuffle=False, drop_last=False, mean="none", decode="cpu", output="uint8",
                         indices=np.asarray(indices, dtype=np.int64))
    with tqdm(total=len(indices), desc=desc, unit="img") as bar:
        for batch, _ in loader.epoch(0):
            images = batch.numpy()
            x = pixels.center_input(images, size, mean, model.input_normalization).to(device)
            feats.append(model.fc7_features(x).float().cpu().numpy())
            pixel_feats.append(retrieval.pixel_features(images, size))
            bar.update(len(images))
    return np.concatenate(feats), np.concatenate(pixel_feats)


def retrieval_metrics(train_fc7: np.ndarray, query_fc7: np.ndarray, train_pixels: np.ndarray,
                      query_pixels: np.ndarray, train_labels: np.ndarray, query_labels: np.ndarray,
                      cfg: AnalyzeConfig) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Precision@k and query time of every search method; also fc7 neighbours (idx, dist)."""
    ks = sorted(set(cfg.precision_k))
    k_max = max(max(ks), cfg.neighbours)
    if k_max > len(train_fc7):
        raise PipelineError(f"analyze: {k_max} neighbours asked for (precision_k, neighbours) but only "
                            f"{len(train_fc7)} training images are indexed (analyze.train_subset)")
    m: dict[str, float] = {}
    m["chance_precision"] = retrieval.chance_precision(train_labels, query_labels)

    fc7_dist, fc7_idx = retrieval.euclidean_knn(train_fc7, query_fc7, k_max)
    _, pix_idx = retrieval.euclidean_knn(train_pixels, query_pixels, k_max)
    for name, idx in (("fc7", fc7_idx), ("pixel", pix_idx)):
        for k, p in retrieval.precision_at_k(train_labels[idx], query_labels, ks).items():
            m[f"{name}_precision_at_{k}"] = p

    coders = {
        "autoencoder": retrieval.AutoencoderCoder.fit(
            train_fc7, cfg.code_bits, cfg.seed,
            progress=lambda it: tqdm(it, desc="auto-encoder", unit="epoch")),
        "lsh": retrieval.LSHCoder.fit(train_fc7, cfg.code_bits, cfg.seed),
    }
    m["autoencoder_loss"] = coders["autoencoder"].final_loss
    n_queries = len(query_fc7)
    m["fc7_query_ms"] = 1e3 * retrieval.median_seconds(
        lambda: retrieval.euclidean_knn(train_fc7, query_fc7, k_max)) / n_queries
    for name, coder in coders.items():
        db, q = coder.encode(train_fc7), coder.encode(query_fc7)
        _, idx = retrieval.hamming_knn(db, q, k_max)
        for k, p in retrieval.precision_at_k(train_labels[idx], query_labels, ks).items():
            m[f"{name}_precision_at_{k}"] = p
        m[f"{name}_query_ms"] = 1e3 * retrieval.median_seconds(lambda: retrieval.hamming_knn(db, q, k_max)) / n_queries
        m[f"{name}_speedup"] = m["fc7_query_ms"] / m[f"{name}_query_ms"]
    m["fc7_bytes_per_image"] = int(train_fc7.shape[1] * 4)  # float32
    m["code_bytes_per_image"] = int(math.ceil(cfg.code_bits / 8))
    return m, fc7_idx, fc7_dist


# --- figures --------------------------------------------------------------------------------

def kernel_grid(weight: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """conv1 weights [K, 3, h, w] as one RGB image of K patches, each min-max scaled to [0, 1].

    Patches fill rows left to right; `gap` white pixels separate them (Figure 3).
    """
    k, _, h, w = weight.shape
    lo = weight.reshape(k, -1).min(axis=1)[:, None, None, None]
    hi = weight.reshape(k, -1).max(axis=1)[:, None, None, None]
    scaled = (weight - lo) / np.where(hi > lo, hi - lo, 1.0)
    rows = math.ceil(k / columns)
    grid = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, 3))
    for i in range(k):
        r, c = divmod(i, columns)
        grid[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = scaled[i].transpose(1, 2, 0)
    return grid


def plot_kernels(model: torch.nn.Module, path: Path) -> None:
    """Figure 3: the first group's kernels (GPU 1), then the second's, each block apart."""
    weight = model.conv1.weight.detach().float().cpu().numpy()
    groups = getattr(model.cfg, "groups", 1) if model.input_normalization == "paper" else 1
    blocks = np.split(weight, groups) if len(weight) % groups == 0 else [weight]
    columns = min(16, len(blocks[0]))
    fig = Figure(figsize=(0.55 * columns + 0.6, 0.6 + len(blocks) * 0.6 * math.ceil(len(blocks[0]) / columns)
                          + 0.4 * len(blocks)))
    axes = fig.subplots(len(blocks), 1, squeeze=False)
    for g, (ax, block) in enumerate(zip(axes[:, 0], blocks)):
        ax.imshow(kernel_grid(block, columns), interpolation="nearest")
        ax.set_axis_off()
        label = f"group {g + 1} (GPU {g + 1}): {len(block)} kernels" if len(blocks) > 1 else f"{len(block)} kernels"
        ax.set_title(label, fontsize=9)
    k, c, h, w = weight.shape
    fig.suptitle(f"Figure 3: conv1 kernels ({k} of {h}x{w}x{c}, each min-max scaled)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_top5(images: np.ndarray, probs: np.ndarray, labels: np.ndarray, names: list[str], path: Path) -> None:
    """Figure 4 left: each image with its true class and a bar chart of the net's top 5."""
    n = len(images)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.1 * cols, 3.9 * rows))
    spec = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 1.6] * rows, hspace=0.3, wspace=0.9)
    for i in range(n):
        r, c = divmod(i, cols)
        ax = fig.add_subplot(spec[2 * r, c])
        ax.imshow(images[i])
        ax.set_axis_off()
        ax.set_title(textwrap.shorten(names[labels[i]].split(",")[0], 24), fontsize=9)
        top = np.argsort(-probs[i], kind="stable")[:5]  # fewer when there are fewer classes
        bx = fig.add_subplot(spec[2 * r + 1, c])
        colours = ["tab:green" if t == labels[i] else "tab:blue" for t in top]
        bx.barh(range(len(top)), probs[i][top], color=colours)
        bx.set_yticks(range(len(top)), [short_name(names[t]) for t in top], fontsize=7)
        bx.invert_yaxis()
        bx.set_xlim(0, 1)
        bx.tick_params(axis="x", labelsize=7)
    fig.suptitle("Figure 4 (left): top-5 predictions, centre crop (true class in green)", fontsize=11)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def plot_neighbours(query_images: np.ndarray, query_labels: np.ndarray, neighbour_images: np.ndarray,
                    neighbour_labels: np.ndarray, distances: np.ndarray, names: list[str], path: Path) -> None:
    """Figure 4 right: one row per query, then its nearest training images in fc7 space."""
    q, k = neighbour_labels.shape
    fig = Figure(figsize=(1.45 * (k + 1), 1.7 * q))
    axes = fig.subplots(q, k + 1, squeeze=False)
    for i in range(q):
        axes[i, 0].imshow(query_images[i])
        axes[i, 0].set_title(f"query: {short_name(names[query_labels[i]], 16)}", fontsize=7, fontweight="bold")
        for j in range(k):
            ax = axes[i, j + 1]
            ax.imshow(neighbour_images[i, j])
            same = neighbour_labels[i, j] == query_labels[i]
            ax.set_title(f"{short_name(names[neighbour_labels[i, j]], 16)}\nd={distances[i, j]:.3g}",
                         fontsize=6, color="tab:green" if same else "tab:red")
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:green" if same else "tab:red")
                spine.set_linewidth(2)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Figure 4 (right): nearest training images by Euclidean fc7 distance "
                 "(green: same class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def tsne_embed(features: np.ndarray, perplexity: float, seed: int) -> tuple[np.ndarray, TSNE]:
    """The t-SNE map of `features` in 2-D (float64, PCA init, sklearn's automatic rate), and the fit."""
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    return tsne.fit_transform(np.asarray(features, np.float64)), tsne


def plot_tsne(points: np.ndarray, labels: np.ndarray, names: list[str], title: str, path: Path) -> None:
    """2-D embedding coloured by class; a legend when there are few enough classes to read it."""
    classes = np.unique(labels)
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo"]
    fig = Figure(figsize=(7.5, 6))
    ax = fig.subplots()
    for i, c in enumerate(classes):
        sel = labels == c
        colour = cmap(i if len(classes) <= 20 else i / max(1, len(classes) - 1))
        ax.scatter(points[sel, 0], points[sel, 1], s=10, color=colour, label=short_name(names[c]))
    if len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --- the stage ------------------------------------------------------------------------------

def run_analysis(inputs: Inputs, cfg: AnalyzeConfig, out_dir: str | Path) -> dict[str, float]:
    """Compute every figure (into `out_dir`, replaced atomically) and return the metrics."""
    train, evaluation, names = inputs.train, inputs.evaluation, inputs.class_names
    n_train, n_eval = len(train), len(evaluation)
    if len(inputs.probs) != n_eval:
        raise PipelineError(f"analyze: the evaluation probabilities hold {len(inputs.probs)} images, "
                            f"the prepared {n_eval}; rerun the evaluate stage")
    # One independent stream per use, so changing one count never reshuffles another's choice.
    subset_rng, top5_rng, query_rng, tsne_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4))
    if cfg.train_subset and cfg.train_subset < n_train:
        train_idx = np.sort(subset_rng.choice(n_train, cfg.train_subset, replace=False))
    else:
        train_idx = np.arange(n_train)
    eval_idx = np.arange(n_eval)

    train_fc7, train_pix = extract(inputs.model, train, train_idx, inputs.mean, "fc7 train")
    eval_fc7, eval_pix = extract(inputs.model, evaluation, eval_idx, inputs.mean, "fc7 eval")
    train_labels = np.asarray(train.labels)[train_idx]
    eval_labels = np.asarray(evaluation.labels)

    metrics: dict[str, float] = {
        "train_images": int(len(train_idx)),
        "query_images": int(n_eval),
        "fc7_dim": int(train_fc7.shape[1]),
        "pixel_dim": int(train_pix.shape[1]),
        "pixel_size": retrieval.PIXEL_SIZE,
        "code_bits": cfg.code_bits,
    }
    found, fc7_idx, fc7_dist = retrieval_metrics(train_fc7, eval_fc7, train_pix, eval_pix,
                                                 train_labels, eval_labels, cfg)
    metrics.update(found)

    # t-SNE of held-out images, so the clusters are not memorised training images.
    tsne_idx = np.sort(tsne_rng.choice(n_eval, min(cfg.tsne_points, n_eval), replace=False))
    # sklearn needs perplexity < points; a small set gets (points - 1) / 3 instead.
    perplexity = min(cfg.tsne_perplexity, (len(tsne_idx) - 1) / 3)
    embedded, tsne = tsne_embed(eval_fc7[tsne_idx], perplexity, cfg.seed)
    metrics["tsne_points"] = int(len(tsne_idx))
    metrics["tsne_perplexity"] = float(perplexity)
    metrics["tsne_kl_divergence"] = float(tsne.kl_divergence_)

    top5_idx = np.sort(top5_rng.choice(n_eval, min(cfg.top5_images, n_eval), replace=False))
    query_idx = np.sort(query_rng.choice(n_eval, min(cfg.queries, n_eval), replace=False))
    probs = np.asarray(inputs.probs, dtype=np.float32)
    top5_hits = (np.argsort(-probs, axis=1, kind="stable")[:, :5] == eval_labels[:, None]).any(axis=1)
    metrics["top5_figure_hits"] = int(top5_hits[top5_idx].sum())

    size = pixels.input_size_of(inputs.model)

    def crop(images: np.ndarray) -> np.ndarray:
        return pixels.center_crop(images, size)

    with atomic_dir(out_dir) as tmp:
        write_json(tmp / FIGURES_LIST, FIGURES)  # what the report shows, read by name (no import of this module)
        plot_kernels(inputs.model, tmp / FIGURES["kernels"])
        plot_top5(crop(evaluation.images(top5_idx)), probs[top5_idx], eval_labels[top5_idx], names,
                  tmp / FIGURES["top5"])
        nb = fc7_idx[query_idx, :cfg.neighbours]
        nb_images = train.images(train_idx[nb.ravel()])
        nb_images = nb_images.reshape(*nb.shape, *nb_images.shape[1:])
        plot_neighbours(crop(evaluation.images(query_idx)), eval_labels[query_idx], crop(nb_images),
                        train_labels[nb], fc7_dist[query_idx, :cfg.neighbours], names, tmp / FIGURES["neighbours"])
        plot_tsne(embedded, eval_labels[tsne_idx], names,
                  f"t-SNE of fc7 features, {len(tsne_idx)} evaluation images (perplexity {perplexity:.3g})",
                  tmp / FIGURES["tsne"])
    return metrics


RETRIEVAL_METHODS = ("fc7", "pixel", "autoencoder", "lsh")  # the metrics file's order: fc7 first


def is_timing(key: str) -> bool:
    """Query times and the speed-ups computed from them: they vary between runs of the same inputs."""
    return key.endswith(("_query_ms", "_speedup"))


def split_metrics(found: dict, precision_k: list[int]) -> tuple[dict[str, Any], dict]:
    """(metrics, timings): the retrieval precisions, fc7 first, then every other number a rerun
    reproduces (counts, sizes, t-SNE's KL divergence, the auto-encoder's loss; metrics/analyze.json,
    what `dvc metrics diff` compares and the report reads), and the query timings (the run record)."""
    keys = [f"{m}_precision_at_{k}" for m in RETRIEVAL_METHODS for k in sorted(precision_k)]
    headline = {k: round(float(found[k]), 6) for k in keys if k in found}
    rest = {k: v for k, v in found.items() if k not in headline and not is_timing(k)}
    return headline | rest, {k: v for k, v in found.items() if is_timing(k)}


def analyze(prepared_dir: str | Path, stats_dir: str | Path, models_dir: str | Path, eval_dir: str | Path,
            out_dir: str | Path, metrics_path: str | Path, params: Params,
            record_path: str | Path | None = None) -> dict[str, float]:
    """The `analyze` stage: load the first seed's net and the data, run, write the figures, the
    retrieval precisions and the other reproducible numbers (`metrics_path`) and the query timings
    (`record_path`); returns all."""
    from alexnet.data.stats import load_stats
    from alexnet.data.store import PreparedStore
    from alexnet.evaluation.predictions import load_probs, probs_path
    from alexnet.model.net import load_trained

    start = time.perf_counter()
    runtime.configure(params.numerics, params.train.deterministic)
    seed = params.train.seeds[0]
    device = runtime.choose_device(params.train.device, "train.device")
    model, _ = load_trained(netstore.net_dir(models_dir, seed) / netstore.MODEL, map_location=device)
    store = PreparedStore(prepared_dir)
    mean = pixels.stats_mean(params.augment.mean, load_stats(stats_dir))
    # Figure 4 left uses the evaluate stage's saved centre-crop softmax: the numbers of Table 2.
    probs = load_probs(probs_path(eval_dir, seed_name(seed), "center"))
    inputs = Inputs(model=model, train=store.split("train"), evaluation=store.split(store.eval_split),
                    class_names=[str(n) for n in store.classes["name"]], mean=mean,
                    probs=probs)
    metrics = {"model_seed": seed, **run_analysis(inputs, params.analyze, out_dir)}
    results, timings = split_metrics(metrics, params.analyze.precision_k)
    write_json(metrics_path, results)
    if record_path is not None:
        write_record(record_path, timings, seconds=time.perf_counter() - start,
                     numerics=runtime.numerics_record(params.numerics))
    return metrics
