"""Fully connected GAN pair (Goodfellow et al. 2014; the cs231n assignment's sizes by default)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.base import GANNetOptions, initialised


class MLPGenerator(nn.Module):
    """noise → hidden → ReLU → hidden → ReLU → C·H·W → tanh, reshaped to (N, C, H, W)."""

    def __init__(self, image_size: int, nz: int = 96, hidden: int = 1024, channels: int = 1):
        super().__init__()
        self.nz, self.shape = nz, (channels, image_size, image_size)
        self.net = nn.Sequential(
            nn.Linear(nz, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels * image_size * image_size),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.flatten(1)).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """flatten → hidden → LeakyReLU(0.01) → hidden → LeakyReLU(0.01) → 1 logit per image."""

    def __init__(self, image_size: int, hidden: int = 256, channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.01),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


@dataclass
class MLPGeneratorOptions(GANNetOptions):
    """``nets.G`` of ``arch: mlp``."""

    nz: int = 96
    hidden: int = 1024


@dataclass
class MLPDiscriminatorOptions(GANNetOptions):
    """``nets.D`` of ``arch: mlp``."""

    hidden: int = 256


def check(opts: MLPGeneratorOptions | MLPDiscriminatorOptions, size: int, channels: int) -> None:
    if opts.hidden <= 0 or getattr(opts, "nz", 1) <= 0:
        raise ConfigError(f"mlp: hidden and nz must be positive (got {opts})")


def build_generator(opts: MLPGeneratorOptions, size: int, channels: int) -> nn.Module:
    return initialised(MLPGenerator(size, opts.nz, opts.hidden, channels), opts)


def build_discriminator(opts: MLPDiscriminatorOptions, size: int, channels: int) -> nn.Module:
    return initialised(MLPDiscriminator(size, opts.hidden, channels), opts)
