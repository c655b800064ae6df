"""Stage `cifar`: the paper's CIFAR-10 claims, Figure 1 (alexnet.claims.cifar.figure1) and the LRN claim
(alexnet.claims.cifar.lrn), on stage `cifar_download`'s store (alexnet.claims.cifar.data).

Owns metrics/cifar.json (results), records/cifar.json (timings, numerics, what ran where) and the
stage's folder (reports/cifar/: figure1.png, figure1_ratio.png, curves.csv, lrn_curves.csv and
runs.json, the per-seed numbers the claims table judges). Every net checkpoints each epoch (the
stage's --checkpoints folder), so a stage killed at any point resumes where it stopped with the
same result; a checkpoint whose settings differ is not used. Deterministic: seeded init, batch
order and crops, torch.use_deterministic_algorithms(True).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from alexnet.claims.cifar import figure1 as fig1
from alexnet.claims.cifar import lrn as lrn_claim
from alexnet.claims.cifar.data import open_cifar
from alexnet.claims.cifar.training import centred, prepare_inputs
from alexnet.config import CifarConfig, NumericsConfig, to_dict
from alexnet.fileio import atomic_dir, write_json
from alexnet.pipeline.layout import CIFAR_CURVES, CIFAR_FIGURE, CIFAR_LRN_CURVES, CIFAR_RATIO_FIGURE, CIFAR_RUNS
from alexnet.pipeline.records import write_record
from alexnet.runtime import backend as runtime
from alexnet.training import state

# The code that makes the numbers, hashed when it is imported (airbench style: the run record
# names the code that ran, even when the files change while a long run goes on); every net's
# checkpoint is resumed only by the same code.
CODE_SHA256 = state.code_fingerprint(__file__)


def runs_record(manifest: dict, figure1: dict[str, Any], lrn: dict[str, Any]) -> dict[str, Any]:
    """reports/cifar/runs.json: the per-seed numbers the claims table judges, and what data they are."""
    return {"dataset": manifest["dataset"], "source": manifest["source"], "copy": manifest["copy"],
            "official_pixels": manifest["official_pixels"], "train_images": manifest["train_images"],
            "test_images": manifest["test_images"], "figure1": figure1, "lrn": lrn}


def metrics_of(runs: dict[str, Any]) -> dict[str, Any]:
    """metrics/cifar.json: flat means over the seeds, per Figure 1 arm, then the LRN claim's."""
    out: dict[str, Any] = {}
    for arm in runs["figure1"]["arms"]:
        out.update(fig1.arm_metrics(arm))
    return {**out, **lrn_claim.lrn_metrics(runs["lrn"])}


def cifar(cfg: CifarConfig, data_dir: str | Path, out_dir: str | Path, metrics_path: str | Path,
          run_record: str | Path, checkpoints: str | Path | None = None,
          numerics: NumericsConfig = NumericsConfig()) -> dict[str, Any]:
    """Stage `cifar`: Figure 1 (grid, then seeds, per arm), the LRN nets, their outputs; returns the metrics."""
    start = time.perf_counter()
    runtime.configure(numerics, deterministic=True)
    data, manifest = open_cifar(data_dir)
    device = runtime.choose_device(cfg.device, "cifar.device")
    inputs = prepare_inputs(data, device, cfg.channels_last)
    ckpt_dir = Path(checkpoints) if checkpoints else None
    # what every net's checkpoint must match besides its own settings: the data, numerics and code
    made_with = {"data": manifest["md5"], "numerics": to_dict(numerics), "code": CODE_SHA256}
    arms = fig1.figure1(centred(inputs), inputs.train_y, cfg, device, made_with, ckpt_dir)
    pairs = lrn_claim.lrn_claim(inputs, cfg, device, made_with, ckpt_dir)
    runs = runs_record(manifest, fig1.figure1_record(arms, cfg), lrn_claim.lrn_record(pairs, cfg))
    metrics = metrics_of(runs)
    dataset = "CIFAR-10" if manifest["dataset"] == "cifar10" else "the tiny set"
    with atomic_dir(out_dir) as tmp:
        fig1.plot_figure1(arms, cfg, tmp / CIFAR_FIGURE, dataset)
        fig1.plot_ratio_curve(runs["figure1"]["arms"], cfg.figure1_protocol, tmp / CIFAR_RATIO_FIGURE, dataset)
        fig1.curve_rows(arms).to_csv(tmp / CIFAR_CURVES, index=False)
        lrn_claim.lrn_rows(pairs).to_csv(tmp / CIFAR_LRN_CURVES, index=False)
        write_json(tmp / CIFAR_RUNS, runs)
    write_json(metrics_path, metrics)
    write_record(run_record, timing_record(manifest, arms, pairs, len(data.train_labels), device),
                 seconds=time.perf_counter() - start, numerics=runtime.numerics_record(numerics))
    for arm in runs["figure1"]["arms"]:
        name = fig1.arm_name(arm["rnorm"])
        print(f"Figure 1 ({cfg.figure1_protocol}, {name}): ReLU {metrics[name + '_relu_epochs_to_target']} epochs "
              f"(lr {arm['relu_lr']:g}), tanh {metrics[name + '_tanh_epochs_to_target']} epochs (lr "
              f"{arm['tanh_lr']:g}) to {cfg.target_error:g}% training error (ratio {metrics[name + '_epochs_ratio']}, "
              f"{metrics[name + '_seeds_reached']} of {len(cfg.seeds)} seeds)")
    print(f"LRN: test error 13pct net {metrics['no_lrn_test_error']}, 11pct {metrics['lrn_test_error']} "
          f"({len(cfg.lrn_seeds)} seeds, {sum(cfg.lrn_epochs)} epochs)")
    return metrics


def timing_record(manifest: dict, arms: list[dict[str, Any]], pairs: list, images: int,
                  device: torch.device) -> dict[str, Any]:
    """records/cifar.json's own fields (alexnet.pipeline.records adds the header): the data, training
    seconds summed over the nets, across resumes (checkpoints carry each net's time), and the code
    that ran."""
    nets = fig1.trained(arms)
    conv_local = [r for pair in pairs for r in pair]

    def speed(runs: list) -> dict[str, Any]:
        epochs, seconds = sum(len(r.train_error) for r in runs), sum(r.seconds for r in runs)
        return {"net_epochs": epochs, "train_seconds": round(seconds, 1),
                "images_per_second": round(epochs * images / seconds) if seconds else None}

    return {
        "dataset": manifest["dataset"], "source": manifest["source"], "copy": manifest["copy"],
        "train_images": manifest["train_images"], "test_images": manifest["test_images"],
        "device": str(device), "figure1": speed(nets), "lrn": speed(conv_local),
        # every machine a net trained on, across resumes (each net's record lists its own)
        "trained_on": sorted({where for r in nets + conv_local for where in r.trained_on}), "code_sha256": CODE_SHA256,
    }


__all__ = ["cifar", "metrics_of", "runs_record"]
