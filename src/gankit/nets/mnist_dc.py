"""The small 28×28 DCGAN pair of Stanford's cs231n GAN assignment (GANs-PyTorch.ipynb).

The discriminator is the classifier of the TensorFlow MNIST tutorial that the assignment borrows:
two 5×5 convolutions with max-pooling and two fully connected layers, 1,102,721 parameters. The
generator follows InfoGAN's MNIST generator (Chen et al. 2016) as the assignment specifies it,
with each batch norm placed *after* its ReLU, as the assignment orders them. Both nets are built
for 28×28 images only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.base import GANNetOptions, initialised

SIZE = 28


def check_mnist_dc_size(image_size: int) -> None:
    """Raise ConfigError unless ``image_size`` is the 28 the pair is built for."""
    if image_size != SIZE:
        raise ConfigError(
            f"data.image_size={image_size} is not supported by mnist-dc: "
            f"the cs231n DCGAN is built for {SIZE}x{SIZE} MNIST, set data.image_size={SIZE}"
        )


class MnistDCDiscriminator(nn.Module):
    """(N, C, 28, 28) → logits (N,): conv 32 5×5 → LeakyReLU 0.01 → max-pool 2 → conv 64 5×5 →
    LeakyReLU 0.01 → max-pool 2 → FC 1024 → LeakyReLU 0.01 → FC 1 (cs231n ``build_dc_classifier``).
    """

    def __init__(self, channels: int = 1, image_size: int = SIZE):
        super().__init__()
        check_mnist_dc_size(image_size)
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 5),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5),
            nn.LeakyReLU(0.01),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 64, 1024),
            nn.LeakyReLU(0.01),
            nn.Linear(1024, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class MnistDCGenerator(nn.Module):
    """z (N, nz) → (N, C, 28, 28) in [-1, 1]: FC 1024 → ReLU → BN → FC 7·7·128 → ReLU → BN →
    deconv 64 4×4/2 → ReLU → BN → deconv C 4×4/2 → tanh (cs231n ``build_dc_generator``).
    """

    def __init__(self, nz: int = 96, channels: int = 1, image_size: int = SIZE):
        super().__init__()
        check_mnist_dc_size(image_size)
        self.nz = nz
        self.net = nn.Sequential(
            nn.Linear(nz, 1024),
            nn.ReLU(),
            nn.BatchNorm1d(1024),
            nn.Linear(1024, 7 * 7 * 128),
            nn.ReLU(),
            nn.BatchNorm1d(7 * 7 * 128),
            nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.ReLU(),
            nn.BatchNorm2d(64),
            nn.ConvTranspose2d(64, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.flatten(1))


@dataclass
class MnistDCGeneratorOptions(GANNetOptions):
    """``nets.G`` of ``arch: mnist-dc``."""

    nz: int = 96


@dataclass
class MnistDCDiscriminatorOptions(GANNetOptions):
    """``nets.D`` of ``arch: mnist-dc`` (no options beyond the initialisation)."""


def check(opts: GANNetOptions, size: int, channels: int) -> None:
    if getattr(opts, "nz", 1) <= 0:
        raise ConfigError(f"nets.G.nz={opts.nz} must be positive")  # type: ignore[attr-defined]
    check_mnist_dc_size(size)


def build_generator(opts: MnistDCGeneratorOptions, size: int, channels: int) -> nn.Module:
    return initialised(MnistDCGenerator(opts.nz, channels, size), opts)


def build_discriminator(opts: MnistDCDiscriminatorOptions, size: int, channels: int) -> nn.Module:
    return initialised(MnistDCDiscriminator(channels, size), opts)
