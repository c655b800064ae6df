"""alexnet.claims.cifar (nets, training, figure1, lrn, run): the authors' CIFAR-10 nets (checked against
independent computations and the final cuda-convnet configs), the Figure 1 protocol (epochs to
target, the lr choice and its extension beyond an edge, pruning, centred inputs, the ratio by
level), the views of cuda-convnet's cropped provider, and the stage end to end: deterministic,
resumable from its checkpoints with the same result."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from alexnet.claims.cifar import figure1 as fig1
from alexnet.claims.cifar import run as cifar
from alexnet.claims.cifar.data import cifar_download
from alexnet.claims.cifar.figure1 import best_run, next_rate, ratio_curve, stop_reason
from alexnet.claims.cifar.lrn import crop_views, multiview_crops
from alexnet.claims.cifar.nets import ConvLocalNet, Figure1Net, LocallyConnected2d, WithinMapNorm
from alexnet.claims.cifar.training import NetRun, Trainer, epochs_to_target
from alexnet.config import CifarConfig, ConfigError, params_from_dict
from alexnet.pipeline.layout import CIFAR_CURVES as CURVES
from alexnet.pipeline.layout import CIFAR_FIGURE as FIGURE
from alexnet.pipeline.layout import CIFAR_LRN_CURVES as LRN_CURVES
from alexnet.pipeline.layout import CIFAR_RATIO_FIGURE as RATIO_FIGURE
from alexnet.pipeline.layout import CIFAR_RUNS
from alexnet.pipeline.provenance import cpu_name


def test_figure1_net_is_cuda_convnets_four_layer_net():
    net = Figure1Net("relu")
    weights = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weights) == 4  # "a four-layer convolutional neural network"
    # conv 5x5: 3->32, 32->32, 32->64, then fc 64*4*4 -> 10, with biases
    expected = (5 * 5 * 3 * 32 + 32) + (5 * 5 * 32 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (64 * 4 * 4 * 10 + 10)
    for protocol, rnorm in (("modern", False), ("authors", False), ("authors", True)):
        net = Figure1Net("relu", protocol=protocol, rnorm=rnorm)
        assert sum(p.numel() for p in net.parameters()) == expected == 89_578  # rnorm has no weights
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    tanh = Figure1Net("tanh", width=0.5)
    assert tanh.act is torch.tanh and tanh.fc10.in_features == 32 * 16
    with pytest.raises(ValueError, match="authors' protocol"):
        Figure1Net("relu", protocol="modern", rnorm=True)


def test_figure1_authors_protocol_is_layers_18pct():
    """layers-18pct.cfg: initW 1e-4 on conv1, 0.01 on the rest, biases 0; layer-params: epsB = 2 epsW;
    Figure 1: no weight decay; pools from the first pixel (32 -> 16 -> 8 -> 4, ceil mode); rnorm
    after pool1 and pool2. The forward pass against the layers written out by hand."""
    torch.manual_seed(0)
    net = Figure1Net("tanh", protocol="authors", rnorm=True)
    for name, std in {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc10": 0.01}.items():
        w = getattr(net, name).weight
        assert w.std().item() == pytest.approx(std, rel=0.05) and (getattr(net, name).bias == 0).all()
    groups = net.param_groups(0.001)
    assert {g["weight_decay"] for g in groups} == {0.0}
    assert {g["lr"] for g in groups if g["params"][0].ndim == 1} == {0.002}
    assert {g["lr"] for g in groups if g["params"][0].ndim > 1} == {0.001}
    for layer in (net.conv1, net.conv2, net.conv3, net.fc10):
        torch.nn.init.normal_(layer.weight, 0, 0.05)
        torch.nn.init.normal_(layer.bias, 0, 0.1)
    x = torch.randn(2, 3, 32, 32) * 60

    def rnorm(a):  # the 3x3 window around each pixel, cut at the border, scale / size^2
        out = torch.empty_like(a)
        h = a.shape[-1]
        for i in range(h):
            for j in range(h):
                win = a[:, :, max(0, i - 1):i + 2, max(0, j - 1):j + 2]
                out[:, :, i, j] = a[:, :, i, j] / (1 + 5e-5 / 9 * (win ** 2).sum((2, 3))) ** 0.75
        return out

    def pool(a, kind):  # cuda-convnet: windows from 0, stride 2, as many as cover the map
        n = (a.shape[-1] - 2) // 2 + 1
        out = torch.empty(*a.shape[:2], n, n)
        for i in range(n):
            for j in range(n):
                win = a[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
                out[:, :, i, j] = win.amax((2, 3)) if kind == "max" else win.mean((2, 3))
        return out

    h = rnorm(pool(torch.tanh(F.conv2d(x, net.conv1.weight, net.conv1.bias, padding=2)), "max"))
    assert h.shape[-1] == 16
    h = rnorm(pool(torch.tanh(F.conv2d(h, net.conv2.weight, net.conv2.bias, padding=2)), "avg"))
    h = pool(torch.tanh(F.conv2d(h, net.conv3.weight, net.conv3.bias, padding=2)), "avg")
    assert h.shape[-1] == 4
    expected = h.flatten(1) @ net.fc10.weight.T + net.fc10.bias
    torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-5)
    assert isinstance(net.rnorm1, WithinMapNorm) and (net.rnorm1.size, net.rnorm1.scale) == (3, 5e-5)


def test_conv_local_nets_follow_the_authors_final_configs():
    """layers-conv-local-13pct.cfg: conv 64 5x5, conv 64 5x5, local 32 3x3 (6x6 positions), local 32
    3x3, fc 10, on 24x24 crops. The final -11pct.cfg (a2a6af8 onwards): local3 has 64 filters and two
    cmrnorm layers of size 9 (no weights); layer-params: fc10's wc 0.01 against the 13pct's 0.004."""
    per_net = {False: (5 * 5 * 3 * 64 + 64) + (5 * 5 * 64 * 64 + 64) + (36 * 64 * 9 * 32 + 32)
               + (36 * 32 * 9 * 32 + 32) + (32 * 6 * 6 * 10 + 10),
               True: (5 * 5 * 3 * 64 + 64) + (5 * 5 * 64 * 64 + 64) + (36 * 64 * 9 * 64 + 64)
               + (36 * 64 * 9 * 32 + 32) + (32 * 6 * 6 * 10 + 10)}
    assert per_net == {False: 1_114_250, True: 2_109_610}
    for lrn in (False, True):
        net = ConvLocalNet(lrn)
        assert sum(p.numel() for p in net.parameters()) == per_net[lrn]
        assert net(torch.zeros(2, 3, 24, 24)).shape == (2, 10)
    torch.manual_seed(0)
    net = ConvLocalNet(True)
    for name, std in {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc10": 0.01}.items():
        w = getattr(net, name).weight
        assert w.std().item() == pytest.approx(std, rel=0.05) and abs(w.mean().item()) < std / 10
        assert (getattr(net, name).bias == 0).all()
    groups = net.param_groups(0.001, 0.004, 0.01)
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(net.local3.weight)] == decay[id(net.local4.weight)] == 0.004 and decay[id(net.fc10.weight)] == 0.01
    assert decay[id(net.conv1.weight)] == decay[id(net.conv2.weight)] == 0.0
    assert {g["lr"] for g in groups if g["params"][0].ndim == 1} == {0.002}  # epsB = 2 epsW


def test_11pct_layer_order_is_the_published_one():
    """conv1 -> relu -> pool1 -> rnorm1 -> conv2 -> relu -> rnorm2 -> pool2 -> local3 -> local4 -> fc10,
    against the layers applied by hand with an independent cmrnorm (size 9, scale 0.001 / 9, pow 0.75)."""
    torch.manual_seed(2)
    net = ConvLocalNet(True, width=0.25)
    for layer in (net.conv1, net.conv2):
        torch.nn.init.normal_(layer.weight, 0, 0.2)
    x = torch.rand(2, 3, 24, 24) * 255 - 128

    def cmrnorm(a):
        out = torch.empty_like(a)
        for c in range(a.shape[1]):
            win = a[:, max(0, c - 4):c + 5]
            out[:, c] = a[:, c] / (1 + 0.001 / 9 * (win ** 2).sum(1)) ** 0.75
        return out

    h = cmrnorm(F.max_pool2d(F.relu(net.conv1(x)), 3, 2, ceil_mode=True))
    h = F.max_pool2d(cmrnorm(F.relu(net.conv2(h))), 3, 2, ceil_mode=True)
    h = F.relu(net.local4(F.relu(net.local3(h))))
    torch.testing.assert_close(net(x), net.fc10(h.flatten(1)), rtol=1e-4, atol=1e-5)
    # and the rnorm layers matter here: without them the output differs
    plain = F.max_pool2d(F.relu(net.conv1(x)), 3, 2, ceil_mode=True)
    assert not torch.allclose(net.rnorm1(plain), plain)


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
    """cuda-convnet's cmrnorm: a / (1 + scale / size * sum over the `size` maps centred on a of a^2)^pow."""
    net = ConvLocalNet(True)
    a = torch.rand(1, 12, 2, 2) * 50
    b = net.rnorm1(a).numpy()
    a = a.numpy()
    for c in range(12):
        window = a[:, max(0, c - 4):c + 5]
        expected = a[:, c] / (1 + 0.001 / 9 * (window ** 2).sum(axis=1)) ** 0.75
        np.testing.assert_allclose(b[:, c], expected, rtol=1e-5)


