"""Colorization: the sRGB <-> Lab conversion against scikit-image."""

import warnings

import numpy as np
import pytest
import torch

from pyi2i.data.lab import l_ab_to_image, l_ab_to_rgb, lab_to_rgb, rgb_to_l_ab, rgb_to_lab

# Largest difference from scikit-image's float64 result, by the precision the conversion runs in:
# (Lab units, RGB in [0, 1]).
TOLERANCES = {torch.float64: (1e-9, 1e-12), torch.float32: (2e-4, 1e-5)}
SHAPES = [(3, 17, 23), (2, 3, 5, 7), (3, 1, 1), (1, 3, 64, 1)]
# sRGB primaries and extremes in Lab (D65), as published colour tables give them. The sRGB matrix and
# the white point that scikit-image uses disagree in the fourth digit, so white comes out a few
# thousandths off neutral there (and here).
KNOWN = {
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0): (53.2408, 80.0925, 67.2032),
    (0.0, 1.0, 0.0): (87.7347, -86.1827, 83.1793),
    (0.0, 0.0, 1.0): (32.2970, 79.1875, -107.8602),
}


def skimage_color():
    return pytest.importorskip("skimage.color", reason="scikit-image is not installed: pip install scikit-image")


def random_rgb(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random(shape))


def random_lab(shape, seed=0):
    """Lab values over the whole range a network might output, most of them outside the sRGB gamut."""
    rng = np.random.default_rng(seed)
    n, rest = shape[:-3], shape[-2:]
    lab = np.stack([rng.uniform(0, 100, (*n, *rest)), rng.uniform(-128, 127, (*n, *rest)),
                    rng.uniform(-128, 127, (*n, *rest))], axis=-3)
    return torch.from_numpy(lab)


# ---- the conversion ----

@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_rgb_to_lab_matches_skimage(shape, dtype):
    color = skimage_color()
    rgb = random_rgb(shape)
    expected = color.rgb2lab(rgb.numpy(), channel_axis=-3)
    got = rgb_to_lab(rgb.to(dtype))
    assert got.dtype == dtype and got.shape == rgb.shape
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=TOLERANCES[dtype][0])


@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_lab_to_rgb_matches_skimage(shape, dtype):
    color = skimage_color()
    lab = random_lab(shape)
    with warnings.catch_warnings():  # scikit-image warns about the colours it clamps (Z < 0)
        warnings.simplefilter("ignore")
        expected = color.lab2rgb(lab.numpy(), channel_axis=-3)
    got = lab_to_rgb(lab.to(dtype))
    assert got.dtype == dtype and got.shape == lab.shape
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=0, atol=TOLERANCES[dtype][1])


@pytest.mark.parametrize("rgb, lab", list(KNOWN.items()))
def test_known_colours(rgb, lab):
    got = rgb_to_lab(torch.tensor(rgb, dtype=torch.float64).view(3, 1, 1)).flatten()
    np.testing.assert_allclose(got.numpy(), lab, atol=1e-2)
    back = lab_to_rgb(torch.tensor(lab, dtype=torch.float64).view(3, 1, 1)).flatten()
    np.testing.assert_allclose(back.numpy(), rgb, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip(shape):
    rgb = random_rgb(shape, seed=1)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)).numpy(), rgb.numpy(), atol=1e-12)
    L, ab = rgb_to_l_ab(rgb)
    assert L.shape[-3] == 1 and ab.shape[-3] == 2
    np.testing.assert_allclose(l_ab_to_rgb(L, ab).numpy(), rgb.numpy(), atol=1e-12)


def test_layouts_and_low_precision_inputs():
    rgb = random_rgb((2, 3, 6, 5)).float()
    expected = rgb_to_lab(rgb)
    channels_last = rgb.contiguous(memory_format=torch.channels_last)
    non_contiguous = torch.stack([rgb, rgb], dim=-1)[..., 0]
    for x in (channels_last, non_contiguous):  # vectorised or not, float32 powers differ in the last bit
        torch.testing.assert_close(rgb_to_lab(x), expected, rtol=1e-6, atol=1e-5)
    # Half precision inputs are converted in float32: the result is that of the rounded input.
    for dtype in (torch.float16, torch.bfloat16):
        low = rgb.to(dtype)
        assert rgb_to_lab(low).dtype == torch.float32
        torch.testing.assert_close(rgb_to_lab(low), rgb_to_lab(low.float()), rtol=0, atol=0)


def test_scaling_of_l_and_ab():
    L, ab = rgb_to_l_ab(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(3, 1, 1))
    assert L.item() == pytest.approx(53.2408 / 50 - 1, abs=1e-5)
    np.testing.assert_allclose(ab.flatten().numpy(), [80.0925 / 110, 67.2032 / 110], atol=1e-5)
    white_L, white_ab = rgb_to_l_ab(torch.ones(3, 1, 1))
    assert white_L.item() == pytest.approx(1.0, abs=1e-5) and white_ab.abs().max() < 1e-4


def test_wrong_channels_are_refused():
    with pytest.raises(ValueError, match="3 channels at dim -3"):
        rgb_to_lab(torch.rand(4, 8, 8))
    with pytest.raises(ValueError, match="3 channels at dim -3"):
        lab_to_rgb(torch.rand(8, 8))
    with pytest.raises(ValueError, match=r"L of shape \(\.\.\., 1, H, W\) and ab of shape \(\.\.\., 2, H, W\)"):
        l_ab_to_rgb(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="L of shape"):
        l_ab_to_rgb(torch.rand(1, 8, 8), torch.rand(2, 8, 9))


def test_image_of_l_and_ab_matches_the_original_conversion():
    """The original writes skimage's lab2rgb(Lab) * 255, truncated to uint8."""
    color = skimage_color()
    L = torch.rand(2, 1, 9, 7) * 2 - 1
    ab = torch.rand(2, 2, 9, 7) * 2 - 1  # a network's tanh output: many colours out of gamut
    image = l_ab_to_image(L, ab)
    assert image.dtype == np.uint8 and image.shape == (2, 9, 7, 3)
    lab = torch.cat([(L.double() + 1) * 50, ab.double() * 110], dim=1).permute(0, 2, 3, 1).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = (color.lab2rgb(lab) * 255).astype(np.uint8)
    np.testing.assert_array_equal(image, expected)
    assert l_ab_to_image(L[0], ab[0]).shape == (9, 7, 3)
