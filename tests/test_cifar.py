"""alexnet.cifar.training and alexnet.cifar.nets: the authors' CIFAR-10 nets (checked against independent
computations), the Figure 1 protocol (epochs to target, the lr choice, pruning), the views of
cuda-convnet's cropped provider, and the stage end to end: deterministic, resumable from its
checkpoints with the same result."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from alexnet.cifar import training as cifar
from alexnet.cifar.training import NetRun, best_run, crop_views, epochs_to_target, stop_reason, multiview_crops
from alexnet.cifar.data import cifar_download
from alexnet.cifar.nets import ConvLocalNet, Figure1Net, LocallyConnected2d
from alexnet.config import CifarConfig, ConfigError, params_from_dict


def test_figure1_net_is_cuda_convnets_four_layer_net():
    net = Figure1Net("relu")
    weights = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weights) == 4  # "a four-layer convolutional neural network"
    # conv 5x5: 3->32, 32->32, 32->64, then fc 64*4*4 -> 10, with biases
    expected = (5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (64 * 4 * 4 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == expected == 89_578
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    tanh = Figure1Net("tanh", width=0.5)
    assert sum(isinstance(m, torch.nn.Tanh) for m in tanh.modules()) == 3 and tanh.fc.in_features == 32 * 16


def test_conv_local_nets_follow_the_authors_configs():
    """layers-conv-local-13pct/11pct.cfg: conv 64 5x5, conv 64 5x5, local 32 3x3 (6x6 positions),
    local 32 3x3, fc 10, on 24x24 crops; the 11pct net adds two rnorm layers (no weights)."""
    by_hand = ((5 * 5 * 3 * 64 + 64) + (5 * 5 * 64 * 64 + 64) + (36 * 64 * 9 * 32 + 32) + (36 * 32 * 9 * 32 + 32)
               + (32 * 6 * 6 * 10 + 10))
    for lrn in (False, True):
        net = ConvLocalNet(lrn)
        assert sum(p.numel() for p in net.parameters()) == by_hand == 1_114_250
        assert net(torch.zeros(2, 3, 24, 24)).shape == (2, 10)
    torch.manual_seed(0)
    net = ConvLocalNet(True)
    for name, std in {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc10": 0.01}.items():
        w = getattr(net, name).weight
        assert w.std().item() == pytest.approx(std, rel=0.05) and abs(w.mean().item()) < std / 10
        assert (getattr(net, name).bias == 0).all()
    groups = net.param_groups(0.001, 0.004)
    decayed = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
    assert decayed == {id(net.local3.weight), id(net.local4.weight), id(net.fc10.weight)}
    assert {g["lr"] for g in groups if g["params"][0].ndim == 1} == {0.002}  # epsB = 2 epsW


def test_locally_connected_layer_against_a_loop():
    torch.manual_seed(1)
    layer = LocallyConnected2d(3, 4, in_size=5, kernel=3, padding=1)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 3, 5, 5)
    out = layer(x).detach().numpy()
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    w = layer.weight.detach().numpy().reshape(5, 5, 3, 3, 3, 4)  # positions (y, x), channel, ky, kx, out
    expected = np.zeros((2, 4, 5, 5))
    for y in range(5):
        for x0 in range(5):
            patch = xp[:, :, y:y + 3, x0:x0 + 3]  # [n, c, ky, kx]
            expected[:, :, y, x0] = np.einsum("ncij,cijo->no", patch, w[y, x0]) + layer.bias.detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_rnorm_is_cuda_convnets_formula():
    """cuda-convnet's crossMap rnorm: a / (1 + scale / size * sum over `size` maps of a^2)^pow."""
    net = ConvLocalNet(True)
    a = torch.rand(1, 7, 2, 2) * 50
    b = net.rnorm1(a).numpy()
    a = a.numpy()
    for c in range(7):
        window = a[:, max(0, c - 2):c + 3]
        expected = a[:, c] / (1 + 0.001 / 5 * (window ** 2).sum(axis=1)) ** 0.75
        np.testing.assert_allclose(b[:, c], expected, rtol=1e-5)


def test_epochs_to_target_by_hand():
    assert epochs_to_target([60.0, 30.0, 20.0], 25.0) == pytest.approx(2.5)  # 30 -> 20 crosses 25 halfway
    assert epochs_to_target([10.0], 25.0, chance=90.0) == pytest.approx(65 / 80, abs=1e-3)  # from chance at epoch 0
    assert epochs_to_target([50.0, 25.0], 25.0) == pytest.approx(2.0)
    assert epochs_to_target([50.0, 40.0], 25.0) is None


