"""Stored pixels -> network input, with no randomness: crops, mirroring, mean subtraction and
torchvision's normalisation, the same for training, evaluation and analysis.

- `crop_center_flip` / `render` are the one place stored uint8 HWC pixels become float32 NCHW
  input: ((image - mean)[crop]) (+ a lighting shift), mirrored where asked, on the images' device.
- `select_mean` says what is subtracted (`augment.mean`): the stats stage's mean image (cropped
  at each image's own offsets, as the paper subtracts per-pixel means), the per-channel mean, or
  nothing. The torchvision variant instead takes (x/255 - mean) / std (`torchvision_normalize`).
- `center_offset`, `ten_crop_views` (Section 4.1's ten test patches), `ten_crop_input`,
  `center_crop`, `center_input`, `input_size_of`: the test-time crops.
The paper's random choices (crop offsets, flips, PCA lighting) are alexnet.data.input.augment's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from alexnet.errors import ConfigError

MeanMode = Literal["image", "channel", "none"]
Normalization = Literal["paper", "torchvision"]
# torchvision's ImageNet normalisation (its transforms.Normalize in the AlexNet_Weights preset).
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
TORCHVISION_RESIZE = 256  # torchvision's reference evaluation: Resize(256) then CenterCrop(224)
TORCHVISION_CROP = 224


def as_tensor(x: Any, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device=device, dtype=dtype or t.dtype)


def crop_center_flip(images_u8: Tensor | np.ndarray, top: Any, left: Any, size: int,
                     flip: Any | None = None, mean: Tensor | np.ndarray | None = None) -> Tensor:
    """((image - mean)[top:top+size, left:left+size]), mirrored left-right where `flip`.

    images_u8: uint8 [N, S, S, 3] (HWC, as stored), a numpy array or a tensor on any device;
    top, left: [N] offsets; flip: [N] bool or None; mean: [S, S, 3] (a mean image, cropped at
    the same offsets and mirrored with the image), [3] (per channel) or None. Returns float32
    [N, 3, size, size] (contiguous NCHW) on the images' device (the CPU for numpy input).
    """
    return render(images_u8, top, left, size, flip, mean, None)


def render(images_u8: Tensor | np.ndarray, top: Any, left: Any, size: int, flip: Any | None,
           mean: Tensor | np.ndarray | None, shift: Any | None, out: np.ndarray | None = None) -> Tensor:
    """`crop_center_flip` plus a per-image RGB `shift` [N, 3] added to every pixel (lighting).

    `out`: optionally a float32 [N, 3, size, size] array for the CPU path to write into (the
    loader recycles them: fresh 77 MB arrays cost page faults and zeroing on every batch).

    Two implementations of the same arithmetic, both tested against a per-image reference:
    on the CPU, torch ops on each image's crop view (`_render_cpu`); on other devices, one
    batched torch gather from an unfolded view, then elementwise ops, all on the device.
    """
    on_cpu = not isinstance(images_u8, Tensor) or images_u8.device.type == "cpu"
    images = images_u8 if isinstance(images_u8, Tensor) else torch.from_numpy(np.asarray(images_u8))
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected uint8 [N, S, S, 3], got {images.dtype} {tuple(images.shape)}")
    n, height, width, _ = images.shape
    if height != width:
        raise ValueError(f"images: expected square [N, S, S, 3], got {tuple(images.shape)}")
    top = as_tensor(top, torch.device("cpu") if not isinstance(top, Tensor) else top.device, torch.int64).reshape(-1)
    left = as_tensor(left, top.device, torch.int64).reshape(-1)
    if top.numel() != n or left.numel() != n:
        raise ValueError(f"top/left: expected {n} offsets each, got {top.numel()} and {left.numel()}")
    if not 1 <= size <= height:
        raise ValueError(f"crop size {size} does not fit {height}x{width} images")
    if n and (top.min() < 0 or left.min() < 0 or top.max() > height - size or left.max() > width - size):
        raise ValueError(f"crop offsets must lie in [0, {height - size}] x [0, {width - size}] for a {size} crop")
    flip = None if flip is None else as_tensor(flip, top.device, torch.bool).reshape(-1)
    if flip is not None and flip.numel() != n:
        raise ValueError(f"flip: expected {n} values, got {flip.numel()}")
    if mean is not None:  # (kept where it is: a mean image on the GPU stays there)
        mean = as_tensor(mean, mean.device if isinstance(mean, Tensor) else images.device, torch.float32)
        if mean.shape not in ((3,), (height, width, 3)):
            raise ValueError(f"mean: expected [3] or [{height}, {width}, 3], got {tuple(mean.shape)}")
    if shift is not None:
        shift = as_tensor(shift, shift.device if isinstance(shift, Tensor) else images.device,
                           torch.float32).reshape(n, 3)
    if on_cpu:
        return _render_cpu(images.numpy(), top, left, size, flip, mean, shift, out)
    return _render_torch(images, top, left, size, flip, mean, shift)


def to_numpy(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy()


def _render_cpu(images: np.ndarray, top: Tensor, left: Tensor, size: int, flip: Tensor | None,
                mean: Tensor | None, shift: Tensor | None, out: np.ndarray | None = None) -> Tensor:
    """The CPU path: per image, one torch op from the HWC crop view to the CHW float output.

    A crop is a plain strided view of its image (and of a planar mean image, or of its mirror
    image when flipped), so no index arrays are built; torch's transposing uint8 -> float32
    kernels do crop, HWC -> CHW, conversion and mean subtraction in one pass, and lighting in
    a second. Measured 2x faster per image than batched numpy fancy-index gathers (the batched
    torch gather of `_render_torch` is 15x slower on a CPU). The loop's Python is a few calls
    per image, under 5% of its time.
    """
    n, s = images.shape[0], images.shape[1]
    if out is None:
        out = np.empty((n, 3, size, size), np.float32)
    elif out.shape != (n, 3, size, size) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out: expected a C-contiguous float32 {(n, 3, size, size)} array")
    x, o = torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(out)
    planar = mirrored = None
    # Per-image constants subtracted in the second pass: a channel mean, minus the lighting shift.
    offset = torch.zeros(n, 3, 1, 1)
    if mean is not None and mean.dim() == 3:
        planar = mean.cpu().permute(2, 0, 1).contiguous()
        mirrored = planar.flip(-1).contiguous()
    elif mean is not None:
        offset += mean.cpu().view(1, 3, 1, 1)
    if shift is not None:
        offset -= shift.cpu().view(n, 3, 1, 1)
    offsets_used = bool(offset.any())
    flips = [False] * n if flip is None else flip.cpu().tolist()
    for i, (t, l, f) in enumerate(zip(top.cpu().tolist(), left.cpu().tolist(), flips)):
        crop = x[i, t:t + size, l:l + size].permute(2, 0, 1)
        if f:
            crop = crop.flip(-1)
        if planar is None:
            o[i].copy_(crop)
        elif f:  # the mirror image's columns [S - l - size, S - l) are the flipped crop's mean
            torch.sub(crop, mirrored[:, t:t + size, s - l - size:s - l], out=o[i])
        else:
            torch.sub(crop, planar[:, t:t + size, l:l + size], out=o[i])
        if offsets_used:
            o[i].sub_(offset[i])
    return o


def _render_torch(images: Tensor, top: Tensor, left: Tensor, size: int, flip: Tensor | None,
                  mean: Tensor | None, shift: Tensor | None) -> Tensor:
    device = images.device
    top, left = top.to(device, non_blocking=True), left.to(device, non_blocking=True)
    # [N, P, P, 3, size, size] view of every possible crop; indexing (image, top, left) picks
    # each image's own crop, already in NCHW order, in one gather.
    windows = images.unfold(1, size, 1).unfold(2, size, 1)
    out = windows[torch.arange(images.shape[0], device=device), top, left].float()
    if mean is not None:
        mean = mean.to(device, non_blocking=True)
        if mean.dim() == 3:
            out.sub_(mean.unfold(0, size, 1).unfold(1, size, 1)[top, left])
        else:
            out.sub_(mean.view(1, 3, 1, 1))
    if shift is not None:
        out.add_(shift.to(device, non_blocking=True)[:, :, None, None])
    if flip is not None:
        out = torch.where(flip.to(device, non_blocking=True).view(-1, 1, 1, 1), out.flip(-1), out)
    return out.contiguous()


def center_offset(image_size: int, size: int) -> int:
    """Top (= left) offset of the centre crop; 16 for 224 of 256."""
    if size > image_size:
        raise ConfigError(f"a {size} crop does not fit a {image_size} image")
    return (image_size - size) // 2


def select_mean(mode: MeanMode, image: Any, channel: Any) -> Any:
    """What is subtracted from the pixels (augment.mean): the mean image [S, S, 3] (Section 2),
    the per-channel mean [3], or nothing (None); returned as given (numpy or tensor)."""
    if mode == "image":
        return image
    if mode == "channel":
        return channel
    if mode == "none":
        return None
    raise ConfigError(f"augment.mean: expected one of 'image', 'channel', 'none', got {mode!r}")


def stats_mean(mode: MeanMode, stats: Any) -> np.ndarray | None:
    """select_mean of alexnet.data.stats.Stats' arrays, as float32 numpy (evaluation and analysis)."""
    return select_mean(mode, np.asarray(stats.mean_image, dtype=np.float32),
                       np.asarray(stats.channel_mean, dtype=np.float32))