def test_epochs_to_target_by_hand():
    assert epochs_to_target([60.0, 30.0, 20.0], 25.0) == pytest.approx(2.5)  # 30 -> 20 crosses 25 halfway
    assert epochs_to_target([10.0], 25.0, chance=90.0) == pytest.approx(65 / 80, abs=1e-3)  # from chance at epoch 0
    assert epochs_to_target([50.0, 25.0], 25.0) == pytest.approx(2.0)
    assert epochs_to_target([50.0, 40.0], 25.0) is None


def run(lr, errors, stopped="", activation="relu"):
    return NetRun("figure1", activation, False, lr, 0, list(errors), [lr] * len(errors), stopped)


def test_a_record_made_with_other_settings_is_not_used_and_the_message_says_which(tmp_path, capsys):
    def trainer(lr: float) -> Trainer:
        net = torch.nn.Linear(2, 2)
        run = NetRun(kind="figure1", activation="relu", lrn=False, lr=lr, seed=0)
        return Trainer(run, net, torch.optim.SGD(net.parameters(), lr=lr), {"lr": lr, "crop": (24, 24)},
                       tmp_path / "net.pt")

    done = trainer(0.004)
    done.run.train_error, done.run.stopped = [50.0, 24.0], "target"
    done.save()
    again = trainer(0.004)
    assert again.load() and again.run.train_error == [50.0, 24.0]  # the checkpoint, same settings

    other = trainer(0.008)
    assert not other.load() and other.run.train_error == []
    assert "(lr: 0.004 -> 0.008): not used" in capsys.readouterr().out
    (tmp_path / "net.pt").unlink()  # the weights gone: the finished record speaks, and also refuses
    assert trainer(0.004).load()
    assert not other.load() and other.run.train_error == []
    assert "net.json was made with other settings (lr: 0.004 -> 0.008): not used" in capsys.readouterr().out


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
                     ({"lrn_epochs": [0, 0, 0]}, "cifar.lrn_epochs"), ({"lrn_epochs": [5]}, "cifar.lrn_epochs"),
                     ({"lr_grid": [0.1, 0.01]}, "cifar.lr_grid"), ({"grid_seed": 1}, "cifar.grid_seed"),
                     ({"figure1_protocol": "modern"}, "cifar.figure1_rnorm"), ({"figure1_rnorm": []}, "cifar.figure1_rnorm"),
                     ({"lrn_seeds": [3, 3]}, "cifar.lrn_seeds"), ({"lrn_fc10_weight_decay": [0.01]},
                                                                  "cifar.lrn_fc10_weight_decay")]:
        with pytest.raises(ConfigError, match=key):
            params_from_dict({"cifar": raw})


