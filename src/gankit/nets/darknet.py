"""Classifiers used for training recipes and evaluation features.

``Darknet`` is the residual Darknet of the fast.ai 2018 course (part 2, lesson 12,
``courses/dl2/cifar10-darknet.ipynb``), itself a small version of YOLOv3's Darknet-53 backbone
(Redmon & Farhadi 2018): a stem convolution, then groups that each halve the resolution (except the
second) and double the width, followed by 1x1-bottleneck residual layers. With
``num_blocks=(1, 2, 4, 6, 3)`` and ``nf=32`` it reached 94.27 % on CIFAR-10 in the course.

``MnistNet`` is a small MNIST CNN (two 3x3 conv blocks with pooling, two linear layers), enough for
about 99 % test accuracy after one epoch. Both expose ``features(x)``: the penultimate activations,
used by ``gankit.evaluation.metrics`` as an embedding for FID-like statistics and mode counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.base import NetOptions

# LeakyReLU slope of the course's conv_layer; also the ``a`` of the Kaiming init below.
_LEAK = 0.1


def conv_layer(ni: int, nf: int, ks: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> LeakyReLU(0.1), as in the fast.ai course.

    The convolution has no bias because the BatchNorm that follows has its own. BatchNorm momentum
    is 0.01 (PyTorch convention: weight of the new batch), i.e. slow-moving running statistics.
    """
    return nn.Sequential(
        nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=False),
        nn.BatchNorm2d(nf, momentum=0.01),
        nn.LeakyReLU(_LEAK, inplace=True),
    )


class ResLayer(nn.Module):
    """``x + conv3x3(conv1x1(x))`` with a 1x1 bottleneck to ``ni // 2`` channels (fast.ai course).

    The course adds in place (``x.add_``); we add out of place so the input can still be needed by
    autograd or by a caller.
    """

    def __init__(self, ni: int) -> None:
        super().__init__()
        self.conv1 = conv_layer(ni, ni // 2, ks=1)
        self.conv2 = conv_layer(ni // 2, ni, ks=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


def _kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal (He et al. 2015) fan-in init for convs feeding LeakyReLU(0.1); BN to identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=_LEAK, mode="fan_in", nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Darknet(nn.Module):
    """The fast.ai course Darknet for 32x32 images.

    Layout: ``conv_layer(in_channels, nf)``, then for each group ``i`` with ``nb`` residual layers:
    ``conv_layer(nf, 2*nf, stride=2 if i != 1 else 1)`` followed by ``nb`` ``ResLayer(2*nf)``, with
    ``nf`` doubling per group; then global average pooling, flatten and ``Linear(nf, num_classes)``.
    The default config has 5 groups (four stride-2 stages: 32x32 -> 2x2) and 1024 final channels.
    """

    def __init__(
        self,
        num_blocks: Sequence[int] = (1, 2, 4, 6, 3),
        num_classes: int = 10,
        nf: int = 32,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if not num_blocks or any(int(nb) < 0 for nb in num_blocks):
            raise ConfigError(
                f"darknet num_blocks {list(num_blocks)} is invalid: give one count >= 0 per group, "
                "e.g. [1, 2, 4, 6, 3]"
            )
        if nf < 2 or num_classes < 1 or in_channels < 1:
            raise ConfigError(
                f"darknet nf={nf}, num_classes={num_classes}, in_channels={in_channels}: "
                "use nf >= 2 and positive num_classes and in_channels"
            )
        layers: list[nn.Module] = [conv_layer(in_channels, nf, ks=3)]
        for i, nb in enumerate(num_blocks):
            # The second group keeps the resolution: the course's ``stride=2-(i==1)``.
            layers.append(conv_layer(nf, nf * 2, stride=1 if i == 1 else 2))
            layers.extend(ResLayer(nf * 2) for _ in range(int(nb)))
            nf *= 2
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(nf, num_classes)
        self.num_features = nf
        _kaiming_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled activations before the classifier, shape ``(N, num_features)``."""
        return torch.flatten(self.pool(self.body(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MnistNet(nn.Module):
    """A small MNIST/Fashion-MNIST classifier: two conv blocks, then two linear layers.

    ``conv3x3(in, 32) -> BN -> ReLU -> maxpool2`` and ``conv3x3(32, 64) -> BN -> ReLU -> maxpool2``
    (28 -> 14 -> 7), then ``Linear(64*7*7, hidden) -> ReLU -> Dropout -> Linear(hidden, classes)``.
    Accepts any input size divisible by 4 (``image_size``); 28x28 is the default.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        width: int = 32,
        hidden: int = 128,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if image_size % 4 != 0 or image_size < 4:
            raise ConfigError(
                f"mnistnet image_size {image_size} is not supported: use a multiple of 4 (e.g. 28)"
            )
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (image_size // 4) ** 2, hidden),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)
        self.num_features = hidden
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                # He init for ReLU layers; the default PyTorch init is tuned for no nonlinearity.
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden-layer activations (after ReLU, before dropout), shape ``(N, hidden)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@dataclass
class DarknetOptions(NetOptions):
    """``nets.net`` of ``arch: darknet`` (the fast.ai course's CIFAR-10 Darknet by default)."""

    num_blocks: tuple[int, ...] = (1, 2, 4, 6, 3)
    """Residual layers per group (one group per entry)."""
    nf: int = 32
    """Stem width, doubled by every group."""


@dataclass
class MnistNetOptions(NetOptions):
    """``nets.net`` of ``arch: mnistnet``."""

    nf: int = 32
    """Width of the first convolution."""


def check_darknet(opts: DarknetOptions, size: int, channels: int) -> None:
    if not opts.num_blocks or any(n < 0 for n in opts.num_blocks):
        raise ConfigError(
            f"nets.net.num_blocks={list(opts.num_blocks)}: give one count >= 0 per group, e.g. [1, 2, 4, 6, 3]"
        )
    if opts.nf < 2:
        raise ConfigError(f"nets.net.nf={opts.nf} must be at least 2")
    halvings = len(opts.num_blocks) - (len(opts.num_blocks) > 1)  # the second group keeps the size
    if size < 2**halvings:
        raise ConfigError(
            f"data.image_size={size} is too small for {len(opts.num_blocks)} darknet groups: "
            f"use at least {2**halvings} or fewer nets.net.num_blocks"
        )


def check_mnistnet(opts: MnistNetOptions, size: int, channels: int) -> None:
    if opts.nf < 2:
        raise ConfigError(f"nets.net.nf={opts.nf} must be at least 2")
    if size % 4:
        raise ConfigError(
            f"data.image_size={size} is not supported by mnistnet: use a multiple of 4"
        )


def build_darknet(opts: DarknetOptions, size: int, channels: int, num_classes: int) -> nn.Module:
    return Darknet(opts.num_blocks, num_classes, opts.nf, channels)


def build_mnistnet(opts: MnistNetOptions, size: int, channels: int, num_classes: int) -> nn.Module:
    return MnistNet(num_classes, channels, size, width=opts.nf)
