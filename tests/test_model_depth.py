"""model.remove_conv and remove_conv_keep_fc6: the depth ablation (paper, Section 7), shapes and parameter
counts by hand."""

from __future__ import annotations

import pytest
import torch

from alexnet.config import ConfigError, ModelConfig, params_from_dict
from alexnet.model.net import AlexNet, build_model, count_parameters, layer_shapes

PAPER_TOTAL = 60_965_224  # the paper's two-group net, 1000 classes, with biases
CONV3 = 3 * 3 * 256 * 384 + 384  # sees all 256 maps of conv2
CONV4 = 3 * 3 * 192 * 384 + 384  # two groups: each kernel sees 192 of conv3's 384 maps
CONV5 = 3 * 3 * 192 * 256 + 256
FC6 = 256 * 6 * 6 * 4096 + 4096


@pytest.mark.parametrize("keep_fc6,removed,expected", [
    (True, 0, PAPER_TOTAL),
    # conv4 then sees conv2's 256 maps, 128 per group (the columns meet first in fc6)
    (True, 3, PAPER_TOTAL - CONV3 - CONV4 + (3 * 3 * 128 * 384 + 384)),
    # conv5 sees conv3's 384 maps, 192 per group: the same shape as before
    (True, 4, PAPER_TOTAL - CONV4),
    # conv4 has conv5's 256 maps (two groups of 192 inputs), so fc6 keeps its 9216 inputs
    (True, 5, PAPER_TOTAL - CONV4 - CONV5 + (3 * 3 * 192 * 256 + 256)),
    # pool5 gives conv4's 384x6x6 = 13,824 inputs to fc6
    (False, 5, PAPER_TOTAL - CONV5 - FC6 + (384 * 6 * 6 * 4096 + 4096)),
    (False, 3, PAPER_TOTAL - CONV3 - CONV4 + (3 * 3 * 128 * 384 + 384)),  # only conv5 is affected
])
def test_parameter_count_by_hand(keep_fc6, removed, expected):
    with torch.device("meta"):
        net = AlexNet(ModelConfig(remove_conv=removed, remove_conv_keep_fc6=keep_fc6), 1000)
    assert count_parameters(net) == expected
    assert f"conv{removed}" not in dict(net.features.named_children())


@pytest.mark.parametrize("keep_fc6,removed,channels", [(True, 3, 256), (True, 4, 256), (True, 5, 256),
                                                       (False, 5, 384)])
def test_shapes_and_forward(keep_fc6, removed, channels):
    cfg = ModelConfig(width=0.25, remove_conv=removed, remove_conv_keep_fc6=keep_fc6, init="he")
    net = build_model(cfg, 10, generator=torch.Generator().manual_seed(0))
    shapes = layer_shapes(net)
    convs = [n for n in shapes if n.startswith("conv")]
    assert convs == [n for n in ("conv1", "conv2", "conv3", "conv4", "conv5") if n != f"conv{removed}"]
    assert shapes["pool5"] == (channels // 4, 6, 6)
    assert net.classifier.fc6.in_features == channels // 4 * 36
    assert net(torch.zeros(2, 3, 224, 224)).shape == (2, 10)


def test_remove_conv_param_checked():
    assert params_from_dict({"model": {"remove_conv": 4}}).model.remove_conv == 4
    for bad in (1, 2, 6, "conv3", True):
        with pytest.raises(ConfigError, match="model.remove_conv"):
            params_from_dict({"model": {"remove_conv": bad}})
    with pytest.raises(ConfigError, match="model.remove_conv"):
        params_from_dict({"model": {"arch": "torchvision", "remove_conv": 3}})
    assert params_from_dict({}).model.remove_conv_keep_fc6 is True
