"""The ResNet generator of CycleGAN (Zhu et al. 2017; Johnson et al. 2016), 6 or 9 blocks.

7×7 stem with reflect padding, two stride-2 downsampling convs, ``n_blocks`` residual blocks of
two reflect-padded 3×3 convs (optional dropout 0.5 between them), two stride-2 transposed convs
up, a 7×7 output conv and tanh. With ngf 64 and instance norm the 9-block net has 11,378,179
parameters, as the reference's ``resnet_9blocks``. It works on any height and width divisible by
4 (the translate command pads to that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.base import NetOptions
from gankit.nets.norms import Init, Norm, conv_bias, init_translation_weights, norm_layer

PADDINGS = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": None}
"""The reference's ``padding_type`` of the residual blocks (networks.py ``ResnetBlock``)."""


def _padded_conv(dim: int, bias: bool, padding: str) -> list[nn.Module]:
    """A 3×3 conv keeping the size: a padding layer then the conv, or (zero) the conv's own."""
    pad = PADDINGS[padding]
    if pad is None:
        return [nn.Conv2d(dim, dim, 3, padding=1, bias=bias)]
    return [pad(1), nn.Conv2d(dim, dim, 3, bias=bias)]


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: bool, padding: str = "reflect") -> None:
        super().__init__()
        make, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [*_padded_conv(dim, bias, padding), make(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*_padded_conv(dim, bias, padding), make(dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """image (N, in_channels, H, W) → image (N, out_channels, H, W) in [-1, 1]."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        make, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            make(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):  # down
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), make(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, dropout, padding) for _ in range(n_blocks)]
        for i in range(2):  # up
            c = ngf * 2 ** (2 - i)
            up = nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias)
            layers += [up, make(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    multiple = 4
    """Height and width must be multiples of this (two stride-2 stages)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """The outputs of ``self.model[i]`` for each ``i`` in ``layers`` (CUT's PatchNCE taps).

        Index 0 is the reflect-padded input, 4 the first downsampling conv, 8 the second one's
        norm, 10 onwards the residual blocks (the layout of CUT's ``--no_antialias`` generator).
        """
        feats, last = [], max(layers)
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in layers:
                feats.append(x)
            if i == last:
                break
        return feats


@dataclass
class ResnetOptions(NetOptions):
    """``nets.G_A`` (etc.) of ``arch: resnet_9blocks`` or ``resnet_6blocks``."""

    ngf: int = 64
    norm: Norm = "instance"
    dropout: bool = False
    padding_type: Literal["reflect", "replicate", "zero"] = "reflect"
    """Padding inside the residual blocks, the reference's ``--padding_type`` (its default:
    reflect); the 7×7 stem and output convs are reflect-padded either way, as there."""
    init: Init = "normal"
    init_gain: float = 0.02


def check(opts: ResnetOptions, size: int, channels: int) -> None:
    if opts.ngf <= 0:
        raise ConfigError(f"ngf={opts.ngf} must be positive")
    if size % 4:
        raise ConfigError(
            f"data.image_size={size} is not supported by {opts.arch}: use a multiple of 4"
        )


def build(
    opts: ResnetOptions, size: int, channels: int, out_channels: int | None = None
) -> nn.Module:
    blocks = 6 if opts.arch == "resnet_6blocks" else 9
    net = ResnetGenerator(
        channels,
        out_channels or channels,
        opts.ngf,
        blocks,
        opts.norm,
        opts.dropout,
        opts.padding_type,
    )
    return init_translation_weights(net, opts.init, opts.init_gain)