def input_size_of(model: torch.nn.Module) -> int:
    """The crop the net takes: its own config's 224 or 227, 224 for the torchvision variant."""
    return model.cfg.input_size if model.input_normalization == "paper" else TORCHVISION_CROP


def center_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The centre size x size patch of [..., S, S, 3] images: a view, no copy."""
    o = center_offset(images.shape[-3], size)
    return images[..., o:o + size, o:o + size, :]


def center_input(images_u8: np.ndarray, size: int, mean: Any, normalization: Normalization) -> Tensor:
    """The centre crop of stored uint8 [N, S, S, 3] images as a net's float32 NCHW input."""
    offset = np.full(len(images_u8), center_offset(images_u8.shape[1], size), dtype=np.int64)
    if normalization == "torchvision":
        return torchvision_normalize(crop_center_flip(images_u8, offset, offset, size, None, None))
    return crop_center_flip(images_u8, offset, offset, size, None, mean)


def torchvision_normalize(x: Tensor) -> Tensor:
    """Raw 0-255 NCHW input -> torchvision's (x/255 - mean) / std."""
    m = torch.tensor(TORCHVISION_MEAN, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(TORCHVISION_STD, device=x.device).view(1, 3, 1, 1)
    return (x / 255.0 - m) / s





@dataclass(frozen=True)
class View:
    """One test patch: its top-left corner in the S x S image, and whether it is mirrored."""

    name: str
    top: int
    left: int
    flip: bool


def ten_crop_views(image_size: int, crop: int) -> list[View]:
    """The paper's ten patches: four corners and the centre, then the same five mirrored.

    Index 4 (`center`, unflipped) is the single centre crop.
    """
    far = image_size - crop
    mid = center_offset(image_size, crop)
    five = [("top_left", 0, 0), ("top_right", 0, far), ("bottom_left", far, 0),
            ("bottom_right", far, far), ("center", mid, mid)]
    return ([View(n, t, l, False) for n, t, l in five]
            + [View(f"{n}_flip", t, l, True) for n, t, l in five])


CENTER_VIEW = 4  # position of the unflipped centre patch in ten_crop_views()


def ten_crop_input(images: torch.Tensor, crop: int, mean: torch.Tensor | np.ndarray | None = None,
                   normalization: str = "paper") -> torch.Tensor:
    """Network input for the ten views of every image [n, S, S, 3] uint8, view-major:
    [10 n, 3, crop, crop] (rows v*n .. v*n+n-1 are view v of ten_crop_views).

    "paper": the mean (image [S, S, 3] or channel [3]) is subtracted before cropping, exactly as
    in training (crop_center_flip), so each patch loses the mean image at its own offset.
    "torchvision": raw pixels scaled to [0, 1] and normalised with ImageNet's mean and std.
    """
    if normalization not in ("paper", "torchvision"):
        raise ValueError(f"normalization must be 'paper' or 'torchvision', got {normalization!r}")
    images = torch.as_tensor(images)
    if mean is not None:
        mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device)
    n = images.shape[0]
    views = ten_crop_views(images.shape[1], crop)
    parts: dict[tuple[int, int], torch.Tensor] = {}
    for v in views:
        if not v.flip:
            top = torch.full((n,), v.top, dtype=torch.long, device=images.device)
            left = torch.full((n,), v.left, dtype=torch.long, device=images.device)
            parts[v.top, v.left] = crop_center_flip(images, top, left, crop, None,
                                                    mean if normalization == "paper" else None)
    # A mirrored view is its unmirrored patch, mean included, read right to left: crop_center_flip
    # with flip=True gives exactly this, at twice the gathering cost.
    x = torch.cat([parts[v.top, v.left].flip(-1) if v.flip else parts[v.top, v.left] for v in views])
    if normalization == "torchvision":
        x = torchvision_normalize(x)  # x is float32: the same ops as torchvision's ToTensor + Normalize
    return x


__all__ = ["CENTER_VIEW", "TORCHVISION_CROP", "TORCHVISION_MEAN", "TORCHVISION_RESIZE", "TORCHVISION_STD", "MeanMode",
           "Normalization", "View", "as_tensor", "center_crop", "center_input", "center_offset", "crop_center_flip",
           "input_size_of", "render", "select_mean", "stats_mean", "ten_crop_input", "ten_crop_views", "to_numpy",
           "torchvision_normalize"]
