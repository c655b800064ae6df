"""alexnet.model.net: shapes, parameter count, groups, LRN, init, switches, torchvision weights, files."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from alexnet.config import ModelConfig
from alexnet.errors import PipelineError
from alexnet.model.layers import LocalResponseNorm
from alexnet.model.net import (
    AlexNet,
    TorchvisionAlexNet,
    architecture,
    build_model,
    count_parameters,
    layer_shapes,
    load_torchvision_state_dict,
    load_trained,
    save_trained,
)

EXPECTED = Path(__file__).parent / "expected" / "model_forward.json"
# Regenerate the stored seeded-forward output on purpose only (pytorch/vision style):
#   EXPECTTEST_ACCEPT=1 python -m pytest tests/test_model.py -k seeded_forward
ACCEPT = os.environ.get("EXPECTTEST_ACCEPT") == "1"


@pytest.fixture(scope="module")
def paper_net() -> AlexNet:
    torch.manual_seed(0)
    return build_model(ModelConfig(), 1000)


def test_parameter_count_is_the_papers(paper_net):
    assert count_parameters(paper_net) == 60_965_224


def test_architecture_lists_the_papers_layers(paper_net):
    """models/seed<N>/architecture.json, which the report prints: Section 3's shapes, by hand."""
    arch = architecture(paper_net)
    assert [layer["name"] for layer in arch["layers"]] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
                                                           "fc8"]
    conv2 = arch["layers"][1]
    assert (conv2["out_channels"], conv2["kernel"], conv2["in_channels_per_group"], conv2["groups"]) == (256, [5, 5], 48, 2)
    assert conv2["parameters"] == 256 * 5 * 5 * 48 + 256
    assert arch["layers"][-1] == {"name": "fc8", "kind": "fc", "in_features": 4096, "out_features": 1000,
                                  "parameters": 4096 * 1000 + 1000}
    assert (arch["parameters"], arch["num_classes"], arch["width"]) == (60_965_224, 1000, 1.0)
    assert sum(layer["parameters"] for layer in arch["layers"]) == arch["parameters"]


