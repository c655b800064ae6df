"""Tests for alexnet/training/optim.py and alexnet/training/train.py (stage train).

The optimizer is checked against hand-rolled numpy loops of the paper's and PyTorch's update
rules; the schedule against hand-worked epochs; training end to end on a tiny store made here
(random 232x232 images, a 1/16-width net): outputs, bit-identical reruns, exact resume after
SIGKILL, the checkpoint rules and the loss guard.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from stage_helpers import assert_clear_error, run_stage, stage_command

from alexnet.config import Params, TrainConfig, params_from_dict, to_dict
from alexnet.errors import PipelineError
from alexnet.training.optim import PaperSGD, Schedule, build_optimizer, set_lr

# ----------------------------------------------------------------------------- the optimizer


def _quadratic(seed: int = 0, n: int = 7, m: int = 5):
    """f(w) = 0.5 |A w - b|^2 with gradient A^T (A w - b): autograd checked by hand below."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n)), rng.normal(size=m), rng.normal(size=n)


def _numpy_paper(A, b, w, lrs, m, wd):
    w, v = w.copy(), np.zeros_like(w)
    out = []
    for lr in lrs:
        g = A.T @ (A @ w - b)
        v = m * v - wd * lr * w - lr * g  # Section 5, literally
        w = w + v
        out.append(w.copy())
    return out


def _numpy_pytorch(A, b, w, lrs, m, wd):
    w, buf = w.copy(), None
    out = []
    for lr in lrs:
        g = A.T @ (A @ w - b) + wd * w
        buf = g.copy() if buf is None else m * buf + g
        w = w - lr * buf
        out.append(w.copy())
    return out


def _torch_run(opt_cls, A, b, w0, lrs, **kw):
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    At, bt = torch.tensor(A), torch.tensor(b)
    opt = opt_cls([w], lr=lrs[0], **kw)
    out = []
    for lr in lrs:
        set_lr(opt, lr)
        opt.zero_grad()
        (0.5 * ((At @ w - bt) ** 2).sum()).backward()
        opt.step()
        out.append(w.detach().numpy().copy())
    return out, opt


def test_paper_sgd_matches_numpy_and_differs_from_torch_sgd_after_lr_drop():
    A, b, w0 = _quadratic()
    lrs = [0.05] * 6 + [0.005] * 6  # a drop by 10 after step 6
    m, wd = 0.9, 0.0005
    paper, opt = _torch_run(PaperSGD, A, b, w0, lrs, momentum=m, weight_decay=wd)
    ref_paper = _numpy_paper(A, b, w0, lrs, m, wd)
    torch_sgd, _ = _torch_run(torch.optim.SGD, A, b, w0, lrs, momentum=m, weight_decay=wd)
    ref_torch = _numpy_pytorch(A, b, w0, lrs, m, wd)
    for got, ref in zip(paper, ref_paper):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
    for got, ref in zip(torch_sgd, ref_torch):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
    # Same trajectory while lr is constant (v = -lr * buf) ...
    for a, c in zip(paper[:6], torch_sgd[:6]):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
    # ... and different after the drop: the paper's velocity keeps the old lr's size.
    gap = np.abs(paper[6] - torch_sgd[6]).max()
    assert gap > 1e-3 * np.abs(paper[6] - paper[5]).max() and gap > 1e-6
    # The velocity after the first step is -lr (g + wd w).
    v = next(iter(opt.state.values()))["velocity"]
    assert v.shape == (len(w0),)


def test_paper_sgd_first_step_and_float32():
    w0 = torch.tensor([1.0, -2.0, 3.0])
    w = w0.clone().requires_grad_(True)
    opt = PaperSGD([w], lr=0.01, momentum=0.9, weight_decay=0.0005)
    (w * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    opt.step()
    g = torch.tensor([1.0, 2.0, 3.0])
    expect = w0 - 0.01 * g - 0.0005 * 0.01 * w0
    torch.testing.assert_close(w.detach(), expect)
    # the velocity after the first step is -lr (g + wd w), and everything stays float32
    torch.testing.assert_close(opt.state[w]["velocity"], -0.01 * (g + 0.0005 * w0))
    assert w.dtype == opt.state[w]["velocity"].dtype == torch.float32
    with pytest.raises(ValueError):
        PaperSGD([w], lr=-1.0)


def test_build_optimizer_follows_update_rule():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer(p, TrainConfig(update_rule="paper")), PaperSGD)
    sgd = build_optimizer(p, TrainConfig(update_rule="pytorch", lr=0.02))
    assert type(sgd) is torch.optim.SGD
    g = sgd.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["nesterov"], g["dampening"]) == (0.02, 0.9, 0.0005, False, 0)


def _bias_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(12, 4))