def test_next_rate_steps_beyond_an_edge_at_its_spacing():
    assert next_rate([0.01, 0.02, 0.04], 0.04) == 0.08 and next_rate([0.01, 0.02, 0.04], 0.01) == 0.005
    assert next_rate([0.01, 0.02, 0.04], 0.02) is None and next_rate([0.01], 0.01) is None
    assert next_rate([0.00025, 0.00035], 0.00025) == 0.000179  # 3 significant digits: stable checkpoint names


def test_the_grid_grows_until_the_chosen_rate_is_interior(monkeypatch):
    """A made-up error curve that falls fastest at lr 0.02: the grid [0.0025, 0.005, 0.01] chooses its
    edge, so 0.02 is tried, then 0.04 (0.02 at the new edge), where it stops: 0.02 interior."""
    def fake_epoch(trainer, x, y, batch_size):
        speed = 30 - 8 * abs(math.log2(trainer.run.lr / 0.02))
        return max(90 - speed * (len(trainer.run.train_error) + 1), 0.0)

    monkeypatch.setattr(fig1, "train_epoch", fake_epoch)
    cfg = CifarConfig(lr_grid=[0.0025, 0.005, 0.01], lr_grid_extend=3, width=0.125, epochs=20, seeds=[0])
    runs, best = fig1.choose_lr(cfg, False, "relu", torch.zeros(1), torch.zeros(1), torch.device("cpu"), {"data": "md5"}, None)
    assert [r.lr for r in runs] == [0.0025, 0.005, 0.01, 0.02, 0.04] and best.lr == 0.02
    cfg = CifarConfig(lr_grid=[0.0025, 0.005, 0.01], lr_grid_extend=1, width=0.125, epochs=20, seeds=[0])
    runs, best = fig1.choose_lr(cfg, False, "relu", torch.zeros(1), torch.zeros(1), torch.device("cpu"), {"data": "md5"}, None)
    assert [r.lr for r in runs] == [0.0025, 0.005, 0.01, 0.02] and best.lr == 0.02  # at the edge: the record says so
    record = fig1.arm_record({"rnorm": False, "grids": {"relu": runs, "tanh": runs}, "chosen": {"relu": 0.02, "tanh": 0.01},
                              "seeds": {"relu": [], "tanh": []}}, cfg)
    assert record["interior"] == {"relu": False, "tanh": True}


