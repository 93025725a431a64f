"""sRGB <-> CIE Lab (D65 white, 2-degree observer), and the scaled L / ab pair colorization trains on.

The formulas are those of scikit-image's `rgb2lab` and `lab2rgb`, which the original release's
colorization model uses, so that Lab values, and the RGB images made from them, match it:
sRGB gamma, the sRGB-to-XYZ matrix, the CIE cube root with its linear toe, and in the inverse a
clamp of Z at 0 and a clip of RGB to [0, 1].

Every function works on tensors with channels at dim -3 ((3, H, W) or (N, 3, H, W)), in the input's
precision (at least float32), on any device. Only elementwise operations with Python constants are
used: no host copies, so the conversion can run inside a captured CUDA graph.
"""

from __future__ import annotations

import numpy as np
import torch

# sRGB (linear) -> XYZ, and its inverse, as scikit-image defines them.
_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423),
                 (0.212671, 0.715160, 0.072169),
                 (0.019334, 0.119193, 0.950227))
_RGB_FROM_XYZ = tuple(map(tuple, np.linalg.inv(np.array(_XYZ_FROM_RGB)).tolist()))
_D65_WHITE = (0.95047, 1.0, 1.08883)  # XYZ of the reference white

_EPSILON = 0.008856  # (6/29)^3, to the precision of the usual CIE tables
_KAPPA_SLOPE = 7.787  # slope of the linear toe of f(t) below _EPSILON
_F_OFFSET = 16.0 / 116.0
_F_EPSILON = 0.2068966  # f(_EPSILON) = 6/29: where the inverse switches from cube to linear

# The original's scaling of Lab into a network's [-1, 1] range: L in [0, 100], a and b within +-110.
L_CENTER = 50.0
AB_SCALE = 110.0


def _mix(matrix, x: torch.Tensor) -> torch.Tensor:
    """`matrix` (3 x 3 Python floats) times the channel vector of every pixel of `x` (..., 3, H, W)."""
    c = x.unbind(-3)
    return torch.stack([row[0] * c[0] + row[1] * c[1] + row[2] * c[2] for row in matrix], dim=-3)


def _working(x: torch.Tensor) -> torch.Tensor:
    # float16 and bfloat16 hold too few digits for the cube roots and powers of the conversion.
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_channels(x: torch.Tensor, what: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{what} must have 3 channels at dim -3 ((3, H, W) or (N, 3, H, W)), got shape "
                         f"{tuple(x.shape)}")


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """Lab (L in [0, 100], a and b about [-128, 127]) of sRGB values in [0, 1]; shapes (..., 3, H, W)."""
    _check_channels(rgb, "rgb")
    rgb = _working(rgb)
    linear = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _mix(_XYZ_FROM_RGB, linear)
    t = torch.stack([c / w for c, w in zip(xyz.unbind(-3), _D65_WHITE)], dim=-3)
    f = torch.where(t > _EPSILON, t.clamp_min(_EPSILON) ** (1.0 / 3.0), _KAPPA_SLOPE * t + _F_OFFSET)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] of Lab values; colours outside the sRGB gamut are clipped, as scikit-image does."""
    _check_channels(lab, "lab")
    L, a, b = _working(lab).unbind(-3)
    fy = (L + 16.0) / 116.0
    # A Z below zero is no colour at all; scikit-image sets it to zero (and warns).
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0.0)], dim=-3)
    t = torch.where(f > _F_EPSILON, f ** 3, (f - _F_OFFSET) / _KAPPA_SLOPE)
    xyz = torch.stack([c * w for c, w in zip(t.unbind(-3), _D65_WHITE)], dim=-3)
    linear = _mix(_RGB_FROM_XYZ, xyz)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055,
                      linear * 12.92)
    return rgb.clamp(0.0, 1.0)


def rgb_to_l_ab(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, ab) of sRGB values in [0, 1], scaled as the original's colorization data: L / 50 - 1 in
    [-1, 1] with shape (..., 1, H, W), and ab / 110 with shape (..., 2, H, W)."""
    lab = rgb_to_lab(rgb)
    return lab[..., :1, :, :] / L_CENTER - 1.0, lab[..., 1:, :, :] / AB_SCALE


def l_ab_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], (..., 3, H, W), of a scaled (L, ab) pair as `rgb_to_l_ab` gives and a
    colorization generator takes and returns: L (..., 1, H, W), ab (..., 2, H, W)."""
    if L.shape[-3:-2] != (1,) or ab.shape[-3:-2] != (2,) or L.shape[-2:] != ab.shape[-2:]:
        raise ValueError(f"expected L of shape (..., 1, H, W) and ab of shape (..., 2, H, W), got "
                         f"{tuple(L.shape)} and {tuple(ab.shape)}")
    L, ab = _working(L), _working(ab)
    return lab_to_rgb(torch.cat([(L + 1.0) * L_CENTER, ab * AB_SCALE], dim=-3))


def l_ab_to_image(L: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """The RGB image, (..., H, W, 3) uint8, of a scaled (L, ab) pair: a colorization generator's
    input and output, or its input and the true ab. Levels are truncated, not rounded, as the
    original release writes them, so that saved images match its files."""
    rgb = l_ab_to_rgb(L.detach().to("cpu", torch.float64), ab.detach().to("cpu", torch.float64))
    return (rgb.movedim(-3, -1).numpy() * 255.0).astype(np.uint8)