def test_bias_conventions_are_param_groups():
    from alexnet.config import ModelConfig
    from alexnet.model.net import build_model

    with torch.device("meta"):
        net = build_model(ModelConfig(width=0.25), 10)
    names = dict(net.named_parameters())
    paper = build_optimizer(net, TrainConfig())
    assert [g["name"] for g in paper.param_groups] == ["weights", "biases"]
    w, b = paper.param_groups
    assert {id(p) for p in b["params"]} == {id(p) for n, p in names.items() if n.endswith(".bias")}
    assert len(b["params"]) == 8 and len(w["params"]) == 8  # conv1-5, fc6-8: one weight and one bias each
    assert all(p.dim() == 1 for p in b["params"]) and all(p.dim() > 1 for p in w["params"])
    # The paper's text: one lr for all layers, the decay on every w.
    assert (w["lr"], w["weight_decay"], b["lr"], b["weight_decay"]) == (0.01, 0.0005, 0.01, 0.0005)
    assert TrainConfig().bias_lr_mult == 1.0 and TrainConfig().bias_decay_mult == 1.0
    # The authors' code and Caffe: biases at twice the rate, no decay; kept through lr drops.
    for rule in ("paper", "pytorch"):
        caffe = build_optimizer(net, TrainConfig(update_rule=rule, bias_lr_mult=2.0, bias_decay_mult=0.0))
        w, b = caffe.param_groups
        assert (w["lr"], w["weight_decay"], b["lr"], b["weight_decay"]) == (0.01, 0.0005, 0.02, 0.0)
        set_lr(caffe, 0.001)
        assert (w["lr"], b["lr"]) == (0.001, 0.002)


@pytest.mark.parametrize("rule", ["paper", "pytorch"])
@pytest.mark.parametrize("mults", [(1.0, 1.0), (2.0, 0.0)])
def test_bias_conventions_update_steps_match_numpy(rule, mults):
    """Two SGD steps of a small net, weights and biases checked against numpy's update."""
    net = _bias_net()
    cfg = TrainConfig(update_rule=rule, lr=0.1, momentum=0.9, weight_decay=0.05,
                      bias_lr_mult=mults[0], bias_decay_mult=mults[1])
    opt = build_optimizer(net, cfg)
    x = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0])
    params = {n: p.detach().double().numpy().copy() for n, p in net.named_parameters()}
    state = {n: np.zeros_like(v) for n, v in params.items()}
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        grads = {n: p.grad.double().numpy() for n, p in net.named_parameters()}
        opt.step()
        for n in params:
            bias = n.endswith("bias")
            lr = cfg.lr * (mults[0] if bias else 1.0)
            wd = cfg.weight_decay * (mults[1] if bias else 1.0)
            if rule == "paper":  # v <- m v - wd lr w - lr g; w <- w + v
                state[n] = 0.9 * state[n] - wd * lr * params[n] - lr * grads[n]
                params[n] = params[n] + state[n]
            else:  # b <- m b + g + wd w; w <- w - lr b
                state[n] = 0.9 * state[n] + grads[n] + wd * params[n]
                params[n] = params[n] - lr * state[n]
        for n, p in net.named_parameters():
            np.testing.assert_allclose(p.detach().double().numpy(), params[n], rtol=1e-5, atol=1e-7, err_msg=n)
    if mults == (2.0, 0.0):  # the bias really moved twice as far as at mult 1 would: not a no-op switch
        plain = _bias_net()
        opt1 = build_optimizer(plain, replace(cfg, bias_lr_mult=1.0, bias_decay_mult=1.0))
        opt1.zero_grad()
        torch.nn.functional.cross_entropy(plain(x), y).backward()
        opt1.step()
        assert not torch.allclose(plain[3].bias, net[3].bias)


# ----------------------------------------------------------------------------- the schedule


def test_plateau_schedule_hand_worked():
    s = Schedule(TrainConfig(lr=0.01, plateau_patience=2, plateau_threshold=0.5, max_lr_drops=2))
    errors = [60, 50, 49.7, 49.9, 45, 46, 47, 30, 30, 30, 30, 30, 30]
    lrs, drops = [], []
    for epoch, err in enumerate(errors, start=1):
        lrs.append(s.lr(epoch))
        drops.append(s.observe(epoch, err))
    # 49.7 and 49.9 are not 0.5 better than 50: two bad epochs -> drop before epoch 5.
    # 46, 47 are worse than 45 -> drop before epoch 8. Then at most 2 drops: none more.
    assert drops == [False, False, False, True, False, False, True, False, False, False, False, False, False]
    assert lrs == [0.01] * 4 + [0.001] * 3 + [0.0001] * 6
    assert s.lr(100) == 0.0001  # 0.01 / 10**2, no float drift from repeated multiplication


