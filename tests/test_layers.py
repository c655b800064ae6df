"""Tests for alexnet/model/layers.py's GroupedConv2d: the dense block-diagonal form computes the grouped
convolution (forward and gradients, float tolerance), keeps the net's parameters and state_dict, and
its off-diagonal blocks stay exactly zero through training. (The LRN's tests: tests/test_model.py.)"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from alexnet.config import ModelConfig, TrainConfig
from alexnet.model.layers import GroupedConv2d
from alexnet.model.net import build_model, count_parameters
from alexnet.training.optim import build_optimizer


def _pair(groups: int, c_in: int = 8, c_out: int = 12, kernel: int = 3) -> tuple[GroupedConv2d, GroupedConv2d]:
    torch.manual_seed(0)
    grouped = GroupedConv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups).double()
    dense = GroupedConv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, dense=True).double()
    dense.load_state_dict(grouped.state_dict())
    return grouped, dense


@pytest.mark.parametrize("groups", [2, 4])
def test_dense_form_is_the_grouped_convolution_forward_and_backward(groups):
    grouped, dense = _pair(groups)
    x = torch.randn(3, 8, 9, 9, dtype=torch.float64, requires_grad=True)
    xd = x.detach().clone().requires_grad_(True)
    out, out_d = grouped(x), dense(xd)
    torch.testing.assert_close(out_d, out, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(out)
    out.backward(g)
    out_d.backward(g)
    torch.testing.assert_close(xd.grad, x.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dense.weight.grad, grouped.weight.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dense.bias.grad, grouped.bias.grad, rtol=1e-12, atol=1e-12)
    assert dense.weight.shape == grouped.weight.shape == (12, 8 // groups, 3, 3)


def test_the_block_diagonal_weight_by_hand():
    """Group i's kernels see only input maps [i * in/g, (i+1) * in/g): zero elsewhere."""
    _, dense = _pair(2, c_in=4, c_out=6)
    w = dense.block_diagonal()
    assert w.shape == (6, 4, 3, 3)
    assert torch.equal(w[:3, :2], dense.weight[:3]) and torch.equal(w[3:, 2:], dense.weight[3:])
    assert not w[:3, 2:].any() and not w[3:, :2].any()


def test_the_paper_net_in_dense_form_is_the_same_net():
    """Same parameters, names and shapes, same initial weights (bit for bit), the same function to
    float tolerance; a state_dict of either form loads into the other."""
    cfg = ModelConfig(width=0.25)
    grouped = build_model(cfg, 10, generator=torch.Generator().manual_seed(0))
    dense = build_model(replace(cfg, grouped_conv="dense"), 10, generator=torch.Generator().manual_seed(0))
    a, b = grouped.state_dict(), dense.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert count_parameters(grouped) == count_parameters(dense)
    assert [n for n, m in dense.named_modules() if getattr(m, "dense", False)] == [
        "features.conv2", "features.conv4", "features.conv5"]  # conv3 sees both columns: one group
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 50
    grouped.eval(), dense.eval()
    with torch.no_grad():
        torch.testing.assert_close(dense(x), grouped(x), rtol=1e-4, atol=1e-4)
    grouped.load_state_dict(dense.state_dict())  # strict: every key and shape fits


def test_training_in_dense_form_keeps_the_columns_apart():
    """Five SGD steps of the paper net in each form from the same weights: the off-diagonal blocks
    of every dense conv are exactly zero after them (no parameter holds them, so no step moves
    them), and the two nets' weights stay within float tolerance of each other."""
    cfg = ModelConfig(width=0.125, dropout=0.0)
    nets = {form: build_model(replace(cfg, grouped_conv=form), 10, generator=torch.Generator().manual_seed(0))
            for form in ("grouped", "dense")}
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 3, 224, 224, generator=gen) * 50, torch.randint(0, 10, (8,), generator=gen)
    for net in nets.values():
        opt = build_optimizer(net, TrainConfig(lr=0.01))
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    dense_convs = [m for m in nets["dense"].modules() if isinstance(m, GroupedConv2d) and m.groups == 2]
    assert len(dense_convs) == 3
    for conv in dense_convs:
        w = conv.block_diagonal()
        half_out, half_in = conv.out_channels // 2, conv.in_channels // 2
        assert not w[:half_out, half_in:].any() and not w[half_out:, :half_in].any()
    moved = False
    start = build_model(cfg, 10, generator=torch.Generator().manual_seed(0)).state_dict()
    for (name, a), b in zip(nets["grouped"].state_dict().items(), nets["dense"].state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=name)
        moved |= not torch.equal(a, start[name])
    assert moved


@pytest.mark.slow
def test_the_lrn_compiles_whole_with_the_formulas_gradient():
    """torch.compile (inductor, fullgraph: no graph break) traces the LRN's autograd.Function whole,
    forward and written-out backward, so a compiled net fuses its elementwise kernels: values and
    gradients equal the eager ones, and gradcheck (float64 finite differences) passes through the
    compiled layer. Two columns, fewer channels per column than the window."""
    from alexnet.model.layers import LocalResponseNorm

    lrn = LocalResponseNorm(5, 1e-4, 0.75, 2.0, groups=2).double()
    compiled = torch.compile(lrn, fullgraph=True)
    x = (torch.randn(2, 8, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 30)
    x = x.relu().requires_grad_(True)
    xc = x.detach().clone().requires_grad_(True)
    g = torch.randn(2, 8, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lrn(x).backward(g)
    out = compiled(xc)
    out.backward(g)
    torch.testing.assert_close(out, lrn(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xc.grad, x.grad, rtol=1e-12, atol=1e-12)
    # gradcheck differentiates twice through one graph: AOTAutograd must not donate its buffers
    with torch._functorch.config.patch(donated_buffer=False):
        assert torch.autograd.gradcheck(torch.compile(lrn, fullgraph=True), (x.detach().requires_grad_(True),))
