"""The network: the paper's AlexNet, its ablation switches, and the torchvision variant.

Owns the architecture (Krizhevsky et al. 2012, Section 3), its initialisation (Section 5), the
local response normalisation (Section 3.3), and the files a trained net is saved in.

`build_model(cfg, num_classes)` returns, for `cfg.arch == "paper"`, Figure 2's two-column net:

    conv1 96x11x11/4 -> ReLU -> LRN -> max-pool 3/2        55x55 -> 27x27
    conv2 256x5x5, two groups -> ReLU -> LRN -> max-pool   27x27 -> 13x13
    conv3 384x3x3 (sees both groups) -> ReLU               13x13
    conv4 384x3x3, two groups -> ReLU                      13x13
    conv5 256x3x3, two groups -> ReLU -> max-pool          13x13 -> 6x6
    [conv6 256x3x3, two groups -> ReLU]                    6x6 (cfg.conv6, the starred nets)
    fc6 4096 -> ReLU -> dropout; fc7 4096 -> ReLU -> dropout; fc8 num_classes

With 1000 classes this is exactly 60,965,224 parameters.

LRN convention (Section 3.3): b_i = a_i / (k + alpha' * sum_{j=i-n/2}^{i+n/2} a_j^2)^beta, the sum
running over the channels that exist (zero beyond the edges). In the two-group net the channels
that exist are those of the map's own column (`cfg.lrn_span: column`, the paper's GPUs each
normalising their own half); `lrn_span: all` runs one window over all maps, as Caffe's
bvlc_alexnet does. The one-group net has one column, so both spans are the same.
The paper's equation has alpha' = alpha; cuda-convnet (the paper's own code), Caffe and PyTorch
use alpha' = alpha / n, the default (`cfg.lrn_divide_alpha_by_n`).

Switches: alexnet.config.ModelConfig's fields (groups 1: Section 3.2's one-GPU net); what each
means: docs/fidelity.md. `arch == "torchvision"`: the later "one weird trick" net built by
torchvision itself (its state_dict names; only `cfg.dropout` applies; its own init and input
normalisation, (x/255 - mean) / std).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from alexnet import paper
from alexnet.config import ConfigError, ModelConfig, params_from_dict
from alexnet.errors import PipelineError
from alexnet.fileio import atomic_path
from alexnet.model.layers import GroupedConv2d, LocalResponseNorm
from alexnet.runtime.backend import torch_load

FORMAT = "alexnet-repro/model"
FORMAT_VERSION = 1

# Paper widths (Section 3.5): conv1..conv5, the starred nets' conv6, and the two hidden fc layers.
PAPER_CONV = tuple(kernels for _, kernels, _, _ in paper.CONV_LAYERS)
ONE_GPU_CONV = (48, 128, 192, 192, 256)  # Section 3.2 footnote: the last conv layer is not halved
PAPER_CONV6 = 256
PAPER_FC = paper.FC_LAYERS[0][1]


def _even(channels: float) -> int:
    """Round a scaled width to an even number >= 2 so two groups split it equally."""
    return max(2, 2 * int(round(channels / 2)))


def layer_widths(cfg: ModelConfig) -> tuple[tuple[int, ...], int, int]:
    """(conv1..conv5 widths, conv6 width, fc6/fc7 width) for a paper-arch config."""
    base = PAPER_CONV if cfg.groups == 2 else ONE_GPU_CONV
    conv = tuple(_even(c * cfg.width) for c in base)
    return conv, _even(PAPER_CONV6 * cfg.width), max(1, int(round(PAPER_FC * cfg.width)))


def _map_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class AlexNet(nn.Module):
    """The paper's network (see the module docstring); layers named conv1..conv6, fc6..fc8."""

    input_normalization = "paper"  # raw 0-255 RGB minus the training mean (Section 2)

    def __init__(self, cfg: ModelConfig, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes: expected a positive integer, got {num_classes!r}")
        self.cfg = cfg
        self.num_classes = num_classes
        conv, conv6, fc = layer_widths(cfg)
        g = cfg.groups
        act = nn.ReLU if cfg.activation == "relu" else nn.Tanh
        pool_k = 3 if cfg.overlapping_pool else 2  # Section 3.4: z=3, s=2 vs the usual z=s=2
        dense = cfg.grouped_conv == "dense"  # the same net, its groups run as one convolution

        def column_conv(c_in: int, c_out: int, kernel: int, groups: int) -> nn.Module:
            if groups == 1:
                return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
            return GroupedConv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, dense=dense)

        def lrn() -> nn.Module:
            if not cfg.lrn:
                return nn.Identity()
            # Section 3.2: each GPU holds half of conv1's and conv2's maps and normalises them on
            # its own (cuda-convnet's 2-GPU config has rnorm1a/rnorm1b over 48 maps each), so a
            # window stops at the column boundary; lrn_span "all" is Caffe's one span over all.
            return LocalResponseNorm(cfg.lrn_size, cfg.lrn_alpha, cfg.lrn_beta, cfg.lrn_k,
                                     cfg.lrn_divide_alpha_by_n, groups=g if cfg.lrn_span == "column" else 1)

        pad1 = 2 if cfg.input_size == 224 else 0  # 224+2*2 and 227 both give 55x55 (Section 3.5)
        layers: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(3, conv[0], 11, stride=4, padding=pad1)), ("act1", act()),
            ("norm1", lrn()), ("pool1", nn.MaxPool2d(pool_k, 2)),
            # conv2, conv4, conv5: each GPU's kernels see only that GPU's half of the maps below.
            ("conv2", column_conv(conv[0], conv[1], 5, g)), ("act2", act()),
            ("norm2", lrn()), ("pool2", nn.MaxPool2d(pool_k, 2)),
        ]
        # conv3..conv5 as (maps, groups); model.remove_conv drops one (Section 7's depth claim): the
        # next layer takes the removed layer's input, keeping its own grouping; names stay conv<N>.
        middle = {3: (conv[2], 1), 4: (conv[3], g), 5: (conv[4], g)}
        if cfg.remove_conv == 5 and cfg.remove_conv_keep_fc6:
            middle[4] = (conv[4], g)  # fc6 still sees conv5's maps: only depth changes
        below = conv[1]
        for n, (c, groups) in middle.items():
            if n != cfg.remove_conv:
                layers += [(f"conv{n}", column_conv(below, c, 3, groups)), (f"act{n}", act())]
                below = c
        layers.append(("pool5", nn.MaxPool2d(pool_k, 2)))
        out_channels = below
        if cfg.conv6:
            # Table 2's starred nets add "an extra sixth convolutional layer over the last
            # pooling layer"; the paper gives no shape, so it repeats conv5's (3x3, two groups).
            layers += [("conv6", column_conv(out_channels, conv6, 3, g)), ("act6", act())]
            out_channels = conv6
        self.features = nn.Sequential(OrderedDict(layers))

        side = _map_size(cfg.input_size, 11, 4, pad1)
        for _ in range(3):
            side = _map_size(side, pool_k, 2)
        self.feature_shape = (out_channels, side, side)  # 256x6x6 = 9216 for the paper's net
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(out_channels * side * side, fc)), ("act6", act()), ("drop6", nn.Dropout(cfg.dropout)),
            ("fc7", nn.Linear(fc, fc)), ("act7", act()), ("drop7", nn.Dropout(cfg.dropout)),
            ("fc8", nn.Linear(fc, num_classes)),
        ]))

    @property
    def conv1(self) -> nn.Conv2d:
        return self.features.conv1

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Section 5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, else 0.

        init "he" keeps N(0, init_std) for fc8 only and draws every other layer from
        N(0, sqrt(2 / fan_in)) (He et al. 2015), with model.input_scale ~ 1/64 for unit-scale
        input; why the tiny run needs it: docs/fidelity.md, "Initialisation".
        """
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"} if self.cfg.init_bias_one else set()
        for name, module in [*self.features.named_children(), *self.classifier.named_children()]:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                std = self.cfg.init_std
                if self.cfg.init == "he" and name != "fc8":
                    std = math.sqrt(2.0 / module.weight[0].numel())
                nn.init.normal_(module.weight, 0.0, std, generator=generator)
                nn.init.constant_(module.bias, 1.0 if name in ones else 0.0)

    def _features(self, x: Tensor) -> Tensor:
        if self.cfg.input_scale != 1.0:
            x = x * self.cfg.input_scale  # a fixed reparametrisation of conv1, see ModelConfig
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self._features(x)  # [N, 256, 6, 6] for the paper's net
        return self.classifier(torch.flatten(x, 1))

    def fc7_features(self, x: Tensor) -> Tensor:
        """Last hidden layer (fc7 after its activation), without dropout whatever the mode."""
        c = self.classifier
        x = torch.flatten(self._features(x), 1)
        return c.act7(c.fc7(c.act6(c.fc6(x))))


class TorchvisionAlexNet(torchvision.models.AlexNet):
    """torchvision's AlexNet ("one weird trick"), with this project's extra methods."""

    input_normalization = "torchvision"  # (x / 255 - mean) / std with ImageNet's mean and std

    def __init__(self, cfg: ModelConfig, num_classes: int) -> None:
        super().__init__(num_classes=num_classes, dropout=cfg.dropout)
        self.cfg = cfg
        self.num_classes = num_classes

    @property
    def conv1(self) -> nn.Conv2d:
        return self.features[0]

    def _pool(self, x: Tensor) -> Tensor:
        # A 224 input already gives 6x6 maps, where the adaptive pooling is the identity; skip it,
        # since its CUDA backward raises under torch.use_deterministic_algorithms(True).
        return x if tuple(x.shape[-2:]) == (6, 6) else self.avgpool(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self._pool(self.features(x)), 1))

    def fc7_features(self, x: Tensor) -> Tensor:
        """Last hidden layer (the second 4096 Linear after its ReLU), without dropout."""
        c = self.classifier
        x = torch.flatten(self._pool(self.features(x)), 1)
        return c[5](c[4](c[2](c[1](x))))


def build_model(cfg: ModelConfig, num_classes: int, *, generator: torch.Generator | None = None) -> nn.Module:
    """The network for `cfg`, initialised (paper: Section 5; torchvision: its own init).

    Initialisation draws from `generator`, or from torch's global RNG when it is None, so a
    seeded caller gets the same weights on every run.
    """
    if cfg.arch == "torchvision":
        if generator is not None:
            raise ConfigError("model.arch torchvision keeps torchvision's initialisation; pass no generator")
        return TorchvisionAlexNet(cfg, num_classes)
    model = AlexNet(cfg, num_classes)
    model.init_weights(generator)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def architecture(model: nn.Module) -> dict[str, Any]:
    """The net's layers as data (models/seed<N>/architecture.json, which the report prints): per
    conv and fc layer its shape and parameter count, then the total, classes and width."""
    layers = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            layers.append({"name": name.split(".")[-1], "kind": "conv", "out_channels": mod.out_channels,
                           "kernel": list(mod.kernel_size), "in_channels_per_group": mod.in_channels // mod.groups,
                           "stride": mod.stride[0], "groups": mod.groups,
                           "parameters": count_parameters(mod)})
        elif isinstance(mod, nn.Linear):
            layers.append({"name": name.split(".")[-1], "kind": "fc", "in_features": mod.in_features,
                           "out_features": mod.out_features, "parameters": count_parameters(mod)})
    cfg = getattr(model, "cfg", None)
    return {"layers": layers, "parameters": count_parameters(model),
            "num_classes": getattr(model, "num_classes", None), "width": getattr(cfg, "width", 1.0)}


def load_torchvision_state_dict(path: str | Path, num_classes: int = 1000) -> nn.Module:
    """The torchvision variant with weights from a local `torchvision.models.alexnet()` state_dict."""
    state = torch_load(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PipelineError(f"{path}: expected a torchvision AlexNet state_dict, got {type(state).__name__}")
    with torch.device("meta"):  # no point initialising 61M weights about to be replaced
        model = TorchvisionAlexNet(ModelConfig(arch="torchvision"), num_classes)
    _load_state(model, state, path, "a torchvision AlexNet")
    return model.eval()


def save_trained(path: str | Path, model: nn.Module, cfg: ModelConfig, num_classes: int,
                 info: dict[str, Any]) -> None:
    """Write a trained net (the module itself, not a DDP or torch.compile wrapper of it) as a plain
    dict (loadable with weights_only=True), atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # info goes through JSON so that only plain types reach the file (weights_only loading
    # refuses e.g. torch.__version__'s TorchVersion or numpy scalars); numpy scalars -> numbers.
    info = json.loads(json.dumps(info, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model_config": dataclasses.asdict(cfg),
        "num_classes": int(num_classes),
        "state_dict": state,
        "info": info,
    }
    # Through a file object: given a path, torch.save names the archive inside after the (random)
    # temporary file name, and equal nets would not give equal bytes (nor equal DVC hashes).
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def load_trained(path: str | Path, map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on `map_location`, info) from a `save_trained` file.

    A missing, truncated or foreign file, or weights that do not fit the recorded architecture,
    is a PipelineError naming the file.
    """
    payload = torch_load(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PipelineError(f"{path}: not a trained-model file of this project (no '{FORMAT}' format tag)")
    if payload.get("version") != FORMAT_VERSION:
        raise PipelineError(f"{path}: model file version {payload.get('version')!r}, expected {FORMAT_VERSION}")
    try:
        cfg = params_from_dict({"model": payload["model_config"]}).model
        num_classes = int(payload["num_classes"])
        state = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as e:
        raise PipelineError(f"{path}: damaged model file ({e})") from e
    with torch.device("meta"):
        model = AlexNet(cfg, num_classes) if cfg.arch == "paper" else TorchvisionAlexNet(cfg, num_classes)
    _load_state(model, state, path, f"the {cfg.arch} architecture it records")
    return model.eval(), payload.get("info", {})


def _load_state(model: nn.Module, state: dict, path: str | Path, what: str) -> None:
    """Load `state` into a model built on the meta device (assign=True takes the tensors as they are)."""
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise PipelineError(f"{path}: its weights do not fit {what}: {e}") from e


def layer_shapes(model: nn.Module, input_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Output shape [C, H, W] of every conv and pooling layer for one input (for docs and tests)."""
    size = input_size or model.cfg.input_size
    shapes: dict[str, tuple[int, ...]] = {}
    x = torch.zeros(1, 3, size, size, device=next(model.parameters()).device)  # "meta" works too
    with torch.no_grad():
        for name, module in model.features.named_children():
            x = module(x)
            shapes[name] = tuple(x.shape[1:])
    return shapes


__all__ = [
    "AlexNet", "TorchvisionAlexNet", "architecture", "build_model", "count_parameters",
    "layer_shapes", "layer_widths", "load_torchvision_state_dict", "load_trained", "save_trained",
]