def test_plateau_schedule_three_drops_then_stop_on_a_simulated_curve():
    """The paper: lr / 10 each time the validation error stops improving, three times, then stop.

    Defaults: patience 2 epochs, threshold 0.001 points. The curve improves, flattens, and so on;
    each drop and the stop are worked out by hand below."""
    s = Schedule(TrainConfig())
    curve = [70.0, 60.0, 55.0, 55.0, 55.0,   # 4, 5: no better than 55 -> drop after epoch 5
             50.0, 48.0, 48.0005, 49.0,      # 48.0005 is not 0.001 better; 49 worse -> drop after 9
             45.0, 45.0, 44.0, 44.0, 44.0,   # 11 flat (1 bad), 12 better, 13-14 flat -> drop after 14
             42.0, 41.0, 41.0, 42.0,         # 17, 18 not better than 41 -> stop after epoch 18
             30.0, 30.0]                     # never trained
    lrs, drops, stopped_at = [], [], None
    for epoch, err in enumerate(curve, start=1):
        lrs.append(s.lr(epoch))
        if s.observe(epoch, err):
            drops.append(epoch)
        if s.stopped:
            stopped_at = epoch
            break
    assert drops == [5, 9, 14] and stopped_at == 18
    assert lrs == [0.01] * 5 + [0.001] * 4 + [0.0001] * 5 + [1e-5] * 4
    assert s.state_dict()["stopped"] is True and s.drops == 3
    # Without plateau_stop the run goes on at 1e-5 (to train.epochs), never stopping.
    s = Schedule(TrainConfig(plateau_stop=False))
    for epoch, err in enumerate(curve, start=1):
        s.observe(epoch, err)
    assert not s.stopped and s.lr(len(curve) + 1) == 1e-5
    # The step schedule never stops early.
    s = Schedule(TrainConfig(schedule="step"))
    for epoch in range(1, 91):
        s.observe(epoch, 50.0)
    assert not s.stopped


def test_plateau_schedule_state_round_trip():
    cfg = TrainConfig(plateau_patience=2)
    a = Schedule(cfg)
    for epoch, err in enumerate([50, 49, 49], start=1):
        a.observe(epoch, err)
    b = Schedule(cfg)
    b.load_state_dict(a.state_dict())
    assert [a.observe(4, 49), a.lr(5)] == [b.observe(4, 49), b.lr(5)] == [True, 0.001]
    with pytest.raises(ValueError):
        Schedule(TrainConfig(schedule="step")).load_state_dict(a.state_dict())


def test_step_schedule():
    s = Schedule(TrainConfig(schedule="step", lr=0.01, step_epochs=[30, 60, 80]))
    assert [s.lr(e) for e in (1, 30, 31, 60, 61, 80, 81, 90)] == [0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4, 1e-5, 1e-5]
    assert s.observe(30, 10.0) and not s.observe(31, 10.0)


# ----------------------------------------------------------------------------- a tiny store


SIZE = 232  # prepared side: 224 crops with a few pixels of play


def make_store(root: Path, classes: int = 4, train: int = 16, val: int = 8, seed: int = 0) -> Path:
    """A prepared store per docs/architecture.md: class-tinted random images, one shard per split."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "shards").mkdir(exist_ok=True)
    rows = []
    tints = rng.integers(0, 256, size=(classes, 3))
    for split, n in (("train", train), ("val", val)):
        labels = np.arange(n) % classes
        noise = rng.integers(0, 96, size=(n, SIZE, SIZE, 3))
        images = (noise + tints[labels][:, None, None, :] * 0.6).clip(0, 255).astype(np.uint8)
        np.save(root / "shards" / f"{split}-00000.npy", images)
        rows += [(split, 0, i, int(lab), f"n{lab:08d}", f"{split}_{i}.JPEG") for i, lab in enumerate(labels)]
    pd.DataFrame(rows, columns=["split", "shard", "offset", "label", "wnid", "source"]).to_csv(
        root / "index.csv", index=False)
    pd.DataFrame({"label": range(classes), "wnid": [f"n{c:08d}" for c in range(classes)],
                  "name": [f"class {c}" for c in range(classes)]}).to_csv(root / "classes.csv", index=False)
    (root / "meta.json").write_text(json.dumps({"size": SIZE, "source": "test", "eval_split": "val",
                                                "splits": {"train": train, "val": val}, "num_classes": classes}))
    return root


def make_data(tmp: Path) -> tuple[Path, Path]:
    from alexnet.data.stats import compute_stats, save_stats
    from alexnet.data.store import PreparedStore

    prepared = make_store(tmp / "prepared")
    save_stats(compute_stats(PreparedStore(prepared), workers=1, progress=False), tmp / "stats")
    return prepared, tmp / "stats"


def tiny_params(**train: object) -> Params:
    """A 1/16-width net, 8-image batches, 3 epochs; the paper's optimizer and augmentation."""
    raw = {"prepare": {"image_side": SIZE}, "model": {"width": 0.0625},
           "train": {"epochs": 3, "batch_size": 8, "device": "cpu", "plateau_patience": 1, **train}}
    return params_from_dict(raw)


