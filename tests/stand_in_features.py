"""A small, fixed feature network standing in for Inception-v3 where its weights are not available."""

import torch
import torch.nn as nn


class TinyFeatures(nn.Module):
    """uint8 (N, 3, H, W) -> (N, 16): two random convolutions (seeded, so always the same) and a global mean."""

    num_features = 16

    def __init__(self):
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(1234)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.Tanh(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        torch.random.set_rng_state(generator_state)
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float() / 127.5 - 1)


def tiny_features() -> nn.Module:
    return TinyFeatures()
