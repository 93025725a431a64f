"""Fused ops with a pure-PyTorch reference beside each fast path (see _dispatch for backends)."""

from pyi2i.ops._dispatch import IMPLS, BackendUnavailable, reference_only, requested_impl
from pyi2i.ops.conv_norm_act import conv_norm_act
from pyi2i.ops.gan_loss import GAN_MODES, gan_loss
from pyi2i.ops.l1_loss import l1_loss
from pyi2i.ops.norm_act import ACTIVATIONS, LEAKY_RELU_SLOPE, activation, instance_norm_act

__all__ = [
    "ACTIVATIONS", "GAN_MODES", "IMPLS", "LEAKY_RELU_SLOPE", "BackendUnavailable",
    "activation", "conv_norm_act", "reference_only", "requested_impl", "gan_loss", "instance_norm_act", "l1_loss",
]