def write_params(path: Path, params: Params) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(to_dict(params)))
    return path


def run_train(tmp: Path, data: tuple[Path, Path], params: Params, name: str = "run", seed: int = 0) -> dict:
    from alexnet.training.train import train

    out = tmp / name
    return train(params, seed, data[0], data[1], out / "model", out / "ckpt", out / "live", out / "run.json")


def stage_cmd(tmp: Path, data: tuple[Path, Path], params_file: Path, name: str, seed: int = 0) -> list[str]:
    out = tmp / name
    return ["--params", str(params_file), "--seed", str(seed), "--prepared", str(data[0]), "--stats", str(data[1]),
            "--out", str(out / "model"), "--checkpoints", str(out / "ckpt"), "--live", str(out / "live")]


def final_state(tmp: Path, name: str) -> tuple[dict, dict]:
    from alexnet.model.net import load_trained

    model, info = load_trained(tmp / name / "model" / "model.pt")
    return model.state_dict(), info


def live_metrics(tmp: Path, name: str) -> dict[str, str]:
    """Every DVCLive file but the timing one, as text."""
    live = tmp / name / "live"
    return {str(p.relative_to(live)): p.read_text() for p in sorted(live.rglob("*"))
            if p.is_file() and "images_per_second" not in p.name and p.name != "metrics.json"}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data: tuple[Path, Path]) -> Path:
    """One uninterrupted 3-epoch run, shared by the tests that compare against it."""
    tmp = tmp_path_factory.mktemp("reference")
    run_train(tmp, data, tiny_params(), "run")
    return tmp


# ----------------------------------------------------------------------------- training


