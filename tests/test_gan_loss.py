import math

import pytest
import torch

from pyi2i import ops
from pyi2i.ops.gan_loss import _gan_loss_ref

PRED = torch.tensor([[-2.0, 0.0], [1.0, 3.0]])


@pytest.mark.parametrize("real, expected", [
    (True, ((-3) ** 2 + 1 + 0 + 2**2) / 4),
    (False, (4 + 0 + 1 + 9) / 4),
])
def test_lsgan_by_hand(real, expected):
    assert ops.gan_loss(PRED, real, "lsgan", impl="ref").item() == pytest.approx(expected)


def bce(x, t):
    p = 1 / (1 + math.exp(-x))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


@pytest.mark.parametrize("real", [True, False])
def test_vanilla_by_hand(real):
    expected = sum(bce(x, float(real)) for x in PRED.flatten().tolist()) / 4
    assert ops.gan_loss(PRED, real, "vanilla", impl="ref").item() == pytest.approx(expected, rel=1e-6)


def test_wgangp_is_the_signed_mean():
    assert ops.gan_loss(PRED, True, "wgangp").item() == pytest.approx(-0.5)
    assert ops.gan_loss(PRED, False, "wgangp").item() == pytest.approx(0.5)


def test_upcast_reference_reduces_in_fp32():
    x = torch.randn(1, 1, 30, 30).bfloat16()
    assert _gan_loss_ref(x, True, "lsgan", upcast=True).dtype == torch.float32


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="gan_mode must be one of"):
        ops.gan_loss(PRED, True, "hinge")
