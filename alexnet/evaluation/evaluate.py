"""Testing: top-1/top-5 error with the centre crop and the paper's ten crops, single nets and ensembles.

Owns stage `evaluate` (`evaluate`), running a net on the ten crops (`predict`; their geometry is
alexnet.data.input.pixels'); it saves each net's probabilities (alexnet.evaluation.predictions), so that the results
and analysis stages never rerun a net. The ablation arms run up to this stage, so it also scores
the first net on training images and measures its conv1 columns (`run_measures`): what the arms
are judged on besides the error.

Paper, Section 4.1: "At test time, the network makes a prediction by extracting five 224x224
patches (the four corner patches and the center patch) as well as their horizontal reflections
(hence ten patches in all), and averaging the predictions made by the network's softmax layer on
the ten patches." Section 6: the "5 CNNs" row averages the predictions of five nets. Both averages
are of softmax probabilities, not of logits. Errors are counted by alexnet.evaluation.metrics (ties count
against the net).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from alexnet.config import Params
from alexnet.data.input import pixels
from alexnet.data.input.loader import BatchLoader
from alexnet.errors import PipelineError
from alexnet.evaluation.kernels import column_colour
from alexnet.evaluation.metrics import KINDS, SCHEMES, TOP_K, error_rates
from alexnet.evaluation.predictions import average_probs, ensemble_metrics, headline_metrics, load_probs, probs_path
from alexnet.fileio import atomic_dir, write_json
from alexnet.model import netstore
from alexnet.pipeline.layout import seed_name
from alexnet.pipeline.records import write_record
from alexnet.runtime import backend as runtime

# --------------------------------------------------------------------------------------------
# Running a net


@torch.inference_mode()
def predict(model: torch.nn.Module, images_u8: np.ndarray | torch.Tensor, crop: int,
            mean: np.ndarray | None, normalization: str = "paper",
            device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Softmax probabilities of one batch of prepared images [n, S, S, 3] uint8, float32 on the CPU:
    `{"center": [n, C], "ten_crop": [n, C]}`.

    All ten patches go through the net in one batch of 10n; ten_crop averages their softmax
    outputs, centre is the unflipped centre patch among them (the same patch either way).
    """
    device = torch.device(device)
    images = torch.as_tensor(np.asarray(images_u8) if not isinstance(images_u8, torch.Tensor) else images_u8)
    images = images.to(device, non_blocking=True)
    n = images.shape[0]
    x = pixels.ten_crop_input(images, crop, mean, normalization)
    logits = model(x).float().view(10, n, -1)
    probs = torch.softmax(logits, dim=2)
    return {"center": probs[pixels.CENTER_VIEW].cpu(), "ten_crop": probs.mean(dim=0).cpu()}


