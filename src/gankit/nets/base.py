"""What every network entry of the registry shares: an options dataclass with ``arch``.

A network family is one file with its modules, one options dataclass per role (a subclass of
:class:`NetOptions`), a ``build(options, image_size, channels, ...)`` function and, if some
settings are impossible, a ``check(options, image_size, channels)`` that raises ConfigError.
:data:`gankit.nets.NETS` lists them by kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from gankit.nets.init import init_weights


@dataclass
class NetOptions:
    """Options common to all networks: the architecture name (filled in by the config)."""

    arch: str = ""


@dataclass
class GANNetOptions(NetOptions):
    """Options of a GAN generator or discriminator: the weight initialisation."""

    init: Literal["normal02", "xavier", "default"] = "normal02"
    """normal02: N(0, 0.02) (Radford et al. 2015); xavier: Xavier-uniform (cs231n); default: torch's."""


class WeightLayer(nn.Module):
    """A layer of gankit's own that holds a weight like a conv or linear layer does (StyleGAN2's
    equalised-lr layers): FreezeD (``gan.freeze_d``) counts it as one."""


def initialised(net: nn.Module, opts: GANNetOptions) -> nn.Module:
    return init_weights(net, opts.init)