def run(lr, errors, stopped="", activation="relu"):
    return NetRun("figure1", activation, False, lr, 0, list(errors), [lr] * len(errors), stopped)


def test_best_run_fastest_to_target_then_lowest_error():
    runs = [run(0.01, [50, 30, 20]), run(0.1, [40, 20, 10]), run(1.0, [], "diverged")]
    assert best_run(runs, 25.0).lr == 0.1
    assert best_run([run(0.01, [80, 70]), run(0.1, [80, 60])], 25.0).lr == 0.1


def test_a_net_that_can_no_longer_win_is_pruned():
    cfg = CifarConfig(epochs=10)
    best = epochs_to_target([40.0, 20.0], 25.0)  # 1.75 epochs
    assert stop_reason(run(0.1, [40.0]), cfg, best) == ""  # one epoch: could still reach it by 1.75
    assert stop_reason(run(0.1, [40.0, 30.0]), cfg, best) == "pruned"  # two epochs, not there: > 1.75
    assert stop_reason(run(0.1, [40.0, 20.0]), cfg, best) == "target"
    assert stop_reason(run(0.1, [50.0] * 10), cfg, math.inf) == "max_epochs"


def test_crop_views_are_windows_of_the_image_or_its_mirror():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    views = crop_views(5)(x, torch.Generator().manual_seed(3))
    assert views.shape == (2, 3, 5, 5)
    for i in range(2):
        v = views[i]
        windows = [x[i][:, y:y + 5, x0:x0 + 5] for y in range(4) for x0 in range(4)]
        found = [w for w in windows if torch.equal(v, w) or torch.equal(v, w.flip(-1))]
        assert len(found) == 1
    again = crop_views(5)(x, torch.Generator().manual_seed(3))
    assert torch.equal(views, again)


def test_test_views_are_corners_centre_and_mirrors():
    x = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    views = multiview_crops(x, 24)
    assert len(views) == 10
    assert views[0][0, 0, 0, 0] == 0 and views[2][0, 0, 0, 0] == x[0, 0, 4, 4]  # top-left, centre
    assert views[4][0, 0, -1, -1] == x[0, 0, 31, 31]
    assert torch.equal(views[7], views[2].flip(-1))


def test_cifar_params_checked():
    assert params_from_dict({"cifar": {"lr_grid": [0.1]}}).cifar.lr_grid == [0.1]
    for raw, key in [({"source": "python"}, "cifar.path"), ({"source": "folder"}, "cifar.path"),
                     ({"lr_grid": []}, "cifar.lr_grid"), ({"target_error": 0}, "cifar.target_error"),
                     ({"lrn_size": 4}, "cifar.lrn_size"), ({"source": "file"}, "cifar.source"),
                     ({"seeds": []}, "cifar.seeds"), ({"seeds": [1, 1]}, "cifar.seeds"),
                     ({"lrn_epochs": [0, 0, 0]}, "cifar.lrn_epochs"), ({"lrn_epochs": [5]}, "cifar.lrn_epochs")]:
        with pytest.raises(ConfigError, match=key):
            params_from_dict({"cifar": raw})


SMALL = dict(tiny_train_per_class=6, tiny_test_per_class=3, width=0.25, epochs=3, batch_size=20,
             lr_grid=[0.03, 0.1], seeds=[0, 1], lrn_epochs=[2, 0, 0], lrn_batch_size=20, lrn_width=0.125,
             device="cpu")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cifar")
    cfg = CifarConfig(**SMALL)
    cifar_download(cfg, tmp / "raw")
    outs = [cifar.cifar(cfg, tmp / "raw", tmp / f"out{i}", tmp / f"m{i}.json", tmp / f"r{i}.json", tmp / f"ck{i}")
            for i in (1, 2)]
    return tmp, cfg, outs


