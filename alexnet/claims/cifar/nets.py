"""The CIFAR-10 nets of the paper's CIFAR-10 claims, from the authors' cuda-convnet example configs
(dnouri/cuda-convnet, example-layers/, final versions).

- `Figure1Net`: `layers-18pct.cfg`, the "four-layer convolutional neural network" of Figure 1:
  three 5x5 conv layers of 32, 32 and 64 kernels (padding 2), each followed by the activation
  and a 3x3 stride-2 pooling (max after conv1, average after conv2 and conv3), then one fully
  connected layer of 10 outputs. `cifar.width` scales the kernel counts. Two protocols
  (`cifar.figure1_protocol`):
  - `authors`: as the cfg sets it up, less its weight decay (Figure 1: "no regularisation of any
    kind"): weights N(0, initW) (conv1 1e-4, the rest 0.01), biases 0
    and trained at twice the weights' rate (epsB = 2 epsW), cuda-convnet's pooling (windows from
    the first pixel, as many as cover the map: ceil mode), and with `rnorm=True` its two
    within-map `rnorm` layers (3x3 window, scale 5e-5, pow 0.75) after pool1 and pool2.
  - `modern`: PyTorch's default init, one rate for weights and biases, pools padded by 1 (the same
    output sizes), no rnorm.
  Either way the inputs are the mean-subtracted pixels (alexnet.claims.cifar.training.centred) times
  `cifar.input_scale`.
- `ConvLocalNet`: `layers-conv-local-13pct.cfg` and, with `lrn=True`, `-11pct.cfg` (the
  paper's 13% and 11% CIFAR-10 results, Section 3.3), on 24x24 crops:
  13pct: conv1 64 5x5 -> ReLU -> max-pool 3/2 -> conv2 64 5x5 -> ReLU -> max-pool 3/2 ->
  local3 32 3x3 -> ReLU -> local4 32 3x3 -> ReLU -> fc10;
  11pct: conv1 64 -> ReLU -> max-pool -> rnorm1 -> conv2 64 -> ReLU -> rnorm2 -> max-pool ->
  local3 64 (not 32) -> ReLU -> local4 32 -> ReLU -> fc10, and fc10's weight decay 0.01 (13pct:
  0.004; `cifar.lrn_fc10_weight_decay`). So the published pair differs in more than the
  normalisation: the claim is tested on the nets the authors published. Init N(0, initW): conv1
  1e-4, conv2 0.01, local3 and local4 0.04, fc10 0.01; biases 0. `rnorm` is `type=cmrnorm`,
  cuda-convnet's cross-map normalisation a / (1 + scale/size * sum of squares over `size` maps
  centred on a)^pow, size 9, scale 0.001, pow 0.75: `alexnet.model.layers.LocalResponseNorm` with k=1
  and alpha divided by n. (The file's first commit, 3878e8f, had cross-map `rnorm` layers of size 5
  right after conv1 and conv2, each before its pooling; the next commit, a2a6af8, replaced them
  with these, and every later version keeps them.)

cuda-convnet pools with `start=0` and as many outputs as needed to cover the map
(outputsX = ceil((size - 3) / 2) + 1): 32 -> 16 -> 8 -> 4 and 24 -> 12 -> 6, which is
ceil_mode=True here; an average over a window cut by the border divides by the pixels inside
(cuda-convnet's AvgPooler: `a / regionSize`), as PyTorch's does without padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alexnet.model.layers import LocalResponseNorm

FIGURE1_KERNELS = (32, 32, 64)  # layers-18pct.cfg: conv1, conv2, conv3
FIGURE1_INIT = {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc10": 0.01}  # layers-18pct.cfg: initW
FIGURE1_RNORM = (3, 5e-5, 0.75)  # layers-18pct.cfg / layer-params-18pct.cfg: rnorm size, scale, pow
CONV_LOCAL_KERNELS = {False: (64, 64, 32, 32), True: (64, 64, 64, 32)}  # lrn -> conv1, conv2, local3, local4
CONV_LOCAL_INIT = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc10": 0.01}  # initW
DECAYED = ("local3", "local4")  # layer-params-*: wc there (and on fc10, its own value), 0 on the conv layers


def pooled_size(n: int) -> int:
    """cuda-convnet's 3x3 stride-2 pooling output: ceil((n - 3) / 2) + 1."""
    return (n - 2) // 2 + 1