def test_ratio_curve_by_hand():
    """Per level, tanh's epochs over ReLU's per seed; the geometric mean and the t interval of the logs."""
    relu = [run(0.01, [50.0, 30.0, 20.0]), run(0.01, [40.0, 24.0])]
    tanh = [run(0.01, [80.0, 60.0, 40.0, 25.0], activation="tanh"), run(0.01, [70.0, 50.0, 30.0, 20.0], activation="tanh")]
    rows = ratio_curve(relu, tanh, [25.0, 40.0, 22.0])
    # 25%: seed 0 relu 30 -> 20 halfway (2.5), tanh at epoch 4; seed 1 relu 40 -> 24 (1 + 15/16), tanh 30 -> 20 (3.5)
    # 40%: seed 0 relu 50 -> 30 (1.5), tanh at epoch 3; seed 1 relu at epoch 1, tanh 50 -> 30 (2.5)
    # (epochs are kept to 3 decimals: 1.9375 -> 1.938)
    for row, ratios in ((rows[0], [4.0 / 2.5, 3.5 / 1.938]), (rows[1], [3.0 / 1.5, 2.5 / 1.0])):
        logs = np.log(ratios)
        half = 12.7062 * logs.std(ddof=1) / math.sqrt(2)  # t(0.975, 1 df)
        assert (row["n"], row["of"]) == (2, 2)
        assert row["ratio"] == pytest.approx(math.exp(logs.mean()), rel=1e-3)
        assert (row["low"], row["high"]) == (pytest.approx(math.exp(logs.mean() - half), rel=1e-3),
                                             pytest.approx(math.exp(logs.mean() + half), rel=1e-3))
    # 22%: seed 0's tanh and seed 1's ReLU never get there: no pair, no ratio
    assert rows[2] == {"level": 22.0, "n": 0, "of": 2, "ratio": None, "low": None, "high": None}


SMALL = dict(tiny_train_per_class=6, tiny_test_per_class=3, width=0.25, epochs=3, batch_size=20,
             lr_grid=[0.003, 0.01], lr_grid_extend=1, seeds=[0, 1], lrn_seeds=[0, 1], lrn_epochs=[2, 0, 0],
             lrn_batch_size=20, lrn_width=0.125, device="cpu")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cifar")
    cfg = CifarConfig(**SMALL)
    cifar_download(cfg, tmp / "raw")
    outs = [cifar.cifar(cfg, tmp / "raw", tmp / f"out{i}", tmp / f"m{i}.json", tmp / f"r{i}.json", tmp / f"ck{i}")
            for i in (1, 2)]
    return tmp, cfg, outs


