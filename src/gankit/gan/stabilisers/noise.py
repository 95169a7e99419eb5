"""Instance noise (Sønderby et al. 2017; Arjovsky & Bottou 2017, sec. 3.2).

Gaussian noise added to every input of the discriminator, real and generated alike, makes the two
distributions overlap, so D cannot separate them perfectly and its gradient stays informative. The
standard deviation is annealed linearly from ``std`` to 0 over training.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gankit.engine.schedules import linear_decay


def instance_noise_std(std: float, step: int, total: int) -> float:
    """The linearly annealed noise level at ``step`` of ``total``: std → 0."""
    if total <= 0:
        return std
    return std * linear_decay(step, total, 0)


def instance_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """``x + N(0, std²)`` (``x`` itself when std is 0)."""
    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device="cpu" if generator else x.device)
    return x + std * noise.to(device=x.device, dtype=x.dtype)
