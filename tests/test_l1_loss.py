import pytest
import torch

from pyi2i import ops


def test_l1_by_hand():
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    y = torch.tensor([[0.0, 1.0], [0.5, -1.0]])
    assert ops.l1_loss(x, y, impl="ref").item() == pytest.approx((1 + 3 + 0 + 1) / 4)


def test_l1_gradient_is_sign_over_count():
    x = torch.tensor([2.0, -1.0, 0.5, 3.0], requires_grad=True)
    ops.l1_loss(x, torch.zeros(4), impl="ref").backward()
    assert torch.equal(x.grad, torch.tensor([1.0, -1.0, 1.0, 1.0]) / 4)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="one shape"):
        ops.l1_loss(torch.zeros(2, 3), torch.zeros(3, 2))
