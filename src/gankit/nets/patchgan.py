"""PatchGAN discriminators (Isola et al. 2017): ``basic`` (70×70 receptive field), ``n_layers``, ``pixel``.

``basic`` is ``n_layers`` with 3 layers: a 4×4 stride-2 conv without norm (LeakyReLU 0.2), then
stride-2 convs doubling the width up to 8·ndf, one stride-1 conv and a stride-1 conv to one
channel: a map of realness scores, 30×30 for a 256×256 input. ``pixel`` scores each pixel with
1×1 convs. With ndf 64 on 3 channels and instance norm ``basic`` has 2,764,737 parameters, as the
reference's; on 6 channels (pix2pix: the input and its target) with batch norm 2,768,705.

``antialias`` gives CUT's PatchGAN (its default, without ``--no_antialias``): the stride-2 convs
have stride 1 and are followed by a [1, 2, 1]² blur with stride 2
(:class:`~gankit.nets.resnet.BlurDown`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.base import NetOptions
from gankit.nets.norms import Init, Norm, conv_bias, init_translation_weights, norm_layer
from gankit.nets.resnet import BlurDown


class NLayerDiscriminator(nn.Module):
    """image (N, C, H, W) → scores (N, 1, h, w), one per overlapping patch."""

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        antialias: bool = False,
    ):
        super().__init__()
        make, bias = norm_layer(norm), conv_bias(norm)
        s = 1 if antialias else 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, s, 1), nn.LeakyReLU(0.2, True)]
        if antialias:
            layers.append(BlurDown(ndf))
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = s if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias),
                make(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
            if antialias and n < n_layers:
                layers.append(BlurDown(ndf * mult))
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """image (N, C, H, W) → scores (N, 1, H, W): a 1×1 PatchGAN."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "instance"):
        super().__init__()
        make, bias = norm_layer(norm), conv_bias(norm)
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2 * ndf, 1, bias=bias),
            make(2 * ndf),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * ndf, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@dataclass
class PatchOptions(NetOptions):
    """``nets.D_A`` (etc.) of ``arch: basic``, ``n_layers`` or ``pixel``."""

    ndf: int = 64
    n_layers: int = 3
    """Layers of ``n_layers`` (``basic`` is always 3)."""
    norm: Norm = "instance"
    antialias: bool = False
    """CUT's antialiased PatchGAN, its default (without ``--no_antialias``): stride-1 convs
    each followed by a [1, 2, 1]² blur with stride 2. Same parameters, other layer indices."""
    init: Init = "normal"
    init_gain: float = 0.02


def check(opts: PatchOptions, size: int, channels: int) -> None:
    if opts.ndf <= 0 or opts.n_layers < 1:
        raise ConfigError(f"ndf={opts.ndf} and n_layers={opts.n_layers} must be positive")
    layers = 3 if opts.arch == "basic" else opts.n_layers
    if opts.arch == "pixel":
        return
    side = size
    for _ in range(layers):  # the stride-2 convs (4×4, padding 1) halve, rounding down
        side //= 2
    # The stride-1 conv before the output gives side - 1, and a norm needs 2×2 or more there.
    if side < 3:
        least = 3 * 2**layers
        raise ConfigError(
            f"data.image_size={size} is too small for a {layers}-layer PatchGAN (its last "
            f"normalised map would be under 2×2): use {least} or more, or fewer nets.*.n_layers"
        )


def build(opts: PatchOptions, size: int, channels: int) -> nn.Module:
    if opts.arch == "pixel":
        net: nn.Module = PixelDiscriminator(channels, opts.ndf, opts.norm)
    else:
        layers = 3 if opts.arch == "basic" else opts.n_layers
        net = NLayerDiscriminator(channels, opts.ndf, layers, opts.norm, opts.antialias)
    return init_translation_weights(net, opts.init, opts.init_gain)
