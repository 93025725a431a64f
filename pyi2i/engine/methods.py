"""The built-in training methods, registered by name, and how a configuration builds one."""

from __future__ import annotations

import torch

from pyi2i.config import TrainConfig
from pyi2i.engine.colorization import Colorization
from pyi2i.engine.cyclegan import CycleGAN
from pyi2i.engine.method import Method
from pyi2i.engine.pix2pix import Pix2Pix
from pyi2i.registry import METHODS

__all__ = ["Colorization", "CycleGAN", "METHODS", "Pix2Pix", "build_method"]


def build_method(config: TrainConfig, device: torch.device) -> Method:
    """The method `config.model.arch` names, built from the model, loss, optim and speed sections
    (and its own options) of a resolved configuration."""
    return METHODS.get(config.model.arch)(config.model, config.loss, config.optim, config.speed, device,
                                          config.method)
