"""Networks, one file per family, and the factories that build them from a config.

Adding a family is one file plus one line in ``GENERATORS`` / ``DISCRIMINATORS``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator, check_image_size, stage_factors
from gankit.nets.init import init_weights
from gankit.nets.mlp import MLPDiscriminator, MLPGenerator
from gankit.nets.mnist_dc import MnistDCDiscriminator, MnistDCGenerator

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "build_discriminator",
    "build_generator",
    "check_image_size",
    "count_parameters",
    "stage_factors",
]

GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "dcgan": lambda m, size, ch: DCGANGenerator(
        size, m.nz, m.ngf, ch, m.n_extra_layers, m.g_norm, m.upsample
    ),
    "mlp": lambda m, size, ch: MLPGenerator(size, m.nz, m.g_hidden, ch),
    "mnist-dc": lambda m, size, ch: MnistDCGenerator(m.nz, ch, size),
}
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "dcgan": lambda m, size, ch: DCGANDiscriminator(size, m.ndf, ch, m.n_extra_layers, m.d_norm),
    "mlp": lambda m, size, ch: MLPDiscriminator(size, m.d_hidden, ch),
    "mnist-dc": lambda m, size, ch: MnistDCDiscriminator(ch, size),
}


def build_generator(model_cfg, image_size: int, channels: int) -> nn.Module:
    """The generator named by ``model_cfg.arch``, initialised by ``model_cfg.init``."""
    net = GENERATORS[model_cfg.arch](model_cfg, image_size, channels)
    return init_weights(net, model_cfg.init)


def build_discriminator(model_cfg, image_size: int, channels: int) -> nn.Module:
    """The discriminator named by ``model_cfg.arch``, initialised by ``model_cfg.init``."""
    net = DISCRIMINATORS[model_cfg.arch](model_cfg, image_size, channels)
    return init_weights(net, model_cfg.init)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
