"""alexnet.data.input.pixels: the test-time crops pixel for pixel, against hand-coded images and torchvision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from alexnet.data.input import pixels
from alexnet.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# ten-crop geometry


def _coded_images(n: int, size: int) -> np.ndarray:
    """uint8 images whose every pixel value says where it is: no two (y, x, c) alike per image."""
    y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    base = (y * 31 + x * 7 + c * 101) % 251
    return np.stack([(base + i) % 256 for i in range(n)]).astype(np.uint8)


def test_ten_crop_views_offsets():
    views = pixels.ten_crop_views(256, 224)
    assert [(v.top, v.left, v.flip) for v in views] == [
        (0, 0, False), (0, 32, False), (32, 0, False), (32, 32, False), (16, 16, False),
        (0, 0, True), (0, 32, True), (32, 0, True), (32, 32, True), (16, 16, True)]
    assert views[pixels.CENTER_VIEW].name == "center"
    assert pixels.ten_crop_views(256, 227)[pixels.CENTER_VIEW].top == 14  # 14.5; torchvision rounds to 14 too


@pytest.mark.parametrize("size,crop", [(12, 7), (11, 8)])
def test_ten_crop_input_pixel_for_pixel(size, crop):
    imgs = _coded_images(3, size)
    x = pixels.ten_crop_input(imgs, crop).numpy()
    assert x.shape == (30, 3, crop, crop) and x.dtype == np.float32
    far, mid = size - crop, (size - crop) // 2
    corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
    for v, (t, l) in enumerate(corners * 2):
        for i in range(3):
            want = imgs[i, t:t + crop, l:l + crop].transpose(2, 0, 1).astype(np.float32)
            if v >= 5:
                want = want[:, :, ::-1]
            np.testing.assert_array_equal(x[v * 3 + i], want, err_msg=f"view {v} image {i}")


def test_ten_crop_input_matches_torchvision_ten_crop():
    # An even margin (16 - 10): torchvision centres with round(), we floor, as training does.
    imgs = _coded_images(2, 16)
    ours = pixels.ten_crop_input(imgs, 10).view(10, 2, 3, 10, 10)
    # torchvision crops the mirrored image, so its mirrored top-left is our mirrored top-right
    theirs_order = [0, 1, 2, 3, 4, 6, 5, 8, 7, 9]
    for i in range(2):
        chw = torch.from_numpy(imgs[i]).permute(2, 0, 1)
        theirs = v2.functional.ten_crop(chw, [10, 10])
        for v in range(10):
            torch.testing.assert_close(ours[v, i], theirs[theirs_order[v]].float(), rtol=0, atol=0)


def test_ten_crop_input_subtracts_the_mean_image_at_each_offset():
    size, crop = 10, 6
    imgs = _coded_images(2, size)
    mean = np.random.default_rng(0).uniform(0, 255, (size, size, 3)).astype(np.float32)
    x = pixels.ten_crop_input(imgs, crop, mean).numpy()
    centred = imgs.astype(np.float32) - mean
    for v, view in enumerate(pixels.ten_crop_views(size, crop)):
        for i in range(2):
            want = centred[i, view.top:view.top + crop, view.left:view.left + crop].transpose(2, 0, 1)
            if view.flip:
                want = want[:, :, ::-1]
            np.testing.assert_allclose(x[v * 2 + i], want, rtol=0, atol=1e-4)
    # channel mean: the same number off every pixel of a channel
    cm = np.array([10.0, 20.0, 30.0], dtype=np.float32)
    xc = pixels.ten_crop_input(imgs, crop, cm).numpy()
    np.testing.assert_allclose(xc, pixels.ten_crop_input(imgs, crop).numpy() - cm[None, :, None, None], atol=1e-4)


def test_torchvision_normalization():
    imgs = _coded_images(1, 8)
    x = pixels.ten_crop_input(imgs, 8, normalization="torchvision")[0]
    t = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                    v2.Normalize(pixels.TORCHVISION_MEAN, pixels.TORCHVISION_STD)])(torch.from_numpy(imgs[0]).permute(2, 0, 1))
    torch.testing.assert_close(x, t)


def test_center_crop_is_a_view_at_the_floored_centre():
    imgs = _coded_images(2, 11)
    got = pixels.center_crop(imgs, 8)
    assert np.shares_memory(got, imgs)
    np.testing.assert_array_equal(got, imgs[:, 1:9, 1:9])  # (11 - 8) // 2 = 1


def test_select_mean_names_the_param_on_a_bad_mode():
    assert pixels.select_mean("image", "I", "C") == "I" and pixels.select_mean("channel", "I", "C") == "C"
    assert pixels.select_mean("none", "I", "C") is None
    with pytest.raises(ConfigError, match="augment.mean"):
        pixels.select_mean("pixel", "I", "C")