def test_stage_writes_metrics_runs_figure_and_curves(small_run):
    tmp, cfg, (m, _) = small_run
    assert json.loads((tmp / "m1.json").read_text()) == m
    assert all(isinstance(v, (int, float)) or v is None for v in m.values())  # flat numbers: results only
    runs = json.loads((tmp / "out1" / cifar.RUNS).read_text())
    assert (runs["dataset"], runs["source"], runs["train_images"], runs["test_images"]) == ("tiny", "tiny", 60, 30)
    f1, lrn = runs["figure1"], runs["lrn"]
    assert [s["seed"] for s in f1["seeds"]] == [0, 1] == [s["seed"] for s in lrn["seeds"]]
    assert f1["relu_lr"] in cfg.lr_grid and f1["tanh_lr"] in cfg.lr_grid and f1["max_epochs"] == 3
    for s in f1["seeds"]:
        if s["ratio"] is not None:
            assert s["ratio"] == round(s["tanh_epochs"] / s["relu_epochs"], 4)
    for s in lrn["seeds"]:
        assert s["gain"] == round(s["without"] - s["with"], 3)
    assert (lrn["epochs"], lrn["converged"]) == (2, False)
    assert m["lrn_gain"] == round(sum(s["gain"] for s in lrn["seeds"]) / 2, 3)
    assert (tmp / "out1" / cifar.FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(tmp / "out1" / cifar.CURVES)
    # the grid (both lrs, seed 0) and the chosen lr with seed 1, per activation
    assert set(zip(curves["activation"], curves["role"], curves["seed"])) == {
        (a, r, s) for a in ("relu", "tanh") for r, s in (("grid", 0), ("seed", 1))}
    assert curves.groupby(["activation", "lr", "seed"])["epoch"].max().max() <= cfg.epochs
    lrn_curves = pd.read_csv(tmp / "out1" / cifar.LRN_CURVES)
    assert len(lrn_curves) == 2 * 2 * 2  # 13pct and 11pct, 2 seeds, 2 epochs
    record = json.loads((tmp / "r1.json").read_text())
    assert record["lrn_net_epochs"] == 8 and "code_sha256" in record and "seconds" in record


def test_stage_is_deterministic(small_run):
    tmp, _, (first, second) = small_run
    assert first == second
    for name in (cifar.RUNS, cifar.CURVES, cifar.LRN_CURVES):
        assert (tmp / "out1" / name).read_bytes() == (tmp / "out2" / name).read_bytes()


def test_a_rerun_resumes_from_checkpoints_to_the_same_result(small_run, tmp_path, monkeypatch):
    """Longer LRN training continues from the 2-epoch checkpoints and equals a run from scratch;
    a rerun with every net checkpointed trains nothing."""
    tmp, cfg, _ = small_run
    longer = CifarConfig(**{**SMALL, "lrn_epochs": [3, 0, 0]})
    resumed = cifar.cifar(longer, tmp / "raw", tmp_path / "a", tmp_path / "ma.json", tmp_path / "ra.json", tmp / "ck1")
    fresh = cifar.cifar(longer, tmp / "raw", tmp_path / "b", tmp_path / "mb.json", tmp_path / "rb.json", tmp_path / "ck")
    assert resumed == fresh
    assert (tmp_path / "a" / cifar.LRN_CURVES).read_bytes() == (tmp_path / "b" / cifar.LRN_CURVES).read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("a net was trained again although its checkpoint holds every epoch")

    monkeypatch.setattr(cifar, "train_epoch", no_training)
    again = cifar.cifar(longer, tmp / "raw", tmp_path / "c", tmp_path / "mc.json", tmp_path / "rc.json", tmp_path / "ck")
    assert again == fresh


def test_pruning_changes_no_chosen_rate(small_run):
    tmp, cfg, _ = small_run
    from alexnet.cifar.data import open_cifar

    data, manifest = open_cifar(tmp / "raw")
    inputs = cifar.prepare_inputs(data, torch.device("cpu"), cfg.channels_last)
    cfg = CifarConfig(**{**SMALL, "epochs": 6, "lr_grid": [0.01, 0.03, 0.1]})
    for activation in ("relu", "tanh"):
        chosen = []
        for prune in (True, False):
            trainers = [cifar.figure1_trainer(cfg, activation, lr, 0, torch.device("cpu"), manifest["md5"], None)
                        for lr in cfg.lr_grid]
            runs = cifar.train_lockstep(trainers, inputs, cfg, prune=prune, label="test")
            chosen.append((best_run(runs, cfg.target_error).lr,
                           epochs_to_target(best_run(runs, cfg.target_error).train_error, cfg.target_error)))
        assert chosen[0] == chosen[1]
