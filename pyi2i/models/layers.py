"""Building blocks shared by the generators and discriminators, and weight initialisation."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import init

from pyi2i import ops

# syncbatch is batch norm whose statistics span every process of a distributed run; it is converted
# when the networks are wrapped for data parallelism, and is plain batch norm in a single process.
NORMS = ("instance", "batch", "syncbatch", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def conv_bias(norm: str) -> bool:
    """Convs followed by a norm carry a bias only with instance norm (batch norm has its own shift;
    with norm 'none' the original release still leaves it off)."""
    return norm == "instance"


class NormAct(nn.Module):
    """norm -> activation (-> + residual): instance norm goes through the fused op layer.

    With `norm='batch'` (or 'syncbatch') the BatchNorm2d is the child `bn`, so its state keeps the
    names the original release gives it (weight, bias, running_mean, running_var, num_batches_tracked).
    """

    def __init__(self, num_features: int, norm: str, act: str = "none", impl: str = "auto"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.norm, self.act, self.impl = norm, act, impl
        self.bn = nn.BatchNorm2d(num_features) if norm in ("batch", "syncbatch") else None

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm == "instance":
            return ops.instance_norm_act(x, residual=residual, act=self.act, impl=self.impl)
        y = ops.activation(x if self.bn is None else self.bn(x), self.act)
        return y if residual is None else residual + y

    def extra_repr(self) -> str:
        return f"norm={self.norm}, act={self.act}, impl={self.impl}"


class ConvNormAct(nn.Module):
    """A convolution (or transposed convolution) followed by NormAct.

    The PatchGAN's unit (conv 4x4, pad 1 -> instance norm -> LeakyReLU) is one op of its own
    (ops.conv_norm_act) with backends that have it (impl 'cuda', or 'auto'); the others fuse the
    norm and the activation only.
    """

    def __init__(self, conv: nn.Module, norm: str, act: str, impl: str = "auto"):
        super().__init__()
        self.conv = conv
        self.norm_act = NormAct(conv.out_channels, norm, act, impl)
        self.patchgan_block = (type(conv) is nn.Conv2d and norm == "instance" and act == "leaky_relu"
                               and conv.kernel_size == (4, 4) and conv.padding == (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        impl = self.norm_act.impl
        if self.patchgan_block and ops.requested_impl(impl) in ("auto", "cuda"):
            return ops.conv_norm_act(x, self.conv.weight, self.conv.bias, stride=self.conv.stride[0], impl=impl)
        return self.norm_act(self.conv(x))


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """The original release's initialisation: conv/linear weights from `init_type`, biases 0;
    batch-norm weights ~ N(1, init_gain), biases 0."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type must be one of {INIT_TYPES}, got {init_type!r}")

    def init_module(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                init.normal_(m.weight, 0.0, init_gain)
            elif init_type == "xavier":
                init.xavier_normal_(m.weight, gain=init_gain)
            elif init_type == "kaiming":
                init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                init.orthogonal_(m.weight, gain=init_gain)
            if m.bias is not None:
                init.constant_(m.bias, 0.0)
        elif isinstance(m, nn.BatchNorm2d):
            init.normal_(m.weight, 1.0, init_gain)
            init.constant_(m.bias, 0.0)

    return net.apply(init_module)
