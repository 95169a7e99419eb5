"""Batch image augmentation as tensor ops, on whatever device the batch lives on.

Small datasets (MNIST, CIFAR-10) sit on the device as one uint8 tensor (the airbench data path,
Keller Jordan); these functions augment a whole ``(N, C, H, W)`` batch at once with per-sample
randomness and no Python loop over samples. All randomness comes from an optional
``torch.Generator``, so a batch is reproducible given the generator's state. The generator may live
on the CPU while the batch is on a GPU: the few random numbers are drawn on the generator's device
and moved.

The CIFAR-10 training recipe of the fast.ai 2018 course (``cifar10-darknet.ipynb``) is
``random_flip`` + ``pad_crop(pad=4, mode='reflect')`` then ``normalize`` with the statistics below.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gankit.engine.distributed import rank_rows
from gankit.errors import ConfigError

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DIFF_AUGMENTS",
    "color",
    "cutout",
    "diff_augment",
    "normalize",
    "pad_crop",
    "random_flip",
]

# Per-channel mean and standard deviation of the 50,000 CIFAR-10 training images, over all pixels,
# with values scaled to [0, 1]. These are the statistics used by the fast.ai course notebook
# (``stats = ([0.4914, 0.48216, 0.44653], [0.24703, 0.24349, 0.26159])``). The often-copied
# std (0.2023, 0.1994, 0.2010) is the mean of per-image stds, a different (smaller) quantity.
# Checked here on the JPEG re-encoding of the training set: mean (0.49125, 0.48209, 0.44652), std
# (0.24523, 0.24278, 0.26063); JPEG smoothing lowers the std slightly.
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.48216, 0.44653)
CIFAR10_STD: tuple[float, float, float] = (0.24703, 0.24349, 0.26159)

_PAD_MODES = ("reflect", "replicate", "zeros")


def _check_batch(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ConfigError(f"{name} expects an (N, C, H, W) batch, got shape {tuple(x.shape)}")


def _randint(high: int, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` integers in ``[0, high)``, drawn on the generator's device, returned on ``x``'s
    (under torchrun: this rank's rows of the global batch's draws)."""
    device = generator.device if generator is not None else x.device
    draw = lambda k: torch.randint(0, high, (k,), generator=generator, device=device)  # noqa: E731
    return rank_rows(draw, n).to(x.device)


def _source_index(idx: torch.Tensor, size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Map padded-image coordinates (``-pad .. size+pad-1``) to source coordinates.

    Returns the clamped source index and a mask that is False where ``mode='zeros'`` pads.
    Reflection excludes the edge pixel, like ``torch.nn.functional.pad(mode='reflect')``.
    """
    inside = (idx >= 0) & (idx < size)
    if mode == "reflect":
        idx = idx.abs()
        idx = torch.where(idx >= size, 2 * (size - 1) - idx, idx)
    return idx.clamp(0, size - 1), inside


def pad_crop(
    x: torch.Tensor,
    pad: int = 4,
    mode: str = "reflect",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pad each image by ``pad`` pixels per side, then crop a random ``H x W`` window per sample.

    Equivalent to ``F.pad(x, (pad,) * 4, mode)`` followed by an independent uniform crop offset
    ``(dy, dx)`` in ``[0, 2*pad]^2`` for each sample, but computed with one gather of reflected
    indices: no padded copy, and it works for uint8 (which ``F.pad`` reflect does not take).
    ``mode`` is ``'reflect'`` (fast.ai's CIFAR recipe), ``'replicate'`` or ``'zeros'``.
    """
    _check_batch(x, "pad_crop")
    if mode not in _PAD_MODES:
        raise ConfigError(f"pad_crop mode {mode!r} is not supported: use one of {_PAD_MODES}")
    n, _, h, w = x.shape
    if pad < 0 or (mode == "reflect" and pad >= min(h, w)):
        raise ConfigError(
            f"pad_crop pad {pad} is impossible for {h}x{w} images in mode {mode!r}: "
            "use 0 <= pad < the image side"
        )
    if pad == 0 or n == 0:
        return x.clone()
    dy = _randint(2 * pad + 1, n, x, generator)
    dx = _randint(2 * pad + 1, n, x, generator)
    # Row r of the crop of sample i is row dy[i] + r - pad of the unpadded image.
    rows = dy[:, None] - pad + torch.arange(h, device=x.device)
    cols = dx[:, None] - pad + torch.arange(w, device=x.device)
    rows, row_ok = _source_index(rows, h, mode)
    cols, col_ok = _source_index(cols, w, mode)
    # Gather rows then columns: two index_select-like gathers over (N, C, H, W).
    out = x.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w))
    out = out.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], h, -1))
    if mode == "zeros":
        keep = row_ok[:, None, :, None] & col_ok[:, None, None, :]
        out = out * keep.to(out.dtype)
    return out