def test_outputs(reference: Path):
    from alexnet.training.train import CHECKPOINT_FORMAT, METRIC_KEYS

    out = reference / "run"
    state, info = final_state(reference, "run")
    assert info["epochs"] == 3 and info["seed"] == 0 and info["num_classes"] == 4
    assert set(info["final_metrics"]) == set(METRIC_KEYS) - {"images_per_second"}
    assert info["params"]["train"]["lr"] == 0.01 and info["versions"]["torch"] == torch.__version__
    assert info["device"].startswith("cpu")
    assert json.loads((out / "model" / "info.json").read_text()) == info
    # What varies between reruns is kept out of models/ (whose DVC hash must be stable).
    assert not {"seconds", "revision", "images_per_second"} & set(info)
    record = json.loads((out / "run.json").read_text())
    assert record["seconds"] > 0 and record["images_per_second"] > 0 and "revision" in record
    assert record["epochs"] == 3 and record["device"] == info["device"]
    # what the ablations' convergence and time rows read: ended by the plateau stop or not, the net's size
    assert record["stopped_by_schedule"] is info["stopped_by_schedule"]
    assert record["parameters"] == sum(v.numel() for v in state.values()) and record["parameters"] > 0
    assert len(record["images_per_second_per_epoch"]) == 3
    # What decides bit-identity: torch's CPU kernels, threads, the determinism switches, versions.
    bits = record["bit_identity"]
    assert bits["cpu_capability"] == torch.backends.cpu.get_cpu_capability() == info["cpu_capability"]
    assert bits["deterministic_algorithms"] is True and bits["torch_threads"] >= 1
    assert bits["versions"]["torch"] == torch.__version__
    # No timing in DVCLive's folder (a dep of the report): a rerun rewrites it byte for byte.
    assert not list((out / "live").rglob("images_per_second*"))
    assert "images_per_second" not in json.loads((out / "live" / "metrics.json").read_text())
    # DVCLive: step = epoch, one row per epoch per key, errors in percent.
    metrics = json.loads((out / "live" / "metrics.json").read_text())
    assert metrics["step"] == 3
    assert 0 <= metrics["val"]["top1_error"] <= 100 and metrics["lr"] == info["final_metrics"]["lr"]
    loss = pd.read_csv(out / "live" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert list(loss["step"]) == [1, 2, 3]
    assert not (out / "live" / "dvc.yaml").exists()
    # The checkpoint loads with weights_only and holds everything a resume needs.
    ckpt = torch.load(out / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["epoch"] == 3 and ckpt["batch"] == 0
    assert {"model", "optimizer", "schedule", "rng", "history", "identity"} <= set(ckpt)
    assert set(ckpt["rng"][0]) == {"torch", "cuda", "numpy", "python"}
    assert [r["epoch"] for r in ckpt["history"]] == [1, 2, 3]
    assert_same_weights(ckpt["model"], state)
    assert len(ckpt["optimizer"]["state"]) == len(state)  # a velocity per parameter: wd on all


def test_train_metrics_are_correct_for_a_known_net(reference: Path, data: tuple[Path, Path]):
    """val metrics recomputed independently: centre crops through the saved net, numpy errors."""
    from alexnet.data.input.augment import InputStats
    from alexnet.data.input.pixels import crop_center_flip
    from alexnet.data.stats import load_stats
    from alexnet.data.store import PreparedStore
    from alexnet.model.net import load_trained

    model, info = load_trained(reference / "run" / "model" / "model.pt")
    view = PreparedStore(data[0]).split("val")
    stats = InputStats.from_stats(load_stats(data[1]))
    off = (SIZE - 224) // 2
    x = crop_center_flip(view.images(np.arange(len(view))), [off] * len(view), [off] * len(view), 224,
                         None, stats.mean_image)
    with torch.no_grad():
        logits = model(x).double().numpy()
    order = np.argsort(-logits, axis=1)
    top1 = 100 * np.mean(order[:, 0] != view.labels)
    top5 = 100 * np.mean([lab not in row[:5] for lab, row in zip(view.labels, order)])
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    loss = -np.mean(logp[np.arange(len(view)), view.labels])
    fm = info["final_metrics"]
    assert fm["val/top1_error"] == pytest.approx(top1) and fm["val/top5_error"] == pytest.approx(top5)
    assert fm["val/loss"] == pytest.approx(loss, rel=1e-4)


def test_two_runs_are_bit_identical(tmp_path: Path, reference: Path, data: tuple[Path, Path]):
    run_train(tmp_path, data, tiny_params(), "again")
    a, info_a = final_state(reference, "run")
    b, info_b = final_state(tmp_path, "again")
    assert_same_weights(a, b)
    assert info_a == info_b
    # Byte-identical outputs: DVC hashes models/seed<N> the same, so nothing downstream reruns.
    assert sorted(p.name for p in (reference / "run" / "model").iterdir()) == ["architecture.json", "info.json",
                                                                              "model.pt"]
    for name in ("model.pt", "info.json", "architecture.json"):
        assert (reference / "run" / "model" / name).read_bytes() == (tmp_path / "again" / "model" / name).read_bytes()
    assert live_metrics(reference, "run") == live_metrics(tmp_path, "again")
    for f in sorted((reference / "run" / "live").rglob("*")):  # every DVCLive file, metrics.json included
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "again" / "live" / f.relative_to(reference / "run" / "live")).read_bytes()
    # And another seed gives another net.
    run_train(tmp_path, data, tiny_params(epochs=1), "seed1", seed=1)
    c, _ = final_state(tmp_path, "seed1")
    assert not torch.equal(a["features.conv1.weight"], c["features.conv1.weight"])


# ----------------------------------------------------------------------------- resume and its rules


def _copy_checkpoint(reference: Path, tmp: Path, name: str) -> Path:
    ckpt = tmp / name / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_bytes((reference / "run" / "ckpt" / "last.pt").read_bytes())
    return ckpt / "last.pt"


def test_resume_extends_a_run_bit_identically(tmp_path: Path, reference: Path, data: tuple[Path, Path], capsys):
    """2 epochs, then the same params with 3: equal to the uninterrupted 3-epoch run."""
    run_train(tmp_path, data, tiny_params(epochs=2), "resumed")
    run_train(tmp_path, data, tiny_params(epochs=3), "resumed")
    assert "resuming" in capsys.readouterr().err
    assert_same_weights(final_state(reference, "run")[0], final_state(tmp_path, "resumed")[0])
    assert live_metrics(reference, "run") == live_metrics(tmp_path, "resumed")


def test_the_schedule_ends_training_early_and_a_resume_respects_it(tmp_path: Path, data: tuple[Path, Path], capsys):
    """No lr drops allowed and an improvement threshold no error can meet: epoch 1 sets the best,
    epoch 2 has stopped improving, so the plateau schedule ends the run after epoch 2 of 4. An
    interrupted run (1 epoch, then resumed) ends at the same epoch with the same weights; asking
    for more epochs afterwards trains nothing more."""
    params = tiny_params(epochs=4, max_lr_drops=0, plateau_threshold=100.0)
    run_train(tmp_path, data, params, "whole")
    assert "training ends after epoch 2 of at most 4" in capsys.readouterr().err
    state, info = final_state(tmp_path, "whole")
    assert info["epochs"] == 2 and info["stopped_by_schedule"] is True
    ckpt = torch.load(tmp_path / "whole" / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["schedule"]["stopped"] is True
    steps = pd.read_csv(tmp_path / "whole" / "live" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")["step"]
    assert list(steps) == [1, 2]
    run_train(tmp_path, data, replace(params, train=replace(params.train, epochs=1)), "split")
    run_train(tmp_path, data, params, "split")
    assert_same_weights(state, final_state(tmp_path, "split")[0])
    assert live_metrics(tmp_path, "whole") == live_metrics(tmp_path, "split")
    run_train(tmp_path, data, replace(params, train=replace(params.train, epochs=6)), "split")
    assert final_state(tmp_path, "split")[1]["epochs"] == 2
    assert_same_weights(state, final_state(tmp_path, "split")[0])


def test_learning_start_diagnostic_logs_the_gap_and_warns_once(tmp_path: Path, data: tuple[Path, Path], capsys):
    """loss_below_chance = ln(classes) - training loss, per epoch in DVCLive; the paper's init on
    the 4-class store is still at chance after 2 steps, so the warning comes, once, naming causes."""
    import math

    run_train(tmp_path, data, tiny_params(epochs=2, chance_warn_steps=2), "chance")
    err = capsys.readouterr().err
    assert err.count("has not started learning") == 1
    assert "model.init_std" in err and "augment.pca_magnitude" in err and "train.lr" in err
    assert "below chance ln(4) = 1.386" in err
    plots = tmp_path / "chance" / "live" / "plots" / "metrics" / "train"
    gap = pd.read_csv(plots / "loss_below_chance.tsv", sep="\t")
    loss = pd.read_csv(plots / "loss.tsv", sep="\t")
    np.testing.assert_allclose(gap["loss_below_chance"], math.log(4) - loss["loss"], rtol=1e-9, atol=1e-12)
    # The diagnostic never changes the run: the same weights as without it.
    run_train(tmp_path, data, tiny_params(epochs=2, chance_warn_steps=0), "quiet")
    assert "has not started learning" not in capsys.readouterr().err
    assert_same_weights(final_state(tmp_path, "chance")[0], final_state(tmp_path, "quiet")[0])


def test_chance_monitor_by_hand():
    import math

    from alexnet.training.loop import ChanceMonitor

    m = ChanceMonitor(num_classes=10, warn_steps=5, steps_per_epoch=3)
    at_chance = [math.log(10)] * 3
    assert m.observe(1, 2, at_chance) is None  # 3 steps done: too early to judge
    warning = m.observe(2, 2, at_chance)  # 6 steps done: still at chance
    assert warning and "after 6 steps" in warning and "ln(10) = 2.303" in warning
    assert m.observe(3, 2, at_chance) is None  # once only
    m = ChanceMonitor(num_classes=10, warn_steps=3, steps_per_epoch=3)
    assert m.observe(1, 2, [2.3, 2.0, 1.9]) is None  # mean 2.07 < 0.95 ln 10 = 2.19: learning
    assert m.observe(2, 2, [2.3] * 3) is None  # one verdict, taken at step 3
    assert ChanceMonitor(10, 0, 3).observe(9, 2, at_chance) is None  # 0 = off


def test_finished_checkpoint_only_writes_the_model(tmp_path: Path, reference: Path, data: tuple[Path, Path]):
    _copy_checkpoint(reference, tmp_path, "done")
    final = run_train(tmp_path, data, tiny_params(), "done")
    assert final == final_state(reference, "run")[1]["final_metrics"] | {"images_per_second": final["images_per_second"]}
    assert_same_weights(final_state(reference, "run")[0], final_state(tmp_path, "done")[0])


def test_other_params_start_fresh(tmp_path: Path, reference: Path, data: tuple[Path, Path], capsys):
    path = _copy_checkpoint(reference, tmp_path, "other")
    run_train(tmp_path, data, tiny_params(epochs=1, lr=0.02), "other")
    assert "train.lr: 0.01 -> 0.02" in capsys.readouterr().err
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["identity"]["train"]["lr"] == 0.02 and ckpt["history"][0]["lr"] == 0.02


@pytest.mark.parametrize("section,switches", [
    ("train", {"channels_last": True}), ("train", {"deterministic": False}), ("train", {"amp": "bf16"}),
    ("train", {"compile": True}), ("train", {"compile": True, "compile_mode": "reduce-overhead"}),
    ("train", {"compile": True, "compile_mode": "max-autotune"}), ("train", {"device": "cuda"}),
    ("model", {"grouped_conv": "dense"})])
def test_the_execution_switches_leave_the_run_identity_as_it_is(section, switches):
    """The GPU profile's switches (configs/ilsvrc2012.yaml against -deterministic.yaml) and the
    compile modes each leave a checkpoint resumable; a recipe param (lr) does not."""
    from alexnet.training.train import run_execution, run_identity

    base = tiny_params()
    switched = replace(base, **{section: replace(getattr(base, section), **switches)})
    assert run_identity(switched, 0, "data") == run_identity(base, 0, "data")
    for key, value in switches.items():
        assert run_execution(switched)[section][key] == value != run_execution(base)[section][key]
    assert run_identity(tiny_params(lr=0.02), 0, "data") != run_identity(base, 0, "data")


@pytest.mark.parametrize("mode,world_size,compiled_as", [
    ("default", 1, "default"), ("reduce-overhead", 1, "reduce-overhead"), ("max-autotune", 1, "max-autotune"),
    ("reduce-overhead", 2, "default"), ("max-autotune", 2, "max-autotune-no-cudagraphs"),
    ("max-autotune-no-cudagraphs", 2, "max-autotune-no-cudagraphs")])
def test_the_net_compiles_in_train_compile_mode(monkeypatch, capsys, mode, world_size, compiled_as):
    """_wrap compiles the net in train.compile_mode; under data parallel without CUDA graphs, said
    once by rank 0. Eager when train.compile is false."""
    from alexnet.training import train as train_module
    from alexnet.training.distributed import Context

    calls = []
    monkeypatch.setattr(torch, "compile", lambda net, **options: calls.append(options) or net)
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", lambda net, **_: net)
    ctx = Context(rank=0, world_size=world_size, local_rank=0, device=torch.device("cpu"))
    net = torch.nn.Linear(2, 2)
    cfg = tiny_params(compile=True, compile_mode=mode).train
    assert train_module._wrap(net, cfg, ctx) is net and calls == [{"mode": compiled_as}]
    said = capsys.readouterr().err
    assert (f"train.compile_mode {mode} with 2 processes: compiled as {compiled_as}, without CUDA graphs"
            in said) == (compiled_as != mode)
    assert train_module._wrap(net, tiny_params().train, ctx) is net and len(calls) == 1


def test_changing_only_the_execution_switches_resumes(tmp_path: Path, data: tuple[Path, Path], capsys):
    """One epoch the deterministic way, then a second with channels_last, bf16 autocast, the
    nondeterministic kernels and the dense grouped convolutions: the run carries on from epoch 1
    (its record kept as it was), saying what changed, instead of starting again."""
    run_train(tmp_path, data, tiny_params(epochs=1), "switch")
    first = torch.load(tmp_path / "switch" / "ckpt" / "last.pt", weights_only=True)
    fast = tiny_params(epochs=2, channels_last=True, amp="bf16", deterministic=False)
    fast = replace(fast, model=replace(fast.model, grouped_conv="dense"))
    run_train(tmp_path, data, fast, "switch")
    err = capsys.readouterr().err
    assert f"resuming {tmp_path / 'switch' / 'ckpt' / 'last.pt'} after epoch 1 (runs otherwise now: " in err
    for change in ("model.grouped_conv: 'grouped' -> 'dense'", "train.amp: 'none' -> 'bf16'",
                   "train.channels_last: False -> True", "train.deterministic: True -> False"):
        assert change in err, change
    ckpt = torch.load(tmp_path / "switch" / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["history"][0] == first["history"][0]
    assert ckpt["execution"]["train"]["amp"] == "bf16" and ckpt["identity"] == first["identity"]
    assert final_state(tmp_path, "switch")[1]["epochs"] == 2
    torch.use_deterministic_algorithms(True)  # as the other tests' runs set it


def test_a_checkpoint_from_other_training_code_starts_fresh(tmp_path: Path, reference: Path,
                                                           data: tuple[Path, Path], capsys):
    """DVC reruns train when model.py changes: the old code's finished checkpoint must not be
    handed back as the new code's model."""
    path = _copy_checkpoint(reference, tmp_path, "code")
    ckpt = torch.load(path, weights_only=True)
    ckpt["identity"]["code"]["model.py"] = "0" * 64
    torch.save(ckpt, path)
    run_train(tmp_path, data, tiny_params(epochs=1), "code")
    assert "other code (code.model.py: '000" in capsys.readouterr().err
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_bad_checkpoints_are_clear_errors(tmp_path: Path, reference: Path, data: tuple[Path, Path]):
    path = _copy_checkpoint(reference, tmp_path, "bad")
    good = torch.load(path, weights_only=True)
    cases = {
        "truncated": lambda: path.write_bytes(path.read_bytes()[:1000]),
        "not ours": lambda: torch.save({"conv1.weight": torch.zeros(1)}, path),
        # weights_only refuses arbitrary objects: a pickled Path is not weights.
        "unsafe": lambda: torch.save({**good, "extra": Path("/")}, path),
        "architecture": lambda: torch.save({**good, "model": {k: v[:1] for k, v in good["model"].items()}}, path),
    }
    for case, write in cases.items():
        write()
        before = path.read_bytes()
        with pytest.raises(PipelineError, match="last.pt") as e:
            run_train(tmp_path, data, tiny_params(), "bad")
        assert path.read_bytes() == before, case  # left for the user to inspect
        assert not (tmp_path / "bad" / "model").exists(), case
        # one line, and none of torch's advice to load an unknown file with weights_only=False
        assert "\n" not in str(e.value) and "weights_only" not in str(e.value), (case, str(e.value))
        if case == "architecture":
            assert "another architecture" in str(e.value)


# ----------------------------------------------------------------------------- the guard


def test_guard_names_epoch_step_and_last_good_checkpoint(tmp_path: Path, reference: Path, data: tuple[Path, Path]):
    from alexnet.training.loop import TrainingDiverged

    # A finished 3-epoch checkpoint extended to 4 epochs; the first loss (~1.4) is above 0.5.
    path = _copy_checkpoint(reference, tmp_path, "guard")
    with pytest.raises(TrainingDiverged, match=r"exceeds train.max_loss = 0.5 at epoch 4, step 1 of 2") as e:
        run_train(tmp_path, data, tiny_params(epochs=4, max_loss=0.5), "guard")
    assert f"Last good checkpoint: {path} (epoch 3)" in str(e.value)
    assert torch.load(path, weights_only=True)["epoch"] == 3
    # From scratch with an absurd rate: NaN/inf within the first epoch, no checkpoint yet.
    with pytest.raises(TrainingDiverged, match=r"is not finite at epoch 1, step \d of 2.*none") as e:
        run_train(tmp_path, data, tiny_params(epochs=1, lr=1e30, max_loss=1e38), "nan")
    assert not (tmp_path / "nan" / "ckpt" / "last.pt").exists()


@pytest.mark.slow
def test_guard_in_the_stage_exits_with_one_line(tmp_path: Path, data: tuple[Path, Path]):
    params = write_params(tmp_path / "params.yaml", tiny_params(epochs=1, max_loss=0.01))
    assert_clear_error(run_stage("train", *stage_cmd(tmp_path, data, params, "s"), cwd=tmp_path), "training diverged")


@pytest.mark.slow
def test_sigkill_then_rerun_is_bit_identical(tmp_path: Path, reference: Path, data: tuple[Path, Path]):
    """The stage killed (SIGKILL) once its first checkpoint exists, then rerun, as `dvc repro` would."""
    params = write_params(tmp_path / "params.yaml", tiny_params())
    cmd = stage_command("train", *stage_cmd(tmp_path, data, params, "killed"))
    ckpt = tmp_path / "killed" / "ckpt" / "last.pt"
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert torch.load(ckpt, weights_only=True)["epoch"] < 3 and not (tmp_path / "killed" / "model").exists()
    done = run_stage("train", *stage_cmd(tmp_path, data, params, "killed"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    assert_same_weights(final_state(reference, "run")[0], final_state(tmp_path, "killed")[0])
    assert live_metrics(reference, "run") == live_metrics(tmp_path, "killed")


def test_bf16_autocast_and_channels_last_run_on_the_cpu(tmp_path: Path, data: tuple[Path, Path]):
    final = run_train(tmp_path, data, tiny_params(epochs=1, amp="bf16", channels_last=True), "fast")
    assert all(np.isfinite(v) for v in final.values())
    state, info = final_state(tmp_path, "fast")
    assert all(v.dtype == torch.float32 for v in state.values())  # autocast leaves the weights fp32
    assert info["params"]["train"]["amp"] == "bf16"


def _one_epoch_on(device: str, data: tuple[Path, Path]) -> dict[str, torch.Tensor]:
    """Weights after one epoch of the paper's loop on `device` (no DVCLive: not on GPU images)."""
    from alexnet.data.stats import load_stats
    from alexnet.data.store import PreparedStore
    from alexnet.model.net import build_model
    from alexnet.runtime.backend import configure_determinism
    from alexnet.runtime.seeds import stream_seed
    from alexnet.training import distributed
    from alexnet.training.loop import train_one_epoch
    from alexnet.training.optim import build_optimizer
    from alexnet.training.state import seed_everything
    from alexnet.training.train import _make_loaders

    params = tiny_params(device=device)
    configure_determinism(True)
    ctx = distributed.setup(device)
    store = PreparedStore(data[0])
    seed_everything(stream_seed(0, "init", 0))
    model = build_model(params.model, store.num_classes).to(ctx.device)
    loader, _ = _make_loaders(store, load_stats(data[1]), params, ctx, 0, model.input_normalization)
    train_one_epoch(model, loader, build_optimizer(model.parameters(), params.train), 1, params, ctx, "none")
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_is_deterministic_and_close_to_the_cpu(data: tuple[Path, Path]):
    """train.deterministic on a GPU: two runs bit-identical; the CPU run agrees to float tolerance."""
    a, b = _one_epoch_on("cuda", data), _one_epoch_on("cuda", data)
    assert_same_weights(a, b)
    cpu = _one_epoch_on("cpu", data)
    for k in cpu:
        # cuDNN convolves in TF32 by default: about 1e-4 apart after one epoch (measured on an H200).
        torch.testing.assert_close(a[k], cpu[k], rtol=1e-3, atol=5e-4)
