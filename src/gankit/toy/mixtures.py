"""The 2-D data of the lab: mixtures of Gaussians, and the VEEGAN scores of generated points.

- ``ring8``: 8 modes evenly on a circle of radius 1, σ = 0.01 (the unrolled-GAN demo's ring,
  built with ``endpoint=False``: the demo's ``linspace(0, 2π, 8)`` puts its first and last mode on
  the same point and so has only 7 distinct modes);
- ``grid25``: 25 modes on the grid {−4, −2, 0, 2, 4}², σ = 0.05 (Srivastava et al. 2017, VEEGAN);
- ``spiral``: 20 modes along an Archimedean spiral of radius 0.3 → 1.5 over 1.5 turns, σ = 0.02.

Scores follow VEEGAN's protocol (Srivastava et al. 2017, sec. 5.1): a sample is *high quality* if
it lies within 3σ of its nearest mode; a mode is *covered* if it is the nearest mode of at least
one high-quality sample; 2,500 samples per evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gankit.errors import ConfigError


@dataclass(frozen=True)
class Mixture:
    """Equal-weight isotropic Gaussians at ``modes`` (K×2) with standard deviation ``std``."""

    name: str
    modes: Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points, (n, 2), each from a uniformly chosen mode."""
        k = torch.randint(len(self.modes), (n,), generator=generator)
        return self.modes[k] + self.std * torch.randn(n, 2, generator=generator)

    @property
    def extent(self) -> float:
        """Half the side of a square that shows every mode with a margin."""
        return float(self.modes.abs().max()) * 1.25 + 6 * self.std


def ring8() -> Mixture:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)  # endpoint excluded
    modes = torch.stack([angles.cos(), angles.sin()], 1).float()
    return Mixture("ring8", modes, 0.01)


def grid25() -> Mixture:
    ticks = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    modes = torch.cartesian_prod(ticks, ticks)
    return Mixture("grid25", modes, 0.05)


def spiral() -> Mixture:
    t = torch.linspace(0, 1, 20, dtype=torch.float64)
    angle, radius = t * 3 * math.pi, 0.3 + 1.2 * t
    modes = torch.stack([radius * angle.cos(), radius * angle.sin()], 1).float()
    return Mixture("spiral", modes, 0.02)


MIXTURES = {"ring8": ring8, "grid25": grid25, "spiral": spiral}


def mixture(name: str) -> Mixture:
    if name not in MIXTURES:
        raise ConfigError(f"toy data {name!r} is unknown: choose one of {', '.join(MIXTURES)}")
    return MIXTURES[name]()


@dataclass(frozen=True)
class ModeScore:
    """VEEGAN's two numbers for one set of samples."""

    modes: int
    """Modes covered (nearest mode of at least one high-quality sample)."""
    total: int
    """Modes of the mixture."""
    high_quality: float
    """Share of samples within 3σ of their nearest mode."""

    def as_dict(self) -> dict[str, float]:
        return {"modes": self.modes, "of": self.total, "high_quality": round(self.high_quality, 4)}


def score(points: Tensor, data: Mixture, sigmas: float = 3.0) -> ModeScore:
    """Modes covered and the high-quality share of ``points`` (N×2) under ``data``."""
    dist = torch.cdist(points.float(), data.modes)  # (N, K)
    nearest_d, nearest = dist.min(1)
    good = nearest_d <= sigmas * data.std
    covered = int(torch.unique(nearest[good]).numel())
    share = float(good.float().mean()) if len(points) else 0.0
    return ModeScore(covered, len(data.modes), share)
