"""alexnet.cifar: the four-layer CIFAR-10 net, epochs to the target error, the lr choice, and the
stage end to end on a generated set (deterministic)."""

from __future__ import annotations

import json

import pytest
import torch

from alexnet import cifar
from alexnet.cifar import CifarNet, Run, best_run, epochs_to_target
from alexnet.cifar_data import cifar_download
from alexnet.config import CifarConfig, ConfigError, params_from_dict
from alexnet.model import LocalResponseNorm


def test_net_is_cuda_convnets_four_layer_net():
    net = CifarNet("relu", False, CifarConfig())
    weights = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weights) == 4  # "a four-layer convolutional neural network"
    # conv 5x5: 3->32, 32->32, 32->64, then fc 64*4*4 -> 10, with biases
    expected = (5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (64 * 4 * 4 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == expected == 89_578
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert not any(isinstance(m, torch.nn.Tanh) for m in net.modules())
    tanh = CifarNet("tanh", True, CifarConfig(width=0.5))
    assert sum(isinstance(m, torch.nn.Tanh) for m in tanh.modules()) == 3
    assert sum(isinstance(m, LocalResponseNorm) for m in tanh.modules()) == 2
    assert tanh.fc.in_features == 32 * 16


def test_epochs_to_target_by_hand():
    assert epochs_to_target([60.0, 30.0, 20.0], 25.0) == pytest.approx(2.5)  # 30 -> 20 crosses 25 halfway
    assert epochs_to_target([10.0], 25.0, chance=90.0) == pytest.approx(65 / 80, abs=1e-3)  # from chance at epoch 0
    assert epochs_to_target([50.0, 25.0], 25.0) == pytest.approx(2.0)
    assert epochs_to_target([50.0, 40.0], 25.0) is None


def test_best_run_fastest_to_target_then_lowest_error():
    runs = [Run("relu", False, 0.01, [50, 30, 20], 1.0, False), Run("relu", False, 0.1, [40, 20, 10], 1.0, False),
            Run("relu", False, 1.0, [], None, True)]
    assert best_run(runs, 25.0).lr == 0.1
    slow = [Run("tanh", False, 0.01, [80, 70], 1.0, False), Run("tanh", False, 0.1, [80, 60], 1.0, False)]
    assert best_run(slow, 25.0).lr == 0.1


def test_cifar_params_checked():
    assert params_from_dict({"cifar": {"lr_grid": [0.1]}}).cifar.lr_grid == [0.1]
    for raw, key in [({"source": "file"}, "cifar.archive"), ({"lr_grid": []}, "cifar.lr_grid"),
                     ({"target_error": 0}, "cifar.target_error"), ({"lrn_size": 4}, "cifar.lrn_size"),
                     ({"source": "http"}, "cifar.source")]:
        with pytest.raises(ConfigError, match=key):
            params_from_dict({"cifar": raw})


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cifar")
    cfg = CifarConfig(tiny_train_per_class=6, tiny_test_per_class=3, width=0.25, epochs=3, batch_size=20,
                      lr_grid=[0.03, 0.1], device="cpu")
    cifar_download(cfg, tmp / "raw")
    outs = []
    for i in (1, 2):
        m = cifar.cifar(cfg, tmp / "raw", tmp / f"out{i}", tmp / f"m{i}.json", tmp / f"r{i}.json")
        outs.append(m)
    return tmp, cfg, outs


def test_stage_writes_metrics_figure_and_curves(small_run):
    tmp, cfg, (m, _) = small_run
    saved = json.loads((tmp / "m1.json").read_text())
    assert saved == m
    for key in ("relu_lr", "tanh_lr", "relu_epochs_to_target", "tanh_epochs_to_target", "epochs_ratio",
                "no_lrn_test_error", "lrn_test_error", "lrn_gain"):
        assert key in m
    assert all(isinstance(v, (int, float)) or v is None for v in m.values())  # flat numbers: results only
    record = json.loads((tmp / "r1.json").read_text())
    assert (record["dataset"], record["train_images"], record["test_images"], record["epochs"]) == ("tiny", 60, 30, 3)
    assert m["relu_lr"] in cfg.lr_grid and m["tanh_lr"] in cfg.lr_grid
    if m["relu_epochs_to_target"] and m["tanh_epochs_to_target"]:
        assert m["epochs_ratio"] == round(m["tanh_epochs_to_target"] / m["relu_epochs_to_target"], 3)
    assert m["lrn_gain"] == round(m["no_lrn_test_error"] - m["lrn_test_error"], 3)
    png = (tmp / "out1" / cifar.FIGURE).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    curves = pd.read_csv(tmp / "out1" / cifar.CURVES)
    # 2 activations x 2 lrs + the LRN net, 3 epochs each (none diverged at these lrs)
    assert len(curves) == 5 * 3 and curves["chosen"].sum() == 3 * 3
    assert "seconds" in json.loads((tmp / "r1.json").read_text())


def test_stage_is_deterministic(small_run):
    _, _, (first, second) = small_run
    assert first == second
