"""The paper's data augmentation (Section 4.1): random crops, flips and PCA lighting.

- `draw_params` makes one batch's random choices (crop offsets in [0, S - C], flips with
  p = 0.5, lighting alphas ~ N(0, pca_std)) from a CPU `torch.Generator`, so the same seed
  gives the same batch on the CPU and on a GPU. `batch_generator(seed, epoch, batch)` seeds one
  generator per global batch: a resumed epoch or another rank of a data-parallel run draws
  exactly what an uninterrupted single process would have drawn, and each rank slices its rows.
- `apply_params` applies them through alexnet.data.input.pixels.render, the one place stored pixels become
  network input (crop, mirror, mean subtraction: alexnet.data.input.pixels), plus the lighting shift.

PCA lighting (Section 4.1): to every pixel of an image add [p1 p2 p3][a1 m1, a2 m2, a3 m3]^T,
p_i the eigenvectors of the training set's RGB covariance (from the stats stage, 0-255 units),
a_i ~ N(0, pca_std) drawn once per image per presentation, and m_i what the paper writes as
lambda_i, on a pixel scale the paper does not give (`augment.pca_magnitude`, `MAGNITUDES`):
  eigval_01    m_i = lambda_i of pixels on [0, 1], the shift then in [0, 1] units: the formula
               taken literally as fb.resnet.torch (Lighting, eigval 0.2175, 0.0188, 0.0045),
               MXNet/GluonCV and tensorpack (the same constants times 255, on 0-255 pixels) do.
               In 0-255 units m_i = lambda_i / 255. ~3.2 levels RMS per channel on ImageNet.
  sqrt_eigval  m_i = sqrt(lambda_i), the component's standard deviation, the same on any scale:
               the authors' cuda-convnet2 (color_pca stdevs 121.8, 37.1, 19.7 on 0-255, noise
               0.1). ~7.2 levels RMS per channel.
  eigval_255   m_i = lambda_i of 0-255 pixels (variances of ~14,000): the formula taken
               literally on 0-255, ~820 levels RMS; no implementation we know of uses it.
Nothing is clipped: the paper feeds the centred values straight in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import torch
from torch import Tensor

from alexnet.config import AugmentConfig, ConfigError, PcaMagnitude
from alexnet.data.input.pixels import (
    MeanMode,
    Normalization,
    as_tensor,
    center_offset,
    render,
    select_mean,
    to_numpy,
    torchvision_normalize,
)
from alexnet.runtime import seeds


@dataclass(frozen=True)
class InputStats:
    """The stats stage's arrays the input pipeline needs, as float32 tensors on one device."""

    mean_image: Tensor  # [S, S, 3], 0-255, on the device
    channel_mean: Tensor  # [3], on the device
    # [3] what alpha_i multiplies along component i, in 0-255 levels (lighting_magnitudes, per
    # augment.pca_magnitude); on the CPU, where the [N, 3] lighting shifts are computed
    eigvals: Tensor
    eigvecs: Tensor  # [3, 3], column i belongs to eigvals[i]; on the CPU

    @classmethod
    def from_stats(cls, stats: Any, device: torch.device | str = "cpu",
                   pca_magnitude: PcaMagnitude = "eigval_255") -> InputStats:
        """From `alexnet.data.stats.Stats` (or anything with those numpy fields or tensors).

        `eigvals` becomes the lighting's multipliers for `pca_magnitude` (`lighting_magnitudes`);
        the default, "eigval_255", keeps the stats' 0-255 eigenvalues as they are.
        """
        device, cpu = torch.device(device), torch.device("cpu")
        vals = torch.from_numpy(lighting_magnitudes(to_numpy(stats.eigvals) if isinstance(stats.eigvals, Tensor)
                                                    else stats.eigvals, pca_magnitude)).float()
        return cls(as_tensor(stats.mean_image, device, torch.float32),
                   as_tensor(stats.channel_mean, device, torch.float32),
                   vals, as_tensor(stats.eigvecs, cpu, torch.float32))

    def mean(self, mode: MeanMode) -> Tensor | None:
        return select_mean(mode, self.mean_image, self.channel_mean)