def test_stage_writes_metrics_runs_figures_and_curves(small_run):
    tmp, cfg, (m, _) = small_run
    assert json.loads((tmp / "m1.json").read_text()) == m
    assert all(isinstance(v, (int, float)) or v is None for v in m.values())  # flat numbers: results only
    runs = json.loads((tmp / "out1" / "runs.json").read_text())
    assert (runs["dataset"], runs["source"], runs["train_images"], runs["test_images"]) == ("tiny", "tiny", 60, 30)
    f1, lrn = runs["figure1"], runs["lrn"]
    assert (f1["protocol"], f1["grid_seed"], f1["max_epochs"]) == ("authors", 100, 3)
    assert [a["rnorm"] for a in f1["arms"]] == [True, False]
    for arm in f1["arms"]:
        assert [s["seed"] for s in arm["seeds"]] == [0, 1]
        for activation in ("relu", "tanh"):
            tried = arm["rates_tried"][activation]
            assert set(cfg.lr_grid) <= set(tried) and arm[f"{activation}_lr"] in tried and len(tried) <= 3
            assert arm["interior"][activation] == (tried[0] < arm[f"{activation}_lr"] < tried[-1])
        for s in arm["seeds"]:
            if s["ratio"] is not None:
                assert s["ratio"] == round(s["tanh_epochs"] / s["relu_epochs"], 4)
        assert [c["level"] for c in arm["ratio_curve"]] == fig1.curve_levels(25.0) == [25 + 2.5 * i for i in range(11)]
        name = fig1.arm_name(arm["rnorm"])
        assert m[f"{name}_relu_lr"] == arm["relu_lr"]
    assert [s["seed"] for s in lrn["seeds"]] == [0, 1]
    for s in lrn["seeds"]:
        assert s["gain"] == round(s["without"] - s["with"], 3)
    assert (lrn["epochs"], lrn["schedule"], lrn["shortened"]) == (2, [2, 0, 0], True)
    assert m["lrn_gain"] == round(sum(s["gain"] for s in lrn["seeds"]) / 2, 3)
    for figure in (FIGURE, RATIO_FIGURE):
        assert (tmp / "out1" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(tmp / "out1" / CURVES)
    # the grid on seed 100 and the chosen lr with the evaluation seeds 0 and 1, per arm and activation
    assert set(zip(curves["rnorm"], curves["activation"], curves["role"], curves["seed"])) == {
        (n, a, r, s) for n in (True, False) for a in ("relu", "tanh") for r, s in (("grid", 100), ("seed", 0), ("seed", 1))}
    assert curves.groupby(["rnorm", "activation", "lr", "seed"])["epoch"].max().max() <= cfg.epochs
    lrn_curves = pd.read_csv(tmp / "out1" / LRN_CURVES)
    assert len(lrn_curves) == 2 * 2 * 2  # 13pct and 11pct, 2 seeds, 2 epochs
    record = json.loads((tmp / "r1.json").read_text())
    assert record["lrn"]["net_epochs"] == 8 and "code_sha256" in record and "seconds" in record
    assert record["numerics"]["bit_identity"] is False and "mkldnn" in record["numerics"]
    assert record["trained_on"] == [cpu_name()]  # every net trained here, each checkpoint says so too
    ckpt = torch.load(next((tmp / "ck1").glob("figure1-*.pt")), weights_only=False)
    assert ckpt["run"]["trained_on"] == [cpu_name()]


def test_figure1_nets_see_centred_inputs(small_run, monkeypatch):
    """Over an epoch, every training image passes conv1 once: the mean of what conv1 sees is ~0 at
    every position and channel (the mean image subtracted), whatever the input scale."""
    tmp, cfg, _ = small_run
    sums: dict[int, list] = {}

    def hook(module, args):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            entry = sums.setdefault(id(module), [torch.zeros(3, 32, 32, dtype=torch.float64), 0])
            entry[0] += args[0].detach().double().sum(0)
            entry[1] += args[0].shape[0]

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        one = CifarConfig(**{**SMALL, "epochs": 1, "lr_grid": [0.01], "seeds": [0], "lrn_seeds": [],
                             "figure1_rnorm": [False]})
        cifar.cifar(one, tmp / "raw", tmp / "centred", tmp / "mc.json", tmp / "rc.json")
    finally:
        handle.remove()
    epochs = [entry for entry in sums.values() if entry[1] == 60]  # a net that trained one epoch of 60 images
    assert len(epochs) >= 4  # grid and seed, relu and tanh
    for total, count in epochs:
        assert (total / count).abs().max().item() < 1e-3  # raw pixels: ~120; the uncentred 1/64 scale: ~1.9


def test_stage_is_deterministic(small_run):
    tmp, _, (first, second) = small_run
    assert first == second
    for name in (CIFAR_RUNS, CURVES, LRN_CURVES):
        assert (tmp / "out1" / name).read_bytes() == (tmp / "out2" / name).read_bytes()


def test_a_rerun_resumes_from_checkpoints_to_the_same_result(small_run, tmp_path, monkeypatch):
    """Longer LRN training continues from the 2-epoch checkpoints and equals a run from scratch;
    a rerun with every net checkpointed trains nothing."""
    tmp, cfg, _ = small_run
    longer = CifarConfig(**{**SMALL, "lrn_epochs": [3, 0, 0]})
    resumed = cifar.cifar(longer, tmp / "raw", tmp_path / "a", tmp_path / "ma.json", tmp_path / "ra.json", tmp / "ck1")
    fresh = cifar.cifar(longer, tmp / "raw", tmp_path / "b", tmp_path / "mb.json", tmp_path / "rb.json", tmp_path / "ck")
    assert resumed == fresh
    assert (tmp_path / "a" / LRN_CURVES).read_bytes() == (tmp_path / "b" / LRN_CURVES).read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("a net was trained again although its checkpoint holds every epoch")

    from alexnet.claims.cifar import lrn

    monkeypatch.setattr(fig1, "train_epoch", no_training)
    monkeypatch.setattr(lrn, "train_epoch", no_training)
    again = cifar.cifar(longer, tmp / "raw", tmp_path / "c", tmp_path / "mc.json", tmp_path / "rc.json", tmp_path / "ck")
    assert again == fresh

    # the checkpoints lost, the finished records kept (what a long run commits): nothing trains again
    records = tmp_path / "records"
    records.mkdir()
    for finished in (tmp_path / "ck").glob("*.json"):
        shutil.copy(finished, records / finished.name)
    assert len(list(records.iterdir())) == len(list((tmp_path / "ck").glob("*.pt"))) > 0  # every net stopped
    weightless = cifar.cifar(longer, tmp / "raw", tmp_path / "d", tmp_path / "md.json", tmp_path / "rd.json", records)
    assert weightless == fresh
    for name in (CIFAR_RUNS, CURVES, LRN_CURVES):
        assert (tmp_path / "d" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_raising_the_epoch_limit_trains_the_stopped_figure1_nets_on(small_run, tmp_path, monkeypatch):
    """Nets stopped at the old cfg.epochs continue from their checkpoints to what a run from
    scratch gives; with only their finished records (no weights) they start over, to the same."""
    tmp, cfg, _ = small_run
    longer = CifarConfig(**{**SMALL, "epochs": 4})
    epochs = []
    counted = fig1.train_epoch
    monkeypatch.setattr(fig1, "train_epoch", lambda *a, **k: epochs.append(1) or counted(*a, **k))

    def run(name: str, ckpt):
        epochs.clear()
        out = cifar.cifar(longer, tmp / "raw", tmp_path / name, tmp_path / f"m{name}.json", tmp_path / f"r{name}.json",
                          ckpt)
        return out, len(epochs), [(tmp_path / name / f).read_bytes() for f in (CIFAR_RUNS, CURVES, LRN_CURVES)]

    fresh = run("fresh", tmp_path / "ck-fresh")
    assert "max_epochs" in set(pd.read_csv(tmp / "out2" / CURVES)["stopped"])  # some nets have more to do

    shutil.copytree(tmp / "ck2", tmp_path / "ck-resumed")
    resumed = run("resumed", tmp_path / "ck-resumed")
    assert resumed[0] == fresh[0] and resumed[2] == fresh[2]
    assert 0 < resumed[1] < fresh[1]  # it trained on, not from scratch

    records = tmp_path / "records"
    records.mkdir()
    for finished in (tmp / "ck2").glob("*.json"):
        shutil.copy(finished, records / finished.name)
    weightless = run("weightless", records)
    assert weightless[0] == fresh[0] and weightless[2] == fresh[2]


def test_pruning_changes_no_chosen_rate(small_run):
    tmp, cfg, _ = small_run
    from alexnet.claims.cifar.data import open_cifar
    from alexnet.claims.cifar.training import centred, prepare_inputs

    data, manifest = open_cifar(tmp / "raw")
    inputs = prepare_inputs(data, torch.device("cpu"), cfg.channels_last)
    cfg = CifarConfig(**{**SMALL, "epochs": 6, "lr_grid": [0.003, 0.01, 0.03]})
    for activation in ("relu", "tanh"):
        chosen = []
        for prune in (True, False):
            trainers = [fig1.figure1_trainer(cfg, False, activation, lr, 0, torch.device("cpu"), {"data": manifest["md5"]}, None)
                        for lr in cfg.lr_grid]
            runs = fig1.train_lockstep(trainers, centred(inputs), inputs.train_y, cfg, prune=prune, label="test")
            chosen.append((best_run(runs, cfg.target_error).lr,
                           epochs_to_target(best_run(runs, cfg.target_error).train_error, cfg.target_error)))
        assert chosen[0] == chosen[1]
