"""StyleGAN2 (Karras et al. 2020) as ``nets.G.arch=stylegan2`` / ``nets.D.arch=stylegan2``:
the options, the builders the registry calls and their checks.

Parameters, 3 channels, z = w = 512, ``channel_base = fmaps·32768``, channel_max 512 — the same
as NVlabs/stylegan2-ada-pytorch's classes (tests/test_stylegan2_nets.py checks ten configs)::

    config              size  mapping  fmaps  G            D
    paper1024           1024  8        1      30,370,060   29,012,513
    auto                 256  2        0.5    23,191,522   24,001,089
    auto                  64  2        0.5    22,243,608   23,407,361
    cifar (10 classes)    32  2        1      20,215,315   23,089,664  (D 'orig')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gankit.config.options import non_negative, option, positive
from gankit.errors import ConfigError
from gankit.nets.base import NetOptions
from gankit.nets.stylegan2.discriminator import StyleGAN2Discriminator
from gankit.nets.stylegan2.generator import StyleGAN2Generator

__all__ = [
    "StyleGAN2Discriminator",
    "StyleGAN2DiscriminatorOptions",
    "StyleGAN2Generator",
    "StyleGAN2GeneratorOptions",
    "build_discriminator",
    "build_generator",
    "check",
]


@dataclass
class StyleGAN2GeneratorOptions(NetOptions):
    """``nets.G`` of ``arch: stylegan2``."""

    nz: int = option(512, check=positive, structural=True)
    """Dimension of z (z_dim)."""
    w_dim: int = option(512, check=positive, structural=True)
    mapping_layers: int = option(8, check=positive, structural=True)
    """Layers of the mapping network: 8 in the paper, 2 in stylegan2-ada's ``auto`` config."""
    fmaps: float = option(1.0, check=positive, structural=True)
    """Width: channel_base = fmaps·32768, channels at resolution r = min(base // r, channel_max)."""
    channel_max: int = option(512, check=positive, structural=True)
    num_fp16_res: int = option(4, check=non_negative)
    """Highest resolutions computed in fp16 on a GPU (4 in the reference); CPUs use fp32."""
    conv_clamp: float = option(256.0, check=non_negative)
    """Clamp of every conv's output (±256 in the reference); 0 = none."""
    modulation: Literal["auto", "fused", "split"] = "auto"
    """How modulated convs run: fused (one grouped conv, a weight per sample), split (scale the
    input, one shared conv, scale the output: the same numbers) or auto, the reference's rule
    (split in training, fused for inference in fp32)."""


@dataclass
class StyleGAN2DiscriminatorOptions(NetOptions):
    """``nets.D`` of ``arch: stylegan2``."""

    architecture: Literal["resnet", "orig"] = option("resnet", structural=True)
    """resnet: blocks with a 1×1 skip (the paper's); orig: without (stylegan2-ada's cifar)."""
    fmaps: float = option(1.0, check=positive, structural=True)
    channel_max: int = option(512, check=positive, structural=True)
    mbstd_group: int = option(4, check=positive)
    """Minibatch stddev group size (the batch per GPU must be a multiple of min(this, batch))."""
    mbstd_channels: int = option(1, check=non_negative, structural=True)
    mapping_layers: int = option(8, check=positive, structural=True)
    """Layers of the label mapping of a conditional D."""
    num_fp16_res: int = option(4, check=non_negative)
    conv_clamp: float = option(256.0, check=non_negative)


def check(opts: NetOptions, image_size: int, channels: int) -> None:
    if image_size < 4 or 2 ** int(math.log2(image_size)) != image_size:
        raise ConfigError(
            f"nets.{'G' if isinstance(opts, StyleGAN2GeneratorOptions) else 'D'}.arch=stylegan2 "
            "needs a power-of-two "
            f"data.image_size of at least 4, got {image_size}"
        )


def build_generator(
    opts: StyleGAN2GeneratorOptions, image_size: int, channels: int, num_classes: int = 0
) -> StyleGAN2Generator:
    G = StyleGAN2Generator(
        opts.nz, opts.w_dim, image_size, channels, num_classes, opts.mapping_layers,
        int(opts.fmaps * 32768), opts.channel_max, opts.num_fp16_res, opts.conv_clamp or None,
    )  # fmt: skip
    G.fused = {"auto": None, "fused": True, "split": False}[opts.modulation]
    return G


def build_discriminator(
    opts: StyleGAN2DiscriminatorOptions, image_size: int, channels: int, num_classes: int = 0
) -> StyleGAN2Discriminator:
    return StyleGAN2Discriminator(
        image_size, channels, num_classes, opts.architecture, int(opts.fmaps * 32768),
        opts.channel_max, opts.num_fp16_res, opts.conv_clamp or None, opts.mbstd_group,
        opts.mbstd_channels, opts.mapping_layers,
    )  # fmt: skip