@dataclass(frozen=True)
class AugmentParams:
    """One batch's random choices, one row per image (CPU tensors)."""

    top: Tensor  # int64 [N]
    left: Tensor  # int64 [N]
    flip: Tensor  # bool [N]
    alpha: Tensor  # float32 [N, 3], already scaled by pca_std; zeros without lighting

    def __len__(self) -> int:
        return self.top.numel()

    def slice(self, start: int, stop: int) -> AugmentParams:
        return AugmentParams(self.top[start:stop], self.left[start:stop], self.flip[start:stop],
                             self.alpha[start:stop])


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch, batch index): the stream `augment`
    (alexnet.runtime.seeds)."""
    return seeds.generator(seed, "augment", epoch, batch)


def draw_params(n: int, image_size: int, size: int, augment: AugmentConfig | None,
                generator: torch.Generator) -> AugmentParams:
    """Random crops, flips and lighting alphas for `n` images (Section 4.1).

    All draws happen in a fixed order whatever the switches, so turning one augmentation off
    for an ablation leaves the others' draws unchanged. `augment` None = evaluation: centre
    crop, no flip, no lighting.
    """
    span = image_size - size + 1
    if span < 1:
        raise ConfigError(f"a {size} crop does not fit a {image_size} image")
    top = torch.randint(0, span, (n,), generator=generator)
    left = torch.randint(0, span, (n,), generator=generator)
    flip = torch.randint(0, 2, (n,), generator=generator).bool()
    alpha = torch.randn(n, 3, generator=generator)
    if augment is None or not augment.random_crop:
        top = left = torch.full((n,), center_offset(image_size, size), dtype=torch.int64)
    if augment is None or not augment.flip:
        flip = torch.zeros(n, dtype=torch.bool)
    if augment is None or not augment.pca_lighting:
        alpha = torch.zeros(n, 3)
    else:
        alpha = alpha * augment.pca_std
    return AugmentParams(top, left, flip, alpha)


def lighting_magnitudes(eigvals_255: Any, mode: PcaMagnitude) -> np.ndarray:
    """float64 [3]: what alpha_i multiplies along component i, in 0-255 levels.

    `eigvals_255`: the covariance's eigenvalues of 0-255 pixels (the stats stage's). eigval_01:
    on [0, 1] pixels lambda is lambda_255 / 255^2 and the shift is 255 times smaller, so
    lambda_255 / 255 levels; sqrt_eigval: sqrt(lambda_255), the same on any scale; eigval_255:
    lambda_255 itself.
    """
    vals = np.clip(np.asarray(eigvals_255, np.float64), 0, None)  # tiny negative round-off
    if mode == "eigval_01":
        return vals / 255.0
    if mode == "sqrt_eigval":
        return np.sqrt(vals)
    if mode == "eigval_255":
        return vals
    raise ConfigError(f"augment.pca_magnitude: expected one of {', '.join(map(repr, get_args(PcaMagnitude)))}, got {mode!r}")


def lighting_rms(eigvals_255: Any, mode: PcaMagnitude, pca_std: float = 0.1) -> float:
    """RMS per channel of the lighting shift, in 0-255 levels: pca_std * sqrt(sum m_i^2 / 3).

    The eigenvectors are orthonormal, so |shift|^2 = sum_i (a_i m_i)^2 whatever they are.
    """
    m = lighting_magnitudes(eigvals_255, mode)
    return float(pca_std * np.sqrt((m ** 2).sum() / 3))


def lighting_shift(alpha: Any, eigvals: Any, eigvecs: Any) -> Tensor:
    """[N, 3] RGB offsets eigvecs @ (alpha * eigvals), one per image (Section 4.1), on the CPU.

    Computed with numpy in float64: a [N, 3] x [3, 3] product is too small to be worth torch's
    thread pool, and the same numbers come out whichever device the batch then goes to.
    """
    a, vals, vecs = (np.asarray(to_numpy(t) if isinstance(t, Tensor) else t, np.float64) for t in (alpha, eigvals, eigvecs))
    return torch.from_numpy(((a * vals) @ vecs.T).astype(np.float32))


def apply_params(images_u8: Tensor | np.ndarray, params: AugmentParams, size: int, stats: InputStats | None,
                 mean: MeanMode = "image", normalization: Normalization = "paper",
                 out: np.ndarray | None = None) -> Tensor:
    """float32 [N, 3, size, size] input from uint8 [N, S, S, 3] and one batch's choices.

    The result is on the images' device (the CPU for a numpy array).

    normalization "paper": raw 0-255 minus `mean` (Section 2). "torchvision": the torchvision
    variant's (x/255 - mean) / std, lighting still in 0-255 units before the scaling.
    """
    lit = bool(params.alpha.any())
    if (lit or (mean != "none" and normalization == "paper")) and stats is None:
        raise ConfigError("stats are needed for mean subtraction and PCA lighting")
    mean_t = stats.mean(mean) if normalization == "paper" and stats is not None else None
    # The shift is a [N, 3] product, computed on the CPU from the CPU draws: the same numbers
    # whichever device then adds it.
    shift = lighting_shift(params.alpha, stats.eigvals, stats.eigvecs) if lit else None
    x = render(images_u8, params.top, params.left, size, params.flip, mean_t, shift, out)
    if normalization == "torchvision":
        x = torchvision_normalize(x)
    return x
