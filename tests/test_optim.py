"""alexnet.training.optim.CorrectlyRoundedAdam and correctly_rounded_sqrt: Adam whose bits do not depend on
the CPU, checked against torch.optim.Adam and against square roots computed independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.training.optim import CorrectlyRoundedAdam, correctly_rounded_sqrt


def test_the_square_root_is_correctly_rounded():
    """A float64 square root rounded once to float32 is the correctly rounded float32 root (53 bits
    are more than twice 24 + 2): every value must equal it."""
    x = np.random.default_rng(0).random(100_000, dtype=np.float32) * np.float32(1e-3)
    exact = np.sqrt(x.astype(np.float64)).astype(np.float32)
    ours = correctly_rounded_sqrt(torch.from_numpy(x)).numpy()
    assert ours.dtype == np.float32 and np.array_equal(ours, exact)


def _train(opt_class, steps=5):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = opt_class(net.parameters(), lr=3e-3)
    x, y = torch.randn(32, 20), torch.randn(32, 4)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()], opt


def test_it_is_torch_adam_but_for_the_square_root():
    ours, opt = _train(CorrectlyRoundedAdam)
    theirs, _ = _train(torch.optim.Adam)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)  # a last-bit root moves a step by ulps
    state = opt.state[next(iter(opt.state))]
    assert state["step"] == 5 and set(state) == {"step", "exp_avg", "exp_avg_sq"}


def test_one_step_by_hand():
    """Adam's first step moves each weight by lr * g / (|g| + eps) (bias-corrected moments)."""
    w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    opt = CorrectlyRoundedAdam([w], lr=0.1, eps=1e-8)
    (w * torch.tensor([0.3, -4.0, 0.0])).sum().backward()
    opt.step()
    expected = torch.tensor([1.0 - 0.1 * 0.3 / (0.3 + 1e-8), -2.0 + 0.1 * 4.0 / (4.0 + 1e-8), 0.5])
    torch.testing.assert_close(w.detach(), expected, rtol=1e-6, atol=1e-7)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="CorrectlyRoundedAdam"):
        CorrectlyRoundedAdam([torch.zeros(1, requires_grad=True)], lr=0)
