"""One image as the prepared store holds it: decoded (Pillow, JPEG draft mode), the shorter side
resized to the store's side and the central square cropped (Section 2: "rescale the image such
that the shorter side was of length 256, and then crop out the central 256x256 patch"), in RGB,
and for a store of format jpeg encoded again. An image too large to decode safely is refused
from its header (`check_bounds`); any failure is a one-line reason for quarantine.csv.
alexnet.data.prepare runs this in worker processes over a whole dataset.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image

# Bilinear, antialiased when shrinking (Pillow widens the filter's support by the scale factor):
# the filter of torchvision's Resize(256), so torchvision's published weights see the images
# they were trained on. The paper does not name its filter.
RESAMPLE = Image.Resampling.BILINEAR

# Format jpeg: Pillow's encoder, 4:4:4 at prepare.jpeg_quality, chosen by measurement
# (BENCHMARKS.md, "The store's format").
JPEG_SUBSAMPLING = 0  # Pillow's code for 4:4:4

_ADDRESS = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")  # reprs like <_io.BytesIO object at 0x7f..>


def resize_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(new_width, new_height, left, top): shorter side -> size, then the central size x size.

    The longer side is truncated as torchvision's Resize does (int(size * long / short)); the
    crop offset is floor((new - size) / 2).
    """
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    return new_w, new_h, (new_w - size) // 2, (new_h - size) // 2


class ImageBoundsError(ValueError):
    """An image beyond prepare.max_pixels or prepare.max_aspect, refused from its header alone."""


def check_bounds(width: int, height: int, max_pixels: int | None, max_aspect: float | None) -> None:
    """Raise ImageBoundsError if a width x height image is beyond the stated bounds."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageBoundsError(f"{width}x{height} is {width * height} pixels, more than prepare.max_pixels "
                               f"({max_pixels})")
    if max_aspect is not None and max(width, height) > max_aspect * min(width, height):
        raise ImageBoundsError(f"{width}x{height} has an aspect ratio of {max(width, height) / min(width, height):.1f}, "
                               f"beyond prepare.max_aspect ({max_aspect:g})")


def process_image(data: bytes, size: int, draft: bool = True, max_pixels: int | None = None,
                  max_aspect: float | None = None) -> np.ndarray:
    """Decode image bytes and return the paper's central crop, uint8 [size, size, 3] RGB.

    Any format Pillow reads is accepted (ImageNet's train set holds a PNG and CMYK JPEGs under
    .JPEG names); CMYK, grayscale (8 or 16 bits), palette and RGBA images are converted to RGB
    (alpha dropped, as torchvision's loader does). EXIF orientation is not applied, as torchvision's loader and
    the usual ImageNet preprocessing do not. Raises whatever Pillow raises for bytes it cannot
    decode.
    """
    with warnings.catch_warnings():
        # EXIF and ICC oddities of web images are harmless for the pixels; keep the log clean.
        warnings.simplefilter("ignore")
        img = Image.open(io.BytesIO(data))  # reads the header only
        width, height = img.size
        if width < 1 or height < 1:
            raise ValueError(f"empty image {width}x{height}")
        check_bounds(width, height, max_pixels, max_aspect)  # before any pixel is decoded
        new_w, new_h, left, top = resize_geometry(width, height, size)
        # Decode downscaled in the DCT domain by the largest of 1/2, 1/4, 1/8 that keeps the image
        # at least new_w x new_h; a no-op for non-JPEGs. `box` is where the whole original image
        # lies in the decoded one, so the resize below maps exactly the same region either way.
        box = (0.0, 0.0, float(width), float(height))
        if draft:
            drafted = img.draft("RGB", (new_w, new_h))
            if drafted is not None:
                box = tuple(float(v) for v in drafted[1])
        img.load()
        if img.mode == "I" or img.mode.startswith("I;16"):
            # 16-bit grayscale (PNG/TIFF): Pillow's convert would clip at 255, not rescale.
            wide = np.asarray(img).astype(np.int64)
            img = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8))
        if img.mode != "RGB":
            img = img.convert("RGB")
        img = img.resize((new_w, new_h), RESAMPLE, box=box)
        img = img.crop((left, top, left + size, top + size))
        out = np.asarray(img, dtype=np.uint8)
    if out.shape != (size, size, 3):  # defensive: a mode Pillow could not map to 3 channels
        raise ValueError(f"decoded to shape {out.shape}, expected {(size, size, 3)}")
    return out


def failure_reason(e: Exception) -> str:
    """One line naming the failure, without object addresses (quarantine.csv must be deterministic)."""
    msg = _ADDRESS.sub("", str(e)).replace("\n", " ").strip()
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """uint8 [S, S, 3] RGB -> JPEG bytes as the jpeg store holds them (same bytes every run)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING)
    return buf.getvalue()
