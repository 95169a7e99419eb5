"""Stacked MNIST (Metz et al. 2017, "Unrolled Generative Adversarial Networks"; Srivastava et al.
2017, VEEGAN): RGB images whose channels are three independently drawn MNIST digits, 1,000 modes,
the standard test of mode coverage (``data.source=stacked-mnist[:N]``)."""

from __future__ import annotations

import torch

from gankit.errors import DataError

STACKED_DEFAULT = 60_000
"""Stacked MNIST images by default (``stacked-mnist``; ``stacked-mnist:N`` for another count)."""


def stack_count(src: str) -> int:
    _, _, n = src.partition(":")
    try:
        count = int(n) if n else STACKED_DEFAULT
    except ValueError:
        count = 0
    if count < 1:
        raise DataError(f"data.source={src!r}: give stacked-mnist or stacked-mnist:N with N >= 1")
    return count


def stacked_mnist(
    x: torch.Tensor, y: torch.Tensor, n: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` Stacked MNIST images (Metz et al. 2017, "Unrolled GANs"; Srivastava et al. 2017,
    VEEGAN): three digits drawn independently from MNIST digits (gankit's built-in ones) as the R, G and B
    channels, 1,000 modes; label 100·d_R + 10·d_G + d_B. The same ``seed`` gives the same set.
    ``x``, ``y``: the digits (uint8 (N, 1, H, W)) and their labels."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(x), (n, 3), generator=g)
    images = x[idx, 0]  # (n, 3, 28, 28): one digit per channel
    labels = (y[idx] * torch.tensor([100, 10, 1])).sum(1)
    return images.contiguous(), labels
