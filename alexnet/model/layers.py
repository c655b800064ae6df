"""The paper net's own layers: the local response normalisation (Section 3.3) and the two-column
convolutions (Section 3.2), each with the form that runs fastest where the library's does not.

    LocalResponseNorm  cross-channel LRN with its gradient written out (_LRNFunction)
    GroupedConv2d      nn.Conv2d whose groups can run as one block-diagonal dense convolution

The LRN's conventions (alpha / n, column spans): alexnet.model.net's docstring. Under torch.compile
(train.compile) the LRN's autograd.Function is traced whole, forward and written-out backward, with
no graph break, so inductor fuses each direction's elementwise kernels (tests/test_layers.py
checks it on the CPU, with gradcheck through the compiled layer).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alexnet.config import ConfigError


def _channel_window_sum(t: Tensor, size: int, groups: int = 1) -> Tensor:
    """Sum of `t` over the `size` channels centred on each channel, zeros beyond the edges.

    With `groups` > 1 the channels are split into that many equal consecutive blocks and each
    block's windows stop at its own edges (the paper's columns: a map is normalised only by maps
    of its own GPU). The blocks are a view (unflatten), so any memory format is kept.
    """
    total = t.clone()
    channels = t.shape[1] // groups
    src, dst = t.unflatten(1, (groups, channels)), total.unflatten(1, (groups, channels))
    for offset in range(1, min(size // 2, channels - 1) + 1):
        dst[:, :, offset:] += src[:, :, :channels - offset]
        dst[:, :, :channels - offset] += src[:, :, offset:]
    return total


class _LRNFunction(torch.autograd.Function):
    """y = x / d^beta with d = k + alpha * (window sum of x^2), and its gradient in closed form:

        dL/dx_i = g_i / d_i^beta - 2 alpha beta x_i * sum_{j in window(i)} g_j y_j / d_j

    Half the kernels autograd runs through the same formula (each a full pass over an activation
    map), and 4 saved tensors instead of a dozen: 2-3x faster on a CPU. Only elementwise ops and
    slice sums, so deterministic on every device.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> Tensor:
        d = _channel_window_sum(x * x, size, groups).mul_(alpha).add_(k)
        d_pow = d.pow(beta)
        y = x / d_pow
        ctx.save_for_backward(x, y, d, d_pow)
        ctx.size, ctx.two_alpha_beta, ctx.groups = size, 2 * alpha * beta, groups
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, y, d, d_pow = ctx.saved_tensors
        # The windows are symmetric within a group (j in window(i) iff i in window(j)), so the
        # same grouped window sum gathers every j whose normaliser x_i entered.
        window = _channel_window_sum(g * y / d, ctx.size, ctx.groups)
        return torch.addcmul(g / d_pow, x, window, value=-ctx.two_alpha_beta), None, None, None, None, None


class LocalResponseNorm(nn.Module):
    """Cross-channel LRN of the paper's Section 3.3, with the alpha convention as a switch.

    Not `nn.LocalResponseNorm`: it sums the window with avg_pool3d, whose CUDA backward is
    nondeterministic (it raises under `torch.use_deterministic_algorithms(True)`). Here the
    window is a sum of channel slices and the gradient is written out (`_LRNFunction`). The two
    LRN layers were 60% of a bf16 training step on an H200 with autograd through the formula
    (benchmarks/bench_gpu_step.py: 8.5k img/s with them, 20.9k without).
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 divide_alpha_by_n: bool = True, groups: int = 1) -> None:
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ConfigError(f"model.lrn_size: expected an odd positive integer, got {size!r}")
        if groups < 1:
            raise ConfigError(f"LRN groups: expected a positive integer, got {groups!r}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.divide_alpha_by_n = divide_alpha_by_n
        self.groups = groups  # 2: each column's maps normalised among themselves (the paper)

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        if dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # under bf16 autocast: sums of squares of 0-255-scale activations need fp32
        if x.shape[1] % self.groups:
            raise ValueError(f"LRN over {self.groups} groups needs a channel count divisible by it, got {x.shape[1]}")
        alpha = self.alpha / self.size if self.divide_alpha_by_n else self.alpha
        return _LRNFunction.apply(x, self.size, alpha, self.beta, self.k, self.groups).to(dtype)

    def extra_repr(self) -> str:
        return (f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
                f"divide_alpha_by_n={self.divide_alpha_by_n}, groups={self.groups}")


class GroupedConv2d(nn.Conv2d):
    """nn.Conv2d with `groups` > 1 (the paper's columns: each group of kernels sees only its own
    group of input maps) that can run as one dense convolution with a block-diagonal weight.

    The parameters are nn.Conv2d's, [out, in / groups, k, k]: the same state_dict with either
    form, so nets and checkpoints load across them. `dense` (model.grouped_conv: dense) builds the
    [out, in, k, k] weight in each forward by padding each group's block with zeros
    (`block_diagonal`): the zeros are no parameter, so no optimizer step can move them, and
    autograd takes the weight's gradient from the diagonal blocks alone. The same function as
    the grouped convolution, summed in another order (last-bit differences); cuDNN's grouped
    kernels were slower than a dense convolution twice the size on an H200 (the one-group net:
    15.0k against 8.5k img/s, BENCHMARKS.md), whence the switch.
    """

    def __init__(self, *args: Any, dense: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dense = dense

    def block_diagonal(self) -> Tensor:
        """The weight as one group's: [out, in, k, k], zero outside each group's block."""
        g = self.groups
        per_in = self.in_channels // g
        blocks = self.weight.chunk(g, dim=0)  # group i's kernels, [out / g, in / g, k, k]
        return torch.cat([F.pad(b, (0, 0, 0, 0, i * per_in, (g - 1 - i) * per_in)) for i, b in enumerate(blocks)])

    def forward(self, x: Tensor) -> Tensor:
        if not self.dense or self.groups == 1:
            return super().forward(x)
        return F.conv2d(x, self.block_diagonal(), self.bias, self.stride, self.padding, self.dilation, 1)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", dense=True" if self.dense else "")


__all__ = ["GroupedConv2d", "LocalResponseNorm"]
