"""Turning stored uint8 images into network input: crops, flips, PCA lighting, mean subtraction.

Owns the paper's data augmentation (Section 4.1) and the test-time crops' pixel arithmetic, as
batched tensor ops that run wherever the batch lives (the GPU when there is one); no Python
loop over images anywhere.

- `crop_center_flip` is the single place stored pixels become input: ((image - mean)[crop]),
  mirrored where asked. Training, centre-crop and ten-crop evaluation all go through it.
- `draw_params` makes one batch's random choices (crop offsets in [0, S - C], flips with
  p = 0.5, lighting alphas ~ N(0, pca_std)) from a CPU `torch.Generator`, so the same seed
  gives the same batch on the CPU and on a GPU. `batch_generator(seed, epoch, batch)` seeds one
  generator per global batch: a resumed epoch or another rank of a data-parallel run draws
  exactly what an uninterrupted single process would have drawn, and each rank slices its rows.
- `apply_params` / `train_batch` apply them.

PCA lighting (Section 4.1): to every pixel of an image add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T,
p_i, l_i the eigenvectors and eigenvalues of the training set's RGB covariance in 0-255 units
(from the stats stage), a_i drawn once per image per presentation. Nothing is clipped: the paper
feeds the centred values straight in. The mean subtracted is the stats stage's 256x256x3 mean
image cropped at the image's own offsets (the paper subtracts per-pixel means), the per-channel
mean, or nothing (`augment.mean`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from alexnet.config import AugmentConfig, ConfigError

MeanMode = Literal["image", "channel", "none"]

# torchvision's ImageNet normalisation, used by its published AlexNet weights.
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)


def _as_tensor(x: Any, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device=device, dtype=dtype or t.dtype)


def crop_center_flip(images_u8: Tensor | np.ndarray, top: Any, left: Any, size: int,
                     flip: Any | None = None, mean: Tensor | np.ndarray | None = None) -> Tensor:
    """((image - mean)[top:top+size, left:left+size]), mirrored left-right where `flip`.

    images_u8: uint8 [N, S, S, 3] (HWC, as stored), on any device; top, left: [N] offsets;
    flip: [N] bool or None; mean: [S, S, 3] (a mean image, cropped at the same offsets and
    mirrored with the image), [3] (per channel) or None. Returns float32 [N, 3, size, size]
    on the images' device.
    """
    images = _as_tensor(images_u8, torch.device("cpu")) if not isinstance(images_u8, Tensor) else images_u8
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected uint8 [N, S, S, 3], got {images.dtype} {tuple(images.shape)}")
    n, height, width, _ = images.shape
    device = images.device
    top = _as_tensor(top, device, torch.int64).reshape(-1)
    left = _as_tensor(left, device, torch.int64).reshape(-1)
    if top.numel() != n or left.numel() != n:
        raise ValueError(f"top/left: expected {n} offsets each, got {top.numel()} and {left.numel()}")
    if n and (top.min() < 0 or left.min() < 0 or top.max() > height - size or left.max() > width - size):
        raise ValueError(f"crop offsets must lie in [0, {height - size}] x [0, {width - size}] for a {size} crop")
    step = torch.arange(size, device=device)
    rows = top[:, None] + step  # [N, size]
    cols = left[:, None] + step
    if flip is not None:
        flip = _as_tensor(flip, device, torch.bool).reshape(-1, 1)
        cols = torch.where(flip, left[:, None] + (size - 1) - step, cols)  # mirrored read = flipped crop
    # One gather of whole RGB triples: pixel (r, c) of image i is row i*H*W + r*W + c of [N*H*W, 3].
    pixel = rows[:, :, None] * width + cols[:, None, :]  # [N, size, size]
    flat = (pixel + (torch.arange(n, device=device) * (height * width))[:, None, None]).reshape(-1)
    out = images.reshape(-1, 3).index_select(0, flat).reshape(n, size, size, 3).float()
    if mean is not None:
        mean = _as_tensor(mean, device, torch.float32)
        if mean.shape == (3,):
            out.sub_(mean)
        elif mean.shape == (height, width, 3):
            out.sub_(mean.reshape(-1, 3).index_select(0, pixel.reshape(-1)).reshape(n, size, size, 3))
        else:
            raise ValueError(f"mean: expected [3] or [{height}, {width}, 3], got {tuple(mean.shape)}")
    return out.permute(0, 3, 1, 2).contiguous()  # NCHW for the convolutions


def center_offset(image_size: int, size: int) -> int:
    """Top (= left) offset of the centre crop; 16 for 224 of 256."""
    if size > image_size:
        raise ConfigError(f"a {size} crop does not fit a {image_size} image")
    return (image_size - size) // 2


@dataclass(frozen=True)
class InputStats:
    """The stats stage's arrays the input pipeline needs, as float32 tensors on one device."""

    mean_image: Tensor  # [S, S, 3], 0-255
    channel_mean: Tensor  # [3]
    eigvals: Tensor  # [3], descending
    eigvecs: Tensor  # [3, 3], column i belongs to eigvals[i]

    @classmethod
    def from_stats(cls, stats: Any, device: torch.device | str = "cpu") -> InputStats:
        """From `alexnet.stats.Stats` (or anything with those numpy fields)."""
        device = torch.device(device)
        return cls(*(_as_tensor(getattr(stats, f), device, torch.float32)
                     for f in ("mean_image", "channel_mean", "eigvals", "eigvecs")))

    def mean(self, mode: MeanMode) -> Tensor | None:
        if mode == "image":
            return self.mean_image
        if mode == "channel":
            return self.channel_mean
        if mode == "none":
            return None
        raise ConfigError(f"augment.mean: expected one of 'image', 'channel', 'none', got {mode!r}")


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
    """A CPU generator that depends only on (seed, epoch, batch index)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, 1, epoch, batch]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


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


def lighting_shift(alpha: Tensor, eigvals: Tensor, eigvecs: Tensor) -> Tensor:
    """[N, 3] RGB offsets eigvecs @ (alpha * eigvals), one per image (Section 4.1)."""
    return (alpha * eigvals) @ eigvecs.T


def apply_params(images_u8: Tensor, params: AugmentParams, size: int, stats: InputStats | None,
                 mean: MeanMode = "image", normalization: Literal["paper", "torchvision"] = "paper") -> Tensor:
    """float32 [N, 3, size, size] input from uint8 [N, S, S, 3] and one batch's choices.

    normalization "paper": raw 0-255 minus `mean` (Section 2). "torchvision": the torchvision
    variant's (x/255 - mean) / std, lighting still in 0-255 units before the scaling.
    """
    device = images_u8.device
    lit = bool(params.alpha.any())
    if (lit or (mean != "none" and normalization == "paper")) and stats is None:
        raise ConfigError("stats are needed for mean subtraction and PCA lighting")
    mean_t = stats.mean(mean) if normalization == "paper" and stats is not None else None
    x = crop_center_flip(images_u8, params.top.to(device), params.left.to(device), size,
                         params.flip.to(device), mean_t)
    if lit:
        shift = lighting_shift(params.alpha.to(device), stats.eigvals, stats.eigvecs)
        x.add_(shift[:, :, None, None])
    if normalization == "torchvision":
        x = torchvision_normalize(x)
    return x


def train_batch(images_u8: Tensor, *, size: int, augment: AugmentConfig, stats: InputStats | None,
                generator: torch.Generator, normalization: Literal["paper", "torchvision"] = "paper") -> Tensor:
    """Random crops, flips, PCA lighting and mean subtraction, on the images' device."""
    params = draw_params(images_u8.shape[0], images_u8.shape[1], size, augment, generator)
    return apply_params(images_u8, params, size, stats, augment.mean, normalization)


def torchvision_normalize(x: Tensor) -> Tensor:
    """Raw 0-255 NCHW input -> torchvision's (x/255 - mean) / std."""
    m = torch.tensor(TORCHVISION_MEAN, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(TORCHVISION_STD, device=x.device).view(1, 3, 1, 1)
    return (x / 255.0 - m) / s


def ten_crop_offsets(image_size: int, size: int) -> list[tuple[int, int, bool]]:
    """The paper's ten test patches (Section 4.1): four corners and centre, each also mirrored.

    (top, left, flip) in the order centre, top-left, top-right, bottom-left, bottom-right,
    then the same five mirrored.
    """
    c, far = center_offset(image_size, size), image_size - size
    five = [(c, c), (0, 0), (0, far), (far, 0), (far, far)]
    return [(t, l, False) for t, l in five] + [(t, l, True) for t, l in five]
