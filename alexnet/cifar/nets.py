"""The CIFAR-10 nets of the paper's CIFAR-10 claims, from the authors' cuda-convnet example configs.

- `Figure1Net`: `layers-18pct.cfg`, the "four-layer convolutional neural network" of Figure 1:
  three 5x5 conv layers of 32, 32 and 64 kernels (padding 2), each followed by the activation
  and a 3x3 stride-2 pooling (max after conv1, average after conv2 and conv3), then one fully
  connected layer of 10 outputs. `cifar.width` scales the kernel counts. Its within-map `rnorm`
  layers are left out: Figure 1 trains "with no regularisation of any kind" and compares only
  the activations. Init: PyTorch's default, the same draw for every activation of one seed.
- `ConvLocalNet`: `layers-conv-local-13pct.cfg` and, with `lrn=True`, `-11pct.cfg` (the
  paper's 13% and 11% CIFAR-10 results, Section 3.3): conv1 64 5x5 (init N(0, 1e-4)) -> ReLU ->
  [rnorm1] -> max-pool 3/2 -> conv2 64 5x5 (N(0, 0.01)) -> ReLU -> [rnorm2] -> max-pool 3/2 ->
  local3 32 3x3 (N(0, 0.04)) -> ReLU -> local4 32 3x3 (N(0, 0.04)) -> ReLU -> fc10 (N(0, 0.01)),
  biases 0, on 24x24 crops. `rnorm` is cuda-convnet's cross-map normalisation
  a / (1 + scale/size * sum of squares over `size` maps)^pow, size 5, scale 0.001, pow 0.75:
  `alexnet.model.LocalResponseNorm` with k=1 and alpha divided by n.

cuda-convnet pools with `start=0` and as many outputs as needed to cover the map
(outputsX = ceil((size - 3) / 2) + 1): 24 -> 12 -> 6, which is ceil_mode=True here. The
Figure 1 net's 32 -> 16 -> 8 -> 4 is padding 1 (the same output sizes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alexnet.model import LocalResponseNorm

FIGURE1_KERNELS = (32, 32, 64)  # layers-18pct.cfg: conv1, conv2, conv3
CONV_LOCAL_KERNELS = (64, 64, 32, 32)  # layers-conv-local-*pct.cfg: conv1, conv2, local3, local4
CONV_LOCAL_INIT = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc10": 0.01}  # initW
DECAYED = ("local3", "local4", "fc10")  # layer-params-*: wc=0.004 there, 0 on the conv layers


def pooled_size(n: int) -> int:
    """cuda-convnet's 3x3 stride-2 pooling output: ceil((n - 3) / 2) + 1."""
    return (n - 2) // 2 + 1


def scaled(kernels: tuple[int, ...], width: float) -> list[int]:
    return [max(1, int(round(c * width))) for c in kernels]


class Figure1Net(nn.Module):
    """cuda-convnet's four-layer CIFAR-10 net (layers-18pct), ReLU or tanh."""

    def __init__(self, activation: str, width: float = 1.0, input_scale: float = 1.0) -> None:
        super().__init__()
        k = scaled(FIGURE1_KERNELS, width)
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        self.input_scale = input_scale
        self.features = nn.Sequential(
            nn.Conv2d(3, k[0], 5, padding=2), act(), nn.MaxPool2d(3, 2, padding=1),
            nn.Conv2d(k[0], k[1], 5, padding=2), act(), nn.AvgPool2d(3, 2, padding=1),
            nn.Conv2d(k[1], k[2], 5, padding=2), act(), nn.AvgPool2d(3, 2, padding=1),
        )
        self.fc = nn.Linear(k[2] * 4 * 4, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.features(x * self.input_scale), 1))


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

    def __init__(self, lrn: bool, width: float = 1.0, crop: int = 24, lrn_size: int = 5, lrn_scale: float = 1e-3,
                 lrn_pow: float = 0.75) -> None:
        super().__init__()
        c1, c2, l3, l4 = scaled(CONV_LOCAL_KERNELS, width)

        def rnorm() -> nn.Module:
            return LocalResponseNorm(lrn_size, lrn_scale, lrn_pow, k=1.0, divide_alpha_by_n=True) if lrn else nn.Identity()

        pooled = pooled_size(pooled_size(crop))  # 24 -> 12 -> 6
        self.conv1, self.rnorm1 = nn.Conv2d(3, c1, 5, padding=2), rnorm()
        self.conv2, self.rnorm2 = nn.Conv2d(c1, c2, 5, padding=2), rnorm()
        self.local3 = LocallyConnected2d(c2, l3, pooled, 3, 1)
        self.local4 = LocallyConnected2d(l3, l4, pooled, 3, 1)
        self.fc10 = nn.Linear(l4 * pooled * pooled, 10)
        for name, std in CONV_LOCAL_INIT.items():
            layer = getattr(self, name)
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(self.rnorm1(F.relu(self.conv1(x))), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.rnorm2(F.relu(self.conv2(x))), 3, 2, ceil_mode=True)
        x = F.relu(self.local4(F.relu(self.local3(x))))
        return self.fc10(torch.flatten(x, 1))

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """layer-params-conv-local-*pct: epsW = lr, epsB = 2 lr (`lr_mult`), wc on local3, local4
        and fc10 only, never on biases. cuda-convnet scales each gradient by eps / batch size and
        adds -wc * eps * w to the momentum term: PyTorch's SGD on the mean loss, the same arithmetic."""
        groups = []
        for name in ("conv1", "conv2", "local3", "local4", "fc10"):
            layer = getattr(self, name)
            groups.append({"params": [layer.weight], "lr": lr, "lr_mult": 1.0,
                           "weight_decay": weight_decay if name in DECAYED else 0.0})
            groups.append({"params": [layer.bias], "lr": 2 * lr, "lr_mult": 2.0, "weight_decay": 0.0})
        return groups