def evaluate_net(model: torch.nn.Module, split, crop: int, mean: np.ndarray | None,
                 normalization: str, batch_size: int, device: torch.device | str = "cpu",
                 desc: str = "evaluate", indices: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Softmax probabilities of every image of a store split (or its rows `indices`, in that
    order), per scheme: `{scheme: float32 [N, C]}`.

    The images in order, `batch_size` at a time, read ahead by the training loader (its uint8
    output; JPEGs decoded on the CPU, as the store decodes them)."""
    device = torch.device(device)
    model = model.to(device).eval()
    loader = BatchLoader(split, batch_size, input_size=crop, stats=None, augment=None, device=device, seed=0,
                         shuffle=False, drop_last=False, mean="none", decode="cpu", output="uint8",
                         indices=indices)
    out: dict[str, list[np.ndarray]] = {s: [] for s in SCHEMES}
    for images, _ in tqdm(loader.epoch(0), total=len(loader), desc=desc, unit="batch"):
        p = predict(model, images, crop, mean, normalization, device)
        for s in SCHEMES:
            out[s].append(p[s].numpy())
    return {s: np.concatenate(v) for s, v in out.items()}


# --------------------------------------------------------------------------------------------
# Per-class errors and the reported scheme


def per_class_errors(probs: np.ndarray, labels: np.ndarray, classes: pd.DataFrame) -> pd.DataFrame:
    """Per-class table: label, wnid, name, images, top1_error, top5_error (empty for a class with
    no evaluation images)."""
    rows = []
    for label, wnid, name in zip(classes["label"], classes["wnid"], classes["name"]):
        mask = labels == label
        n = int(mask.sum())
        errs = error_rates(probs[mask], labels[mask]) if n else {f"top{k}_error": float("nan") for k in TOP_K}
        rows.append({"label": int(label), "wnid": wnid, "name": name, "images": n, **errs})
    return pd.DataFrame(rows, columns=["label", "wnid", "name", "images", "top1_error", "top5_error"])


def best_scheme(metrics: dict) -> tuple[str, str]:
    """(kind, scheme) with the lowest top-1 error, then top-5; ties go to ensemble and ten_crop."""
    order = [(k, s) for k in reversed(KINDS) for s in reversed(SCHEMES)]
    return min(order, key=lambda ks: (metrics[ks[0]][ks[1]]["top1_error"],
                                      metrics[ks[0]][ks[1]]["top5_error"], order.index(ks)))


# --------------------------------------------------------------------------------------------
# The stage


def _load_nets(models_dir: Path, seeds: Sequence[int], device: torch.device):
    from alexnet.model.net import load_trained

    for seed in seeds:
        path = netstore.net_dir(models_dir, seed) / netstore.MODEL
        if not path.is_file():
            raise PipelineError(f"{path} not found: train the net first (`dvc repro train@{seed}`)")
        model, info = load_trained(path, map_location=device)
        yield seed_name(seed), model, info


def _check_net(tag: str, model: torch.nn.Module, info: dict, num_classes: int, params: Params) -> None:
    """Refuse a net that cannot be scored on this store, or one trained with another mean."""
    out = getattr(model, "num_classes", num_classes)
    if out != num_classes:
        raise PipelineError(f"net {tag} predicts {out} classes, the store has {num_classes}: "
                            "it was trained on another dataset; retrain it (`dvc repro`)")
    trained_mean = (info.get("params", {}).get("augment", {}) if isinstance(info, dict) else {}).get("mean")
    if trained_mean is not None and trained_mean != params.augment.mean:
        raise PipelineError(f"net {tag} was trained subtracting augment.mean {trained_mean!r}, params.yaml now "
                            f"says {params.augment.mean!r}; evaluation must subtract what training did")


@dataclass(frozen=True)
class Member:
    """One net as scored: its tag (seed<N> or torchvision), crop and input normalisation."""

    tag: str
    input_size: int
    normalization: pixels.Normalization
    epochs: int | None


def _torchvision_nets(weights: str | Path, store, split_name: str) -> list:
    """torchvision's published weights (a local file), after checking the store can be scored by them."""
    from alexnet.model.net import load_torchvision_state_dict

    weights = Path(weights)
    image_size = int(store.meta["size"])
    if not weights.is_file():
        raise PipelineError(f"--torchvision-weights: {weights} not found (no download is ever made)")
    if image_size != pixels.TORCHVISION_RESIZE:
        raise PipelineError(f"torchvision's reference evaluation resizes to {pixels.TORCHVISION_RESIZE}; "
                            f"the store holds {image_size}x{image_size} images (set prepare.image_side: 256)")
    if store.num_classes != 1000:
        raise PipelineError(f"torchvision's weights predict the 1000 ILSVRC classes; the store has "
                            f"{store.num_classes} classes, so its labels cannot line up")
    if split_name == "test":
        # only ILSVRC-2010 has a labelled test split, and its 1000 classes are not ILSVRC-2012's
        raise PipelineError("torchvision's weights predict the ILSVRC-2012 classes; this store is "
                            "ILSVRC-2010, whose class list differs; evaluate them on ILSVRC-2012 val")
    return [("torchvision", load_torchvision_state_dict(weights, num_classes=1000), {})]


def training_rows(train_images: int, eval_images: int) -> np.ndarray:
    """The training images the first net is scored on: as many as the evaluation split holds (all,
    if fewer), evenly spaced over the store's order, so every class is in (the store is by class)."""
    n = min(train_images, eval_images)
    return np.linspace(0, train_images - 1, n).round().astype(np.int64)  # steps >= 1 apart: distinct


def run_measures(model: torch.nn.Module, store, mean: np.ndarray | None, params: Params,
                 device: torch.device, eval_images: int) -> dict[str, float]:
    """The first net's numbers the ablation arms are judged on, besides its errors (they run up to
    this stage): its centre-crop error on training images, which set beside the validation's
    is the overfitting gap, with the net as evaluated (no dropout, no augmentation) on both sides;
    and, for the paper's two-column net, conv1's colour per column (alexnet.evaluation.kernels)."""
    if "train" not in store.splits:  # a store of evaluation images only (a val-only copy): nothing to score
        return {}
    split = store.split("train")
    rows = training_rows(len(split), eval_images)
    norm, size = model.input_normalization, pixels.input_size_of(model)
    probs = evaluate_net(model, split, size, mean if norm == "paper" else None, norm, params.evaluate.batch_size,
                         device, desc="evaluate on training images", indices=rows)
    errors = error_rates(probs["center"], np.asarray(split.labels, dtype=np.int64)[rows])
    out = {f"train_center_{k}": round(v, 6) for k, v in errors.items()}
    cfg = getattr(model, "cfg", None)
    if cfg is not None and cfg.arch == "paper" and cfg.groups == 2:
        out.update(column_colour(model.conv1.weight.detach().float().cpu().numpy()))
    return out


def _score(nets: list, split, mean: np.ndarray | None, store, params: Params, device: torch.device,
           tmp: Path) -> tuple[list[Member], dict[str, float]]:
    """Each net's centre-crop and ten-crop softmax on the split, saved as float16 under `tmp`;
    every net at its own crop and normalisation (what it was trained with). Also the first net's
    run_measures."""
    members, measures = [], {}
    for tag, model, info in nets:
        _check_net(tag, model, info, store.num_classes, params)
        norm, size = model.input_normalization, pixels.input_size_of(model)
        probs = evaluate_net(model, split, size, mean if norm == "paper" else None, norm,
                             params.evaluate.batch_size, device, desc=f"evaluate {tag}")
        for s in SCHEMES:
            np.save(probs_path(tmp, tag, s), probs[s].astype(np.float16))
        if not members:
            measures = run_measures(model, store, mean, params, device, len(split))
        members.append(Member(tag, size, norm, info.get("epochs", info.get("epochs_run")) if isinstance(info, dict) else None))
        del model
    return members, measures


def evaluate(prepared_dir: str | Path, stats_dir: str | Path, models_dir: str | Path,
             out_dir: str | Path, metrics_path: str | Path, params: Params,
             record_path: str | Path | None = None, torchvision_weights: str | Path | None = None,
             descriptor_path: str | Path | None = None) -> dict:
    """Stage `evaluate`: every net of `train.seeds` (or, with `torchvision_weights`, that
    torchvision AlexNet state_dict file alone) on the store's evaluation split, centre crop and
    ten crops; writes `out_dir` (probabilities, labels, per-class table), the headline metrics
    (`metrics_path`, flat keys: headline_metrics), what was evaluated (`descriptor_path`: split,
    images, classes, nets, members, epochs, ...; read by the results and report stages) and the
    run record (`record_path`: device, numerics, time). Returns the first two as read_evaluation does."""
    start = time.perf_counter()
    from alexnet.data.store import PreparedStore

    runtime.configure(params.numerics, params.train.deterministic)
    store = PreparedStore(prepared_dir)
    split_name = store.eval_split
    split = store.split(split_name)
    if len(split) == 0:
        raise PipelineError(f"the evaluation split {split_name!r} of {prepared_dir} is empty")
    labels = np.asarray(split.labels, dtype=np.int64)
    device = runtime.choose_device(params.train.device, "train.device")
    if torchvision_weights:
        nets, mean = _torchvision_nets(torchvision_weights, store, split_name), None
        info_out = {"model": "torchvision", "torchvision_weights": str(torchvision_weights)}
    else:
        from alexnet.data.stats import load_stats

        mean = pixels.stats_mean(params.augment.mean, load_stats(stats_dir))
        nets = _load_nets(Path(models_dir), params.train.seeds, device)
        info_out = {"model": params.model.arch, "torchvision_weights": ""}

    with atomic_dir(out_dir) as tmp:
        np.save(tmp / "labels.npy", labels)
        members, measures = _score(nets, split, mean, store, params, device, tmp)
        tags = [mb.tag for mb in members]
        # Metrics from the saved (float16) files, so that anyone recomputing them from data/eval
        # with ensemble_metrics gets exactly these numbers.
        m = ensemble_metrics(tmp, tags)
        kind, scheme = best_scheme(m)
        best = average_probs([load_probs(probs_path(tmp, t, scheme)) for t in (tags[:1] if kind == "single" else tags)])
        per_class_errors(best, labels, store.classes).to_csv(tmp / "per_class.csv", index=False, float_format="%.4f")

    first = members[0]  # "single" is the first net: its crop and mean head the descriptor
    descriptor = {
        "split": split_name,
        "images": int(len(labels)),
        "nets": len(tags),
        "dataset": store.meta.get("source", ""),
        "members": tags,
        "epochs": [mb.epochs for mb in members],
        "input_size": first.input_size,
        "mean": params.augment.mean if first.normalization == "paper" else "torchvision",
        **info_out,
        "per_class_scheme": f"{kind}/{scheme}",
        "input_sizes": [mb.input_size for mb in members],  # each net's own crop
        "classes": store.num_classes,  # for the results and report stages, which never open the store
        # run_measures' training images
        "train_images_scored": min(len(store.split("train")), len(labels)) if "train" in store.splits else 0,
    }
    write_json(metrics_path, {**headline_metrics(m), **measures})
    if descriptor_path is not None:
        write_json(descriptor_path, descriptor)
    if record_path is not None:
        write_record(record_path, {"device": str(device)}, seconds=time.perf_counter() - start,
                     numerics=runtime.numerics_record(params.numerics))
    return {**descriptor, **headline_metrics(m), **measures}