def scaled(kernels: tuple[int, ...], width: float) -> list[int]:
    return [max(1, int(round(c * width))) for c in kernels]


def cuda_convnet_groups(net: nn.Module, layers: dict[str, float], lr: float) -> list[dict]:
    """Param groups in cuda-convnet's layer-params terms: per layer, the weights at epsW = lr
    with their wc (`layers`: name -> weight decay), the biases at epsB = 2 lr, never decayed.
    cuda-convnet scales each gradient by eps / batch size and adds -wc * eps * w to the momentum
    term: PyTorch's SGD on the mean loss, the same arithmetic. `lr_mult` keeps the ratio when
    a schedule sets the base rate (alexnet.training.optim.set_lr)."""
    groups = []
    for name, wc in layers.items():
        layer = getattr(net, name)
        groups.append({"params": [layer.weight], "lr": lr, "lr_mult": 1.0, "weight_decay": wc})
        groups.append({"params": [layer.bias], "lr": 2 * lr, "lr_mult": 2.0, "weight_decay": 0.0})
    return groups


def init_like_cuda_convnet(net: nn.Module, init: dict[str, float]) -> None:
    """initW: weights N(0, std) per layer; biases 0 (cuda-convnet's initB default)."""
    for name, std in init.items():
        layer = getattr(net, name)
        nn.init.normal_(layer.weight, 0.0, std)
        nn.init.zeros_(layer.bias)


