"""alexnet.training.optim: PaperSGD's foreach update against the per-tensor update it replaced, bit
for bit; CorrectlyRoundedAdam and correctly_rounded_sqrt, Adam whose bits do not depend on the CPU,
checked against torch.optim.Adam and against square roots computed independently. (PaperSGD against
numpy and the bias conventions: tests/test_train.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.config import ModelConfig, TrainConfig
from alexnet.model.net import build_model
from alexnet.training.optim import CorrectlyRoundedAdam, PaperSGD, build_optimizer, correctly_rounded_sqrt, set_lr


def _per_tensor_paper_step(params: list[torch.Tensor], velocities: dict[int, torch.Tensor], lr: float,
                           momentum: float, wd: float) -> None:
    """The paper's update one tensor at a time: PaperSGD's code before it used foreach ops."""
    for p in params:
        if p.grad is None:
            continue
        v = velocities.setdefault(id(p), torch.zeros_like(p))
        v.mul_(momentum).add_(p, alpha=-wd * lr).add_(p.grad, alpha=-lr)
        p.add_(v)


@pytest.mark.parametrize("mults", [(1.0, 1.0), (2.0, 0.0)])
def test_the_foreach_update_is_the_per_tensor_update_bit_for_bit(mults):
    """30 steps on the paper net's parameters (the tiny pipeline's width), random gradients, an lr
    drop halfway, weight decay and momentum, the bias lr and decay multipliers, one frozen tensor."""
    cfg = TrainConfig(lr=0.01, momentum=0.9, weight_decay=0.0005, bias_lr_mult=mults[0], bias_decay_mult=mults[1])
    net = build_model(ModelConfig(width=0.25), 10, generator=torch.Generator().manual_seed(0))
    start = {n: p.detach().clone() for n, p in net.named_parameters()}
    ours = build_optimizer(net, cfg)
    assert isinstance(ours, PaperSGD) and len(list(net.parameters())) == 16
    theirs = {n: p.detach().clone() for n, p in net.named_parameters()}
    velocities: dict[int, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(1)
    for step in range(30):
        lr = cfg.lr if step < 15 else cfg.lr / 10
        set_lr(ours, lr)
        for name, p in net.named_parameters():
            # conv3.bias frozen: no gradient, so neither path touches it
            grad = None if name == "features.conv3.bias" else torch.randn(p.shape, generator=gen) * 0.1
            p.grad, theirs[name].grad = grad, None if grad is None else grad.clone()
        ours.step()
        for bias in (False, True):
            group = [t for n, t in theirs.items() if n.endswith("bias") == bias]
            _per_tensor_paper_step(group, velocities, lr * (mults[0] if bias else 1.0), cfg.momentum,
                                   cfg.weight_decay * (mults[1] if bias else 1.0))
    for name, p in net.named_parameters():
        assert torch.equal(p.detach(), theirs[name]), name
        if name != "features.conv3.bias":
            assert torch.equal(ours.state[p]["velocity"], velocities[id(theirs[name])]), name
            assert not torch.equal(p.detach(), start[name]), name
    assert "velocity" not in ours.state[dict(net.named_parameters())["features.conv3.bias"]]


def test_paper_sgd_refuses_sparse_gradients():
    w = torch.zeros(3, requires_grad=True)
    w.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        PaperSGD([w], lr=0.1).step()


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
