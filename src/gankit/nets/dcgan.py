"""DCGAN generator and discriminator at any size 4·2^a·3^b (Radford et al. 2015).

The reference DCGAN grows a 4×4 map by ×2 stages (transposed conv, kernel 4, stride 2). Sizes such
as 48, 96 and 144 also need ×3 stages: a transposed conv with kernel 5, stride 3, padding 1 maps
n → 3n exactly, and the mirrored conv maps 3n → n. By default the ×3 stages are placed at the
lowest resolutions, where they are cheapest; ``nets.G.stages`` / ``nets.D.stages`` choose the order
(``2,2,3,3`` at 144×144: 4→8→16→48→144, the ×3 stages at the top, as the ``misaka-144`` recipe has it).
With only ×2 stages, ngf = ndf = 64, nz = 100 and 3 channels the 64×64 nets have exactly the
parameters of the PyTorch examples' DCGAN (G 3,576,704, D 2,765,568).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gankit.errors import ConfigError
from gankit.nets.base import GANNetOptions, initialised


def stage_factors(size: int) -> list[int] | None:
    """Upsampling factors from 4×4 to ``size`` (×3 stages first), or None if unreachable."""
    if size < 8 or size % 4:
        return None
    rest, threes = size // 4, 0
    while rest % 3 == 0:
        rest, threes = rest // 3, threes + 1
    if rest & (rest - 1):
        return None
    return [3] * threes + [2] * int(math.log2(rest))


def _supported(limit: int = 1024) -> list[int]:
    return [s for s in range(8, limit + 1, 4) if stage_factors(s)]


def check_image_size(size: int) -> list[int]:
    """The stage factors for ``size``; a ConfigError naming the nearest supported sizes if none."""
    factors = stage_factors(size)
    if factors is None:
        near = sorted(_supported(max(1024, 2 * size)), key=lambda s: (abs(s - size), s))[:2]
        raise ConfigError(
            f"data.image_size={size} is not supported by dcgan: sizes are 4·2^a·3^b "
            f"(16, 24, 32, 48, 64, 96, 128, 144, ...); nearest: {' or '.join(map(str, sorted(near)))}"
        )
    return factors


def check_stages(stages: Sequence[int] | None, size: int, key: str = "nets.G.stages") -> list[int]:
    """The upsampling factor of each stage from 4×4 up to ``size``: ``stages`` when given (each 2
    or 3, their product ``size / 4``), else :func:`stage_factors`'s order; a one-line ConfigError
    naming ``key`` otherwise."""
    if stages is None:
        return check_image_size(size)
    factors = [int(f) for f in stages]
    if not factors or any(f not in (2, 3) for f in factors) or 4 * math.prod(factors) != size:
        given = ",".join(map(str, factors)) or "[]"
        default = stage_factors(size)
        example = f", e.g. {','.join(map(str, default))}" if default else ""
        raise ConfigError(
            f"{key}={given}: give factors of 2 or 3 (one per stage, from 4×4 up) whose product "
            f"is data.image_size/4 = {size / 4:g}{example}"
        )
    return factors


def _up(cin: int, cout: int, factor: int, mode: str) -> nn.Module:
    if mode == "nearest":
        # Resize-then-convolve avoids the checkerboard artefacts of strided transposed convs
        # (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts").
        return nn.Sequential(
            nn.Upsample(scale_factor=factor, mode="nearest"),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        )
    k = 4 if factor == 2 else 5
    return nn.ConvTranspose2d(cin, cout, k, factor, 1, bias=False)


def _down(cin: int, cout: int, factor: int) -> nn.Conv2d:
    k = 4 if factor == 2 else 5
    return nn.Conv2d(cin, cout, k, factor, 1, bias=False)


class DCGANGenerator(nn.Module):
    """z (N, nz) or (N, nz, 1, 1) → image (N, channels, size, size) in [-1, 1]."""

    def __init__(
        self,
        image_size: int = 64,
        nz: int = 100,
        ngf: int = 64,
        channels: int = 3,
        n_extra_layers: int = 0,
        norm: str = "batch",
        upsample: str = "deconv",
        stages: Sequence[int] | None = None,
    ):
        super().__init__()
        self.nz = nz
        factors = check_stages(stages, image_size, "nets.G.stages")
        widths = [ngf * 2 ** (len(factors) - 1 - i) for i in range(len(factors))]

        def block(conv: nn.Module, c: int) -> list[nn.Module]:
            return [conv, nn.BatchNorm2d(c) if norm == "batch" else nn.Identity(), nn.ReLU(True)]

        layers = block(nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False), widths[0])
        for i, f in enumerate(factors[:-1]):
            layers += block(_up(widths[i], widths[i + 1], f, upsample), widths[i + 1])
        for _ in range(n_extra_layers):
            layers += block(nn.Conv2d(ngf, ngf, 3, 1, 1, bias=False), ngf)
        layers += [_up(widths[-1], channels, factors[-1], upsample), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.nz, 1, 1))


class DCGANDiscriminator(nn.Module):
    """image (N, channels, size, size) → one logit per image, shape (N,)."""

    def __init__(
        self,
        image_size: int = 64,
        ndf: int = 64,
        channels: int = 3,
        n_extra_layers: int = 0,
        norm: str = "batch",
        stages: Sequence[int] | None = None,
    ):
        super().__init__()
        # the generator's stages mirrored: D shrinks the image by the last stage's factor first
        factors = check_stages(stages, image_size, "nets.D.stages")[::-1]
        widths = [ndf * 2**i for i in range(len(factors))]
        sn = spectral_norm if norm == "spectral" else (lambda m: m)

        def block(conv: nn.Module, c: int) -> list[nn.Module]:
            bn = nn.BatchNorm2d(c) if norm == "batch" else nn.Identity()
            return [sn(conv), bn, nn.LeakyReLU(0.2, True)]

        # No normalisation on the first layer (Radford et al. 2015, section 3).
        layers: list[nn.Module] = [sn(_down(channels, ndf, factors[0])), nn.LeakyReLU(0.2, True)]
        for _ in range(n_extra_layers):
            layers += block(nn.Conv2d(ndf, ndf, 3, 1, 1, bias=False), ndf)
        for i, f in enumerate(factors[1:]):
            layers += block(_down(widths[i], widths[i + 1], f), widths[i + 1])
        layers += [sn(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


@dataclass
class DCGANGeneratorOptions(GANNetOptions):
    """``nets.G`` of ``arch: dcgan``."""

    nz: int = 100
    ngf: int = 64
    n_extra_layers: int = 0
    norm: Literal["batch", "none"] = "batch"
    upsample: Literal["deconv", "nearest"] = "deconv"
    """deconv: transposed convolutions (Radford et al.); nearest: upsample + 3x3 conv (no checkerboard)."""
    stages: tuple[int, ...] | None = None
    """Upsampling factor (2 or 3) of each stage from 4×4 up to the image, e.g. 2,2,3,3 at 144
    (4→8→16→48→144); null = the ×3 stages first, at the lowest resolutions (4→12→36→72→144)."""


@dataclass
class DCGANDiscriminatorOptions(GANNetOptions):
    """``nets.D`` of ``arch: dcgan``."""

    ndf: int = 64
    n_extra_layers: int = 0
    norm: Literal["batch", "none", "spectral"] = "batch"
    stages: tuple[int, ...] | None = None
    """The generator's list (factors from 4×4 up), which D runs mirrored, from the image down:
    2,2,3,3 at 144 is 144→48→16→8→4; null = the ×3 stages at the lowest resolutions
    (144→72→36→12→4)."""


def check(
    opts: DCGANGeneratorOptions | DCGANDiscriminatorOptions, size: int, channels: int
) -> None:
    generator = isinstance(opts, DCGANGeneratorOptions)
    width = opts.ngf if generator else opts.ndf
    if width <= 0 or getattr(opts, "nz", 1) <= 0 or opts.n_extra_layers < 0:
        raise ConfigError(
            f"dcgan: widths and nz must be positive and n_extra_layers >= 0 (got {opts})"
        )
    check_stages(opts.stages, size, "nets.G.stages" if generator else "nets.D.stages")


def build_generator(opts: DCGANGeneratorOptions, size: int, channels: int) -> nn.Module:
    net = DCGANGenerator(
        size,
        opts.nz,
        opts.ngf,
        channels,
        opts.n_extra_layers,
        opts.norm,
        opts.upsample,
        opts.stages,
    )
    return initialised(net, opts)


def build_discriminator(opts: DCGANDiscriminatorOptions, size: int, channels: int) -> nn.Module:
    net = DCGANDiscriminator(size, opts.ndf, channels, opts.n_extra_layers, opts.norm, opts.stages)
    return initialised(net, opts)