def test_parameter_count_by_hand_for_one_gpu_net():
    # Section 3.2 footnote: every conv layer but the last halved, fc layers kept, no groups.
    conv = [(3, 48, 11), (48, 128, 5), (128, 192, 3), (192, 192, 3), (192, 256, 3)]
    expected = sum(cin * cout * k * k + cout for cin, cout, k in conv)
    expected += 9216 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    with torch.device("meta"):  # shapes only: skip allocating and initialising 60M weights
        net = build_model(ModelConfig(groups=1), 1000)
    assert count_parameters(net) == expected
    assert all(m.groups == 1 for m in net.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("size", [224, 227])
def test_every_layer_output_shape(paper_net, size):
    if size == 224:
        net = paper_net
    else:
        with torch.device("meta"):  # shapes propagate without allocating weights
            net = build_model(ModelConfig(input_size=227), 1000)
    shapes = layer_shapes(net, size)
    expected = {"conv1": (96, 55, 55), "pool1": (96, 27, 27), "conv2": (256, 27, 27), "pool2": (256, 13, 13),
                "conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6)}
    assert {k: shapes[k] for k in expected} == expected
    # The paper's neuron counts per layer (Section 3.5) follow from those maps.
    assert [int(np.prod(shapes[k])) for k in ("conv1", "conv2", "conv3", "conv4", "conv5")] == \
        [290_400, 186_624, 64_896, 64_896, 43_264]
    assert net.conv1.padding == ((2, 2) if size == 224 else (0, 0))
    small = build_model(ModelConfig(input_size=size, width=0.25), 1000).eval()
    with torch.no_grad():
        assert small(torch.zeros(2, 3, size, size)).shape == (2, 1000)
    assert layer_shapes(small)["pool5"] == (64, 6, 6)


def test_two_groups_keep_the_columns_apart(paper_net):
    """conv2/conv4/conv5 outputs of one column depend only on that column's inputs; conv3 sees both."""
    f = paper_net.features
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, cin in (("conv2", 96), ("conv4", 384), ("conv5", 384)):
            conv = getattr(f, name)
            x = torch.rand(1, cin, 13, 13, generator=gen)
            y = conv(x)
            x2 = x.clone()
            x2[:, cin // 2:] += torch.rand(1, cin // 2, 13, 13, generator=gen)  # perturb the second column
            y2 = conv(x2)
            half = y.shape[1] // 2
            assert torch.equal(y[:, :half], y2[:, :half]), name
            assert (y[:, half:] - y2[:, half:]).abs().amin(dim=(2, 3)).gt(0).all(), name
        x = torch.rand(1, 256, 13, 13, generator=gen)
        x2 = x.clone()
        x2[:, 128:] += 1.0
        y, y2 = f.conv3(x), f.conv3(x2)
        assert (y - y2).abs().amax(dim=(2, 3)).gt(0).all()  # every conv3 map sees the second column


def _lrn_paper_numpy(a: np.ndarray, n: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """The paper's Section 3.3 formula, literally: sum over j = max(0, i-n/2) .. min(N-1, i+n/2)."""
    channels = a.shape[1]
    b = np.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        b[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
    return b


@pytest.mark.parametrize("divide", [True, False])
def test_lrn_matches_the_papers_formula(divide):
    rng = np.random.default_rng(0)
    # Large activations so the normaliser differs clearly from k**beta and the conventions differ.
    a = rng.uniform(0, 300, size=(2, 7, 3, 4))
    lrn = LocalResponseNorm(5, 1e-4, 0.75, 2.0, divide_alpha_by_n=divide)
    got = lrn(torch.from_numpy(a)).numpy()
    expected = _lrn_paper_numpy(a, 5, 1e-4 / 5 if divide else 1e-4, 0.75, 2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    other = _lrn_paper_numpy(a, 5, 1e-4 if divide else 1e-4 / 5, 0.75, 2.0)
    assert np.abs(got - other).max() > 1.0  # the two conventions really are told apart
    # edge channels 0 and 6 see only 3 neighbours (themselves included), hand-computed
    s0 = (a[:, 0:3] ** 2).sum(axis=1)
    np.testing.assert_allclose(got[:, 0], a[:, 0] / (2.0 + (1e-4 / 5 if divide else 1e-4) * s0) ** 0.75, rtol=1e-12)


def _lrn_columns_numpy(a: np.ndarray, n: int, alpha: float, beta: float, k: float, groups: int) -> np.ndarray:
    """Per-column LRN, independently: split the channels into `groups` blocks, normalise each alone."""
    return np.concatenate([_lrn_paper_numpy(block, n, alpha, beta, k) for block in np.split(a, groups, axis=1)], axis=1)


@pytest.mark.parametrize("channels", [6, 10, 12])
def test_lrn_per_column_matches_an_independent_computation(channels):
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 300, size=(2, channels, 3, 2))
    lrn = LocalResponseNorm(5, 1e-4, 0.75, 2.0, divide_alpha_by_n=True, groups=2)
    got = lrn(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(got, _lrn_columns_numpy(a, 5, 2e-5, 0.75, 2.0, 2), rtol=1e-12)
    # The last map of column 1 sees only its own column: channels h-2, h-1 (and itself), by hand.
    h = channels // 2
    s = (a[:, h - 3:h] ** 2).sum(axis=1)
    np.testing.assert_allclose(got[:, h - 1], a[:, h - 1] / (2.0 + 2e-5 * s) ** 0.75, rtol=1e-12)
    # One span over all maps (Caffe) differs at the boundary and nowhere else.
    single = LocalResponseNorm(5, 1e-4, 0.75, 2.0, divide_alpha_by_n=True, groups=1)(torch.from_numpy(a)).numpy()
    boundary = [h - 2, h - 1, h, h + 1]
    assert np.abs(got[:, boundary] - single[:, boundary]).min() > 0
    inner = [c for c in range(channels) if c not in boundary]
    np.testing.assert_array_equal(got[:, inner], single[:, inner])


@pytest.mark.parametrize("divide", [True, False])
def test_lrn_per_column_gradient_is_the_true_one(divide):
    """gradcheck of the written-out backward with two columns, and equality with autograd of the formula."""
    lrn = LocalResponseNorm(5, 1e-3, 0.75, 2.0, divide_alpha_by_n=divide, groups=2)
    x = (torch.rand(2, 8, 3, 3, dtype=torch.float64) * 60).requires_grad_()
    assert torch.autograd.gradcheck(lrn, (x,))
    alpha = 1e-3 / 5 if divide else 1e-3

    def formula(t):  # autograd through the formula, each column on its own
        outs = []
        for block in t.split(4, dim=1):
            sq = block * block
            d = torch.stack([sq[:, max(0, i - 2):i + 3].sum(1) for i in range(4)], dim=1)
            outs.append(block / (2.0 + alpha * d) ** 0.75)
        return torch.cat(outs, dim=1)

    g = torch.rand(2, 8, 3, 3, dtype=torch.float64)
    (ours,) = torch.autograd.grad(lrn(x), x, g)
    (ref,) = torch.autograd.grad(formula(x), x, g)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-14)


def test_lrn_per_column_keeps_channels_last():
    lrn = LocalResponseNorm(5, 1e-4, 0.75, 2.0, groups=2)
    x = torch.rand(2, 12, 5, 4, dtype=torch.float64) * 200
    y = lrn(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y, lrn(x), rtol=1e-14, atol=0)
    assert y.is_contiguous(memory_format=torch.channels_last)


def _column_one_activations(features: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Column 1's half of every layer's output from conv1 to pool2 (conv3's input), and conv3's output."""
    out = {}
    with torch.no_grad():
        for name, module in features.named_children():
            x = module(x)
            if name == "conv3":
                out[name] = x.clone()
                break
            out[name] = x[:, :x.shape[1] // 2].clone()
    return out


@pytest.mark.parametrize("span", ["column", "all"])
def test_a_change_in_column_two_leaves_column_one_bit_identical_up_to_conv3(span):
    """The reader's probe: perturb only column 2's kernels before conv3 (conv1's second 48 kernels and
    conv2's second group), and column 1's activations must not move by a single bit until conv3,
    where the columns meet. With Caffe's single LRN span (span "all") they do move: the probe can fail."""
    torch.manual_seed(0)
    cfg = ModelConfig(lrn_span=span)
    net = AlexNet(cfg, 1000)
    net.init_weights(torch.Generator().manual_seed(0))
    features = net.features
    assert features.norm1.groups == (2 if span == "column" else 1)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 60
    before = _column_one_activations(features, x)
    with torch.no_grad():
        features.conv1.weight[48:] *= 10.0  # column 2's conv1 kernels, much larger maps
        features.conv1.bias[48:] += 1.0
        features.conv2.weight[128:] += torch.randn(128, 48, 5, 5, generator=torch.Generator().manual_seed(2)) * 0.05
    after = _column_one_activations(features, x)
    moved = {name: (after[name] - before[name]).abs().max().item() for name in before}
    assert moved["conv3"] > 0  # conv3 sees both columns
    if span == "column":
        assert all(moved[name] == 0 for name in moved if name != "conv3"), moved
    else:
        assert moved["conv1"] == moved["act1"] == 0  # the convolution itself keeps them apart ...
        assert moved["norm1"] > 0 and moved["conv2"] > 0  # ... the single-span LRN does not


def test_lrn_span_per_net():
    with torch.device("meta"):
        two = build_model(ModelConfig(width=0.25), 10)
        one = build_model(ModelConfig(width=0.25, groups=1), 10)
        caffe = build_model(ModelConfig(width=0.25, lrn_span="all"), 10)
    assert (two.features.norm1.groups, two.features.norm2.groups) == (2, 2)
    assert (one.features.norm1.groups, one.features.norm2.groups) == (1, 1)  # one column, one span
    assert (caffe.features.norm1.groups, caffe.features.norm2.groups) == (1, 1)


def test_lrn_equals_pytorchs_and_has_the_same_gradient():
    x = (torch.rand(2, 9, 5, 5, dtype=torch.float64) * 200).requires_grad_()
    ours = LocalResponseNorm(5, 1e-4, 0.75, 2.0, divide_alpha_by_n=True)
    ref = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    y1, y2 = ours(x), ref(x)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=0)
    g = torch.rand_like(y1)
    (d1,) = torch.autograd.grad(y1, x, g)
    (d2,) = torch.autograd.grad(y2, x, g)
    torch.testing.assert_close(d1, d2, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("channels", [1, 2, 3, 9])
@pytest.mark.parametrize("divide", [True, False])
def test_lrn_written_out_gradient_is_the_true_one(channels, divide):
    """gradcheck (finite differences, float64), also with fewer channels than the window."""
    lrn = LocalResponseNorm(5, 1e-3, 0.75, 2.0, divide_alpha_by_n=divide)
    x = (torch.rand(2, channels, 4, 3, dtype=torch.float64) * 60).requires_grad_()
    assert torch.autograd.gradcheck(lrn, (x,))


def test_lrn_channels_last_gives_the_same_values_and_gradients():
    lrn = LocalResponseNorm(5, 1e-4, 0.75, 2.0)
    x = torch.rand(3, 11, 6, 7, dtype=torch.float64) * 200
    g = torch.rand_like(x)
    out = []
    for layout in (x, x.to(memory_format=torch.channels_last)):
        xi = layout.clone().requires_grad_()
        y = lrn(xi)
        out.append((y.detach(), torch.autograd.grad(y, xi, g)[0]))
    # Not bit for bit: vectorised and scalar loop tails round pow and division differently.
    torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-14, atol=0)
    torch.testing.assert_close(out[1][1], out[0][1], rtol=1e-12, atol=1e-15)
    assert out[1][0].is_contiguous(memory_format=torch.channels_last)  # the layout is kept


def test_lrn_in_bfloat16_is_computed_in_float32():
    x = torch.rand(2, 8, 4, 4) * 200
    lrn = LocalResponseNorm(5, 1e-4, 0.75, 2.0)
    y = lrn(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, lrn(x.bfloat16().float()).bfloat16(), rtol=0, atol=0)


def test_lrn_sits_after_relu_in_conv1_and_conv2_only(paper_net):
    names = [n for n, _ in paper_net.features.named_children()]
    assert names[:8] == ["conv1", "act1", "norm1", "pool1", "conv2", "act2", "norm2", "pool2"]
    assert isinstance(paper_net.features.norm1, LocalResponseNorm)
    assert sum(isinstance(m, LocalResponseNorm) for m in paper_net.modules()) == 2
    assert (paper_net.features.norm1.size, paper_net.features.norm1.k, paper_net.features.norm1.alpha,
            paper_net.features.norm1.beta) == (5, 2.0, 1e-4, 0.75)
    pools = [m for m in paper_net.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] * 3


def test_init_statistics_and_biases(paper_net):
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    layers = {**dict(paper_net.features.named_children()), **dict(paper_net.classifier.named_children())}
    learned = {k: m for k, m in layers.items() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert sorted(learned) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    for name, m in learned.items():
        w = m.weight.detach().double()
        n = w.numel()
        # mean within 5 standard errors of 0, std within 5 standard errors of 0.01
        assert abs(w.mean().item()) < 5 * 0.01 / n ** 0.5, name
        assert abs(w.std().item() - 0.01) < 5 * 0.01 / (2 * n) ** 0.5 + 1e-6, name
        assert torch.all(m.bias == (1.0 if name in ones else 0.0)), name
    net = build_model(ModelConfig(width=0.25, init_bias_one=False, init_std=0.02), 10)
    assert all(torch.all(m.bias == 0) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert abs(net.classifier.fc6.weight.std().item() - 0.02) < 2e-4


def test_he_init_scales_every_layer_but_fc8_by_its_fan_in():
    net = build_model(ModelConfig(width=0.25, init="he", init_std=0.01), 10)
    layers = {**dict(net.features.named_children()), **dict(net.classifier.named_children())}
    fan_in = {"conv1": 3 * 11 * 11, "conv2": 12 * 5 * 5, "conv3": 64 * 3 * 3, "conv4": 48 * 3 * 3,
              "conv5": 48 * 3 * 3, "fc6": 64 * 6 * 6, "fc7": 1024}
    for name, fan in fan_in.items():
        w = layers[name].weight.detach().double()
        expected = (2.0 / fan) ** 0.5
        assert abs(w.std().item() - expected) < 5 * expected / (2 * w.numel()) ** 0.5, name
    assert abs(layers["fc8"].weight.std().item() - 0.01) < 1e-3


def test_input_scale_multiplies_the_input_before_conv1():
    cfg = ModelConfig(width=0.25, dropout=0.0)
    plain = build_model(cfg, 10, generator=torch.Generator().manual_seed(0)).eval()
    scaled = build_model(dataclasses.replace(cfg, input_scale=0.25), 10, generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 60
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), plain(x * 0.25))
        torch.testing.assert_close(scaled.fc7_features(x), plain.fc7_features(x * 0.25))
        assert not torch.allclose(scaled(x), plain(x))


def test_same_generator_same_weights_and_outputs():
    cfg = ModelConfig(width=0.25)
    a = build_model(cfg, 10, generator=torch.Generator().manual_seed(3))
    b = build_model(cfg, 10, generator=torch.Generator().manual_seed(3))
    c = build_model(cfg, 10, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_seeded_forward_matches_stored_output():
    # init_std 0.05 so the logits depend visibly on the input (with 0.01 the biases dominate).
    cfg = ModelConfig(width=0.25, init_std=0.05)
    net = build_model(cfg, 10, generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 60
    with torch.no_grad():
        got = net(x)
    if ACCEPT or not EXPECTED.exists():
        if not ACCEPT:
            pytest.fail(f"{EXPECTED} missing; run with EXPECTTEST_ACCEPT=1 to create it")
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(json.dumps({"config": dataclasses.asdict(cfg), "logits": got.tolist()}, indent=1) + "\n")
    expected = torch.tensor(json.loads(EXPECTED.read_text())["logits"])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)
    assert (got[0] - got[1]).abs().max() > 1.0  # the stored output is sensitive to the input


def test_switches_change_the_network():
    net = build_model(ModelConfig(width=0.25, lrn=False, overlapping_pool=False, activation="tanh",
                                  dropout=0.3, conv6=True), 10)
    assert not any(isinstance(m, LocalResponseNorm) for m in net.modules())
    assert [(p.kernel_size, p.stride) for p in net.modules() if isinstance(p, nn.MaxPool2d)] == [(2, 2)] * 3
    assert any(isinstance(m, nn.Tanh) for m in net.modules()) and not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    shapes = layer_shapes(net)
    assert shapes["pool1"][1:] == (27, 27) and shapes["pool5"][1:] == (6, 6)  # floor((55-2)/2)+1 = 27
    assert shapes["conv6"] == (64, 6, 6) and net.features.conv6.groups == 2
    assert net.features.conv6.bias.eq(0).all()  # not among the paper's bias-1 layers
    assert net.classifier.fc6.in_features == 64 * 6 * 6
    # width 0.25: 24-64-96-96-64 conv, 1024-1024 fc
    convs = [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [24, 64, 96, 96, 64, 64]
    assert net.classifier.fc7.out_features == 1024 and net.classifier.fc8.out_features == 10
    assert net.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 10)
    # 227 input with non-overlapping pools: 55 -> 27 -> 13 -> 6
    net = build_model(ModelConfig(width=0.25, input_size=227, overlapping_pool=False), 10)
    assert layer_shapes(net)["pool5"] == (64, 6, 6)


def test_fc7_features_are_post_relu_fc7_without_dropout():
    net = build_model(ModelConfig(width=0.25, init_std=0.05), 10, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(2)) * 50
    captured = {}
    net.classifier.act7.register_forward_hook(lambda m, i, o: captured.update(out=o))
    net.eval()
    with torch.no_grad():
        logits = net(x)
        net.train()  # fc7_features ignores dropout whatever the mode
        feats = net.fc7_features(x)
    assert feats.shape == (3, 1024)
    torch.testing.assert_close(feats, captured["out"], rtol=0, atol=0)
    torch.testing.assert_close(net.classifier.fc8(feats), logits, rtol=1e-6, atol=1e-5)
    assert feats.min() >= 0 and (feats > 0).any()


def test_torchvision_state_dict_loads_and_matches(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    ours = load_torchvision_state_dict(path)
    assert isinstance(ours, TorchvisionAlexNet) and ours.input_normalization == "torchvision"
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert ours.conv1 is ours.features[0] and ours.conv1.out_channels == 64
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
        big = torch.randn(1, 3, 260, 260, generator=torch.Generator().manual_seed(0))  # 7x7 maps: pooled
        torch.testing.assert_close(ours(big), reference(big), rtol=0, atol=0)
        fc7 = torch.flatten(reference.avgpool(reference.features(x)), 1)
        fc7 = reference.classifier[:6](fc7)  # dropout is identity in eval mode
        torch.testing.assert_close(ours.fc7_features(x), fc7, rtol=0, atol=0)
    # a paper-net file is not a torchvision AlexNet
    torch.save(build_model(ModelConfig(width=0.25), 1000).state_dict(), tmp_path / "paper.pth")
    with pytest.raises(PipelineError, match="do not fit"):
        load_torchvision_state_dict(tmp_path / "paper.pth")


def test_build_model_arch_and_normalization():
    net = build_model(ModelConfig(arch="torchvision", dropout=0.2), 7)
    assert isinstance(net, TorchvisionAlexNet) and net.classifier[6].out_features == 7
    assert net.classifier[0].p == 0.2
    assert build_model(ModelConfig(width=0.25), 7).input_normalization == "paper"


def test_save_and_load_trained_round_trip(tmp_path):
    cfg = ModelConfig(width=0.25, conv6=True, groups=1)
    net = build_model(cfg, 10, generator=torch.Generator().manual_seed(0))
    info = {"epochs": 3, "metrics": {"top1_error": np.float64(12.5)}, "versions": {"torch": torch.__version__}}
    path = tmp_path / "models" / "model.pt"
    save_trained(path, net, cfg, 10, info)
    raw = torch.load(path, weights_only=True)  # a plain dict, safe to load
    assert raw["num_classes"] == 10 and raw["model_config"]["conv6"] is True
    loaded, got_info = load_trained(path)
    assert got_info == {"epochs": 3, "metrics": {"top1_error": 12.5}, "versions": {"torch": str(torch.__version__)}}
    assert type(got_info["versions"]["torch"]) is str and not loaded.training
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net.eval()(x), rtol=0, atol=0)
    assert not list(tmp_path.glob("models/.*"))  # no temp file left behind


def test_load_trained_rejects_other_architectures_and_corrupt_files(tmp_path):
    cfg = ModelConfig(width=0.25)
    path = tmp_path / "model.pt"
    save_trained(path, build_model(cfg, 10), cfg, 10, {})
    # another architecture: the recorded config says width 0.5, the weights are 0.25's
    raw = torch.load(path, weights_only=True)
    raw["model_config"]["width"] = 0.5
    torch.save(raw, tmp_path / "other.pt")
    with pytest.raises(PipelineError, match="do not fit"):
        load_trained(tmp_path / "other.pt")
    # truncated file
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PipelineError, match="cannot be read"):
        load_trained(tmp_path / "cut.pt")
    # a bare state_dict is not a trained-model file
    torch.save(build_model(cfg, 10).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(PipelineError, match="not a trained-model file"):
        load_trained(tmp_path / "bare.pt")
    with pytest.raises(PipelineError, match="not found"):
        load_trained(tmp_path / "missing.pt")


def test_dropout_is_the_papers_on_fc6_and_fc7_outputs():
    """Section 4.2: the outputs of fc6 and fc7 are zeroed with p = 0.5 in training; the paper
    multiplies them by 0.5 at test time, inverted dropout doubles the kept ones in training
    instead: the same net up to a constant factor on fc7/fc8's inputs, which their weights absorb."""
    net = build_model(ModelConfig(width=0.25), 10, generator=torch.Generator().manual_seed(0))
    names = [n for n, _ in net.classifier.named_children()]
    assert names == ["fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"]  # after fc6/fc7, not before them
    drop = net.classifier.drop6
    x = torch.rand(4, 1000, generator=torch.Generator().manual_seed(1)) + 0.5
    drop.train()
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], 2 * x[kept])  # kept units doubled
    assert abs(kept.float().mean().item() - 0.5) < 0.05  # about half dropped
    drop.eval()
    assert torch.equal(drop(x), x)  # identity at test time (the paper: x 0.5, i.e. y / 2 in expectation)
