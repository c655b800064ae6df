"""Tests for alexnet/optim.py and alexnet/train.py (stage train).

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
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from alexnet.cli import PipelineError
from alexnet.config import Params, TrainConfig, params_from_dict, to_dict
from alexnet.optim import PaperSGD, Schedule, build_optimizer, set_lr

REPO = Path(__file__).resolve().parents[1]

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
    expect = w0 - 0.01 * torch.tensor([1.0, 2.0, 3.0]) - 0.0005 * 0.01 * w0
    torch.testing.assert_close(w.detach(), expect)
    with pytest.raises(ValueError):
        PaperSGD([w], lr=-1.0)


def test_build_optimizer_follows_update_rule():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer(p, TrainConfig(update_rule="paper")), PaperSGD)
    sgd = build_optimizer(p, TrainConfig(update_rule="pytorch", lr=0.02))
    assert type(sgd) is torch.optim.SGD
    g = sgd.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["nesterov"], g["dampening"]) == (0.02, 0.9, 0.0005, False, 0)


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