class WithinMapNorm(nn.Module):
    """cuda-convnet's `type=rnorm`: a / (1 + scale/size^2 * sum of a^2 over the size x size
    window around it)^pow, the window cut by the border (zeros outside), size odd."""

    def __init__(self, size: int, scale: float, power: float) -> None:
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"rnorm size: expected an odd positive integer, got {size!r}")
        self.size, self.scale, self.power = size, scale, power

    def forward(self, x: Tensor) -> Tensor:
        # the mean of the squares over size^2 positions, zeros counted: scale/size^2 * sum
        mean_sq = F.avg_pool2d(x * x, self.size, 1, self.size // 2, count_include_pad=True)
        return x * (1 + self.scale * mean_sq).pow(-self.power)


class Figure1Net(nn.Module):
    """cuda-convnet's four-layer CIFAR-10 net (layers-18pct), ReLU or tanh, in one of two protocols."""

    def __init__(self, activation: str, width: float = 1.0, input_scale: float = 1.0, protocol: str = "modern",
                 rnorm: bool = False) -> None:
        super().__init__()
        if protocol not in ("modern", "authors"):
            raise ValueError(f"Figure 1 protocol: expected modern or authors, got {protocol!r}")
        if rnorm and protocol != "authors":
            raise ValueError("Figure 1's rnorm layers belong to the authors' protocol")
        k = scaled(FIGURE1_KERNELS, width)
        self.act = {"relu": torch.relu, "tanh": torch.tanh}[activation]
        self.protocol, self.input_scale = protocol, input_scale
        self.conv1 = nn.Conv2d(3, k[0], 5, padding=2)
        self.conv2 = nn.Conv2d(k[0], k[1], 5, padding=2)
        self.conv3 = nn.Conv2d(k[1], k[2], 5, padding=2)
        self.fc10 = nn.Linear(k[2] * 4 * 4, 10)
        self.rnorm1, self.rnorm2 = (WithinMapNorm(*FIGURE1_RNORM), WithinMapNorm(*FIGURE1_RNORM)) if rnorm \
            else (nn.Identity(), nn.Identity())
        if protocol == "authors":
            init_like_cuda_convnet(self, FIGURE1_INIT)

    def _pool(self, x: Tensor, kind: str) -> Tensor:
        pool = F.max_pool2d if kind == "max" else F.avg_pool2d
        if self.protocol == "authors":
            return pool(x, 3, 2, ceil_mode=True)
        return pool(x, 3, 2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.rnorm1(self._pool(self.act(self.conv1(x * self.input_scale)), "max"))
        x = self.rnorm2(self._pool(self.act(self.conv2(x)), "avg"))
        x = self._pool(self.act(self.conv3(x)), "avg")
        return self.fc10(torch.flatten(x, 1))

    def param_groups(self, lr: float) -> list[dict]:
        """No regularisation of any kind (Figure 1); the authors' biases at twice the rate."""
        if self.protocol == "authors":
            return cuda_convnet_groups(self, dict.fromkeys(("conv1", "conv2", "conv3", "fc10"), 0.0), lr)
        return [{"params": list(self.parameters()), "lr": lr, "lr_mult": 1.0, "weight_decay": 0.0}]


class LocallyConnected2d(nn.Module):
    """cuda-convnet's `type=local`: a convolution whose filters are not shared across positions
    (square kernel, stride 1, `padding` zeros), one bias per output map (sharedBiases)."""

    def __init__(self, in_channels: int, out_channels: int, in_size: int, kernel: int, padding: int) -> None:
        super().__init__()
        self.kernel, self.padding = kernel, padding
        self.out_size = in_size + 2 * padding - kernel + 1
        positions = self.out_size ** 2
        self.weight = nn.Parameter(torch.zeros(positions, in_channels * kernel * kernel, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        patches = F.unfold(x, self.kernel, padding=self.padding)  # [n, c*k*k, positions]
        out = torch.einsum("ncp,pco->nop", patches, self.weight)
        return out.reshape(x.shape[0], -1, self.out_size, self.out_size) + self.bias.view(1, -1, 1, 1)


class ConvLocalNet(nn.Module):
    """layers-conv-local-13pct (lrn=False) or -11pct (lrn=True), on crop x crop inputs."""

    def __init__(self, lrn: bool, width: float = 1.0, crop: int = 24, lrn_size: int = 9, lrn_scale: float = 1e-3,
                 lrn_pow: float = 0.75) -> None:
        super().__init__()
        c1, c2, l3, l4 = scaled(CONV_LOCAL_KERNELS[lrn], width)

        def rnorm() -> nn.Module:
            return LocalResponseNorm(lrn_size, lrn_scale, lrn_pow, k=1.0, divide_alpha_by_n=True) if lrn else nn.Identity()

        pooled = pooled_size(pooled_size(crop))  # 24 -> 12 -> 6
        self.conv1, self.rnorm1 = nn.Conv2d(3, c1, 5, padding=2), rnorm()
        self.conv2, self.rnorm2 = nn.Conv2d(c1, c2, 5, padding=2), rnorm()
        self.local3 = LocallyConnected2d(c2, l3, pooled, 3, 1)
        self.local4 = LocallyConnected2d(l3, l4, pooled, 3, 1)
        self.fc10 = nn.Linear(l4 * pooled * pooled, 10)
        init_like_cuda_convnet(self, CONV_LOCAL_INIT)

    def forward(self, x: Tensor) -> Tensor:
        # 11pct: rnorm1 after pool1, rnorm2 after conv2 and before pool2 (identities in 13pct)
        x = self.rnorm1(F.max_pool2d(F.relu(self.conv1(x)), 3, 2, ceil_mode=True))
        x = F.max_pool2d(self.rnorm2(F.relu(self.conv2(x))), 3, 2, ceil_mode=True)
        x = F.relu(self.local4(F.relu(self.local3(x))))
        return self.fc10(torch.flatten(x, 1))

    def param_groups(self, lr: float, weight_decay: float, fc10_weight_decay: float) -> list[dict]:
        """layer-params-conv-local-*pct: wc `weight_decay` on local3 and local4, `fc10_weight_decay`
        on fc10, 0 on the conv layers."""
        decay = {"conv1": 0.0, "conv2": 0.0, "local3": weight_decay, "local4": weight_decay, "fc10": fc10_weight_decay}
        return cuda_convnet_groups(self, decay, lr)
