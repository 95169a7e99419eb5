"""Networks, one file per family, and the registry that builds them from ``nets.<name>``.

``NETS[kind][arch]`` is a :class:`NetEntry`: the options dataclass of ``nets.<name>`` for that
architecture, the builder and an optional check. A task names the kind of each of its networks
(``G`` is a ``generator``, ``D`` a ``discriminator``, ...); the builder signature depends on the
kind:

- ``generator``: ``build(options, image_size, channels)``; the options have ``nz``; the module maps
  (N, nz) noise to (N, channels, size, size) images in [-1, 1].
- ``discriminator``: ``build(options, image_size, channels)``; images to one logit each, (N,).
- ``classifier``: ``build(options, image_size, channels, num_classes)``; images to (N, K) logits,
  with ``features(x)`` for the penultimate activations.
- ``translator``: ``build(options, image_size, channels, out_channels=None)``; images to images of
  the same height and width in [-1, 1] (CycleGAN's ResNet, pix2pix's U-Net).
- ``patch_discriminator``: ``build(options, image_size, channels)``; images to a map of scores
  (N, 1, h, w) (PatchGAN).

Adding a network is one file in this package plus one line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from gankit.errors import ConfigError
from gankit.nets import (
    darknet,
    dcgan,
    fastgan,
    mlp,
    mnist_dc,
    patchgan,
    r3gan,
    resnet,
    ssgan,
    stylegan2,
    unet,
)
from gankit.nets.dcgan import check_image_size, stage_factors

__all__ = [
    "NETS",
    "NetEntry",
    "build_net",
    "entry",
    "check_image_size",
    "count_parameters",
    "stage_factors",
]


@dataclass(frozen=True)
class NetEntry:
    options: type
    build: Callable[..., nn.Module]
    check: Callable[[Any, int, int], None] | None = None
    labels: bool = False
    """Takes class labels itself (``build(..., num_classes=K)``; forward ``(x, labels)``), as
    StyleGAN2's mapping embedding and projection D do, instead of gankit's label wrappers."""


NETS: dict[str, dict[str, NetEntry]] = {
    "generator": {
        "dcgan": NetEntry(dcgan.DCGANGeneratorOptions, dcgan.build_generator, dcgan.check),
        "fastgan": NetEntry(
            fastgan.FastGANGeneratorOptions, fastgan.build_generator, fastgan.check
        ),
        "mlp": NetEntry(mlp.MLPGeneratorOptions, mlp.build_generator, mlp.check),
        "mnist-dc": NetEntry(
            mnist_dc.MnistDCGeneratorOptions, mnist_dc.build_generator, mnist_dc.check
        ),
        "ssgan-mlp": NetEntry(ssgan.SsganGeneratorOptions, ssgan.build_generator, ssgan.check),
        "r3gan": NetEntry(
            r3gan.R3GANGeneratorOptions, r3gan.build_generator, r3gan.check, labels=True
        ),
        "stylegan2": NetEntry(
            stylegan2.StyleGAN2GeneratorOptions,
            stylegan2.build_generator,
            stylegan2.check,
            labels=True,
        ),
    },
    "discriminator": {
        "dcgan": NetEntry(dcgan.DCGANDiscriminatorOptions, dcgan.build_discriminator, dcgan.check),
        "fastgan": NetEntry(
            fastgan.FastGANDiscriminatorOptions, fastgan.build_discriminator, fastgan.check
        ),
        "mlp": NetEntry(mlp.MLPDiscriminatorOptions, mlp.build_discriminator, mlp.check),
        "mnist-dc": NetEntry(
            mnist_dc.MnistDCDiscriminatorOptions, mnist_dc.build_discriminator, mnist_dc.check
        ),
        "r3gan": NetEntry(
            r3gan.R3GANDiscriminatorOptions, r3gan.build_discriminator, r3gan.check, labels=True
        ),
        "stylegan2": NetEntry(
            stylegan2.StyleGAN2DiscriminatorOptions,
            stylegan2.build_discriminator,
            stylegan2.check,
            labels=True,
        ),
    },
    "classifier": {
        "darknet": NetEntry(darknet.DarknetOptions, darknet.build_darknet, darknet.check_darknet),
        "mnistnet": NetEntry(
            darknet.MnistNetOptions, darknet.build_mnistnet, darknet.check_mnistnet
        ),
        "ssgan-mlp": NetEntry(
            ssgan.SsganDiscriminatorOptions, ssgan.build_discriminator, ssgan.check
        ),
    },
    "translator": {
        "resnet_9blocks": NetEntry(resnet.ResnetOptions, resnet.build, resnet.check),
        "resnet_6blocks": NetEntry(resnet.ResnetOptions, resnet.build, resnet.check),
        "unet_256": NetEntry(unet.UnetOptions, unet.build, unet.check),
        "unet_128": NetEntry(unet.UnetOptions, unet.build, unet.check),
        "unet_64": NetEntry(unet.UnetOptions, unet.build, unet.check),
        "unet_32": NetEntry(unet.UnetOptions, unet.build, unet.check),
    },
    "patch_discriminator": {
        "basic": NetEntry(patchgan.PatchOptions, patchgan.build, patchgan.check),
        "n_layers": NetEntry(patchgan.PatchOptions, patchgan.build, patchgan.check),
        "pixel": NetEntry(patchgan.PatchOptions, patchgan.build, patchgan.check),
    },
}


def entry(kind: str, arch: str, key: str = "arch") -> NetEntry:
    """The registry entry, or a ConfigError naming ``key`` and the choices."""
    archs = NETS.get(kind)
    if archs is None:
        raise ConfigError(f"unknown network kind {kind!r}: choose one of {', '.join(NETS)}")
    if arch not in archs:
        raise ConfigError(f"{key}={arch!r} is not allowed: choose one of {', '.join(archs)}")
    return archs[arch]


def build_net(kind: str, opts: Any, image_size: int, channels: int, **extra: Any) -> nn.Module:
    """The ``kind`` network described by ``opts`` (an options dataclass with ``arch``)."""
    return entry(kind, opts.arch).build(opts, image_size, channels, **extra)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
