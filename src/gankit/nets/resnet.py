"""The ResNet generator of CycleGAN (Zhu et al. 2017; Johnson et al. 2016), 6 or 9 blocks.

7×7 stem with reflect padding, two stride-2 downsampling convs, ``n_blocks`` residual blocks of
two reflect-padded 3×3 convs (optional dropout 0.5 between them), two stride-2 transposed convs
up, a 7×7 output conv and tanh. With ngf 64 and instance norm the 9-block net has 11,378,179
parameters, as the reference's ``resnet_9blocks``. It works on any height and width divisible by
4 (the translate command pads to that).

``antialias`` and ``antialias_up`` give CUT's generator (Park et al. 2020, its ``ResnetGenerator``
without ``--no_antialias`` / ``--no_antialias_up``, its default): each downsampling conv has stride
1 and is followed, after norm and ReLU, by a [1, 2, 1]² blur with stride 2 (:class:`BlurDown`);
each upsampling stage is a transposed [1, 3, 3, 1]² blur with stride 2 (:class:`BlurUp`) then a
3×3 conv, norm and ReLU. Same parameter count; the layer list is longer (index 12 is the first
residual block), which is where CUT's default ``nce_layers`` 0, 4, 8, 12, 16 point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
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


def binomial_filter(taps: tuple[float, ...], channels: int) -> torch.Tensor:
    """The normalised outer product of ``taps``, one copy per channel: (channels, 1, k, k)."""
    a = torch.tensor(taps)
    f = a[:, None] * a[None, :]
    return (f / f.sum()).expand(channels, 1, len(taps), len(taps)).clone()


class BlurDown(nn.Module):
    """CUT's ``Downsample``: reflect-pad 1, then a [1, 2, 1]² blur per channel with stride 2
    (H×W → ⌈H/2⌉×⌈W/2⌉). The filter is a constant, not saved with the weights."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", binomial_filter((1.0, 2.0, 1.0), channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUp(nn.Module):
    """CUT's ``Upsample``: replicate-pad 1, a transposed [1, 3, 3, 1]² blur (times 4) per channel
    with stride 2, cropped to 2H×2W. The filter is a constant, not saved with the weights."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        filt = 4 * binomial_filter((1.0, 3.0, 3.0, 1.0), channels)
        self.register_buffer("filt", filt, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        y = F.conv_transpose2d(x, self.filt.to(x.dtype), stride=2, padding=2, groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]


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
        antialias: bool = False,
        antialias_up: bool = False,
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
            if antialias:
                conv = nn.Conv2d(c, 2 * c, 3, 1, 1, bias=bias)
                layers += [conv, make(2 * c), nn.ReLU(True), BlurDown(2 * c)]
            else:
                layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), make(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, dropout, padding) for _ in range(n_blocks)]
        for i in range(2):  # up
            c = ngf * 2 ** (2 - i)
            if antialias_up:
                conv = nn.Conv2d(c, c // 2, 3, 1, 1, bias=bias)
                layers += [BlurUp(c), conv, make(c // 2), nn.ReLU(True)]
            else:
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
        norm, 10 onwards the residual blocks (the layout of CUT's ``--no_antialias`` generator);
        with ``antialias``: 4 and 8 the two downsampling convs (stride 1), 12 onwards the blocks
        (CUT's default layout).
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
    antialias: bool = False
    """CUT's antialiased downsampling, its default (without ``--no_antialias``): stride-1
    convs, each followed by a [1, 2, 1]² blur with stride 2. Same parameters, other indices."""
    antialias_up: bool = False
    """CUT's antialiased upsampling, its default (without ``--no_antialias_up``): a
    [1, 3, 3, 1]² transposed blur, then a 3×3 conv, instead of a transposed conv."""
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
        opts.antialias,
        opts.antialias_up,
    )
    return init_translation_weights(net, opts.init, opts.init_gain)
