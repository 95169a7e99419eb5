"""The U-Net generator of pix2pix (Isola et al. 2017): ``unet_128`` (7 downs) and ``unet_256`` (8),
and our CPU-sized ``unet_32`` (5) and ``unet_64`` (6) for small images.

Built from the inside out as the reference does: an innermost block, ``num_downs - 5`` blocks at
``8·ngf`` (dropout 0.5 in their decoder when asked), then blocks of 4·ngf, 2·ngf, ngf and the
outermost one; every block but the outermost concatenates its input to its output (the skip).
Stride-2 4×4 convs down (LeakyReLU 0.2), stride-2 4×4 transposed convs up (ReLU), tanh at the
end. With ngf 64 and batch norm ``unet_256`` has 54,413,955 parameters, as the reference's. Height
and width must be multiples of 2^num_downs (the translate command pads to that).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.base import NetOptions
from gankit.nets.norms import Init, Norm, conv_bias, init_translation_weights, norm_layer


class UnetBlock(nn.Module):
    def __init__(
        self,
        outer: int,
        inner: int,
        norm: str,
        sub: nn.Module | None = None,
        in_channels: int | None = None,
        outermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        make, bias = norm_layer(norm), conv_bias(norm)
        self.outermost = outermost
        down = nn.Conv2d(in_channels or outer, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [
                down,
                sub,
                nn.ReLU(True),
                nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1),
                nn.Tanh(),
            ]
        elif sub is None:  # innermost: no skip below it, so the up conv sees `inner` channels
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, make(outer)]
        else:
            up = nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias)
            layers = [
                nn.LeakyReLU(0.2, True),
                down,
                make(inner),
                sub,
                nn.ReLU(True),
                up,
                make(outer),
            ]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """image (N, in_channels, H, W) → image (N, out_channels, H, W) in [-1, 1]."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        block = UnetBlock(8 * ngf, 8 * ngf, norm)
        for _ in range(num_downs - 5):
            block = UnetBlock(8 * ngf, 8 * ngf, norm, block, dropout=dropout)
        for k in (4, 2, 1):
            block = UnetBlock(k * ngf, 2 * k * ngf, norm, block)
        self.model = UnetBlock(out_channels, ngf, norm, block, in_channels, outermost=True)
        self.num_downs = num_downs
        self.multiple = 2**num_downs
        """Height and width must be multiples of this (one halving per down step)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@dataclass
class UnetOptions(NetOptions):
    """``nets.G`` of ``arch: unet_128`` or ``unet_256`` (pix2pix's default: batch norm)."""

    ngf: int = 64
    norm: Norm = "batch"
    dropout: bool = False
    init: Init = "normal"
    init_gain: float = 0.02


def _downs(arch: str) -> int:
    """unet_N halves N down to 1×1: log2(N) steps (unet_128: 7, unet_256: 8)."""
    return int(arch.split("_")[1]).bit_length() - 1


def check(opts: UnetOptions, size: int, channels: int) -> None:
    if opts.ngf <= 0:
        raise ConfigError(f"ngf={opts.ngf} must be positive")
    step = 2 ** _downs(opts.arch)
    if size % step:
        raise ConfigError(
            f"data.image_size={size} is not supported by {opts.arch}: use a multiple of {step}"
        )


def build(
    opts: UnetOptions, size: int, channels: int, out_channels: int | None = None
) -> nn.Module:
    net = UnetGenerator(
        channels, out_channels or channels, _downs(opts.arch), opts.ngf, opts.norm, opts.dropout
    )
    return init_translation_weights(net, opts.init, opts.init_gain)