def random_flip(
    x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flip each sample left-right independently with probability ``p``."""
    _check_batch(x, "random_flip")
    if not 0 <= p <= 1:
        raise ConfigError(f"random_flip p {p} must be a probability in [0, 1]")
    device = generator.device if generator is not None else x.device
    draw = lambda k: torch.rand(k, generator=generator, device=device)  # noqa: E731
    flip = rank_rows(draw, x.shape[0]).to(x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(x - mean) / std`` per channel (dim 1), with ``x`` in [0, 1].

    A uint8 batch is first scaled by 1/255 (so mean/std are always given on the [0, 1] scale); a
    floating batch is taken to be in [0, 1] already. Returns ``dtype`` (float32 by default).
    """
    if x.dim() < 2:
        raise ConfigError(f"normalize expects (N, C, ...) tensors, got shape {tuple(x.shape)}")
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ConfigError(
            f"normalize got {len(mean)} means and {len(std)} stds for {x.shape[1]} channels: "
            "give one of each per channel"
        )
    if any(s <= 0 for s in std):
        raise ConfigError(f"normalize std {tuple(std)} must be positive")
    y = x.to(dtype)
    if x.dtype == torch.uint8:
        y = y / 255.0
    shape = (1, -1) + (1,) * (x.dim() - 2)
    m = torch.tensor(mean, dtype=dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=dtype, device=x.device).view(shape)
    return (y - m) / s


def cutout(
    x: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Set one random square of side ``ratio``·size per sample to 0 (DeVries & Taylor 2017).

    Differentiable with respect to ``x`` (a mask multiply), as DiffAugment needs.
    """
    _check_batch(x, "cutout")
    n, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio)), max(1, int(w * ratio))
    cy = _randint(h - ch + 1, n, x, generator).view(n, 1, 1)
    cx = _randint(w - cw + 1, n, x, generator).view(n, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= cy) & (rows < cy + ch) & (cols >= cx) & (cols < cx + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment's ``color`` policy on images in [-1, 1], one draw per sample: brightness
    + U(−0.5, 0.5), saturation (x − channel mean)·U(0, 2) + channel mean, contrast
    (x − image mean)·U(0.5, 1.5) + image mean (Zhao et al. 2020). Differentiable in ``x``."""
    _check_batch(x, "color")
    n = x.shape[0]
    device = generator.device if generator is not None else x.device

    def u() -> torch.Tensor:
        draw = lambda k: torch.rand(k, generator=generator, device=device)  # noqa: E731
        return rank_rows(draw, n).to(x.device, x.dtype).view(n, 1, 1, 1)

    x = x + (u() - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (u() * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (u() + 0.5) + mean


# DiffAugment (Zhao et al. 2020): the same random, differentiable transforms are applied to real
# and generated images before the discriminator, so D cannot memorise a small training set while
# G still learns the un-augmented distribution. Translation is by up to 1/8 of the size with the
# border replicated (their paper pads with zeros; replicating keeps MNIST's black background).
DIFF_AUGMENTS = {
    "color": color,
    "translation": lambda x: pad_crop(x, pad=max(1, x.shape[-1] // 8), mode="replicate"),
    "cutout": cutout,
    "flip": random_flip,
}


def diff_augment(x: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """Apply the named DIFF_AUGMENTS in order; an empty policy returns ``x``."""
    for name in policy:
        x = DIFF_AUGMENTS[name](x)
    return x
