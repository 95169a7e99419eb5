"""GAN objectives as small pure functions of discriminator logits, in one registry.

Each objective gives the discriminator's loss from its outputs on real and generated images and the
generator's loss from the outputs on generated images (a *relativistic* objective's generator
loss also reads the outputs on real images). Losses are only losses: weight clipping, the gradient
penalty and R1/R2 are objects of :mod:`gankit.gan.penalties`. A ``gan.loss`` name may bring the
penalties its paper trains with (:data:`LOSS_DEFAULTS`: ``wgan`` clips at 0.01, ``wgan-gp`` is
the ``wgan`` loss with a gradient penalty of 10). Adding an objective is one entry in
``OBJECTIVES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


def _bce_real(logits: Tensor, smoothing: float) -> Tensor:
    # -[t·log σ(l) + (1-t)·log(1-σ(l))] with t = 1 - smoothing, via softplus for stability.
    return ((1 - smoothing) * F.softplus(-logits) + smoothing * F.softplus(logits)).mean()


def bce_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1), one-sided smoothing."""
    return _bce_real(real, smoothing) + F.softplus(fake).mean()


def minimax_g_loss(fake: Tensor) -> Tensor:
    """E[log(1 - D(G(z)))]: the original minimax generator loss (saturates early in training)."""
    return -F.softplus(fake).mean()


def non_saturating_g_loss(fake: Tensor) -> Tensor:
    """-E[log D(G(z))]: the non-saturating generator loss (Goodfellow et al. 2014, section 3)."""
    return F.softplus(-fake).mean()


def lsgan_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    """½E[(D(x) - 1)²] + ½E[D(G(z))²] (Mao et al. 2017, eq. 9 with a=0, b=c=1)."""
    return 0.5 * ((real - (1 - smoothing)) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g_loss(fake: Tensor) -> Tensor:
    """½E[(D(G(z)) - 1)²] (Mao et al. 2017)."""
    return 0.5 * ((fake - 1) ** 2).mean()


def wasserstein_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    """E[D(G(z))] - E[D(x)]: the critic's estimate of -W(P_r, P_g) (Arjovsky et al. 2017)."""
    return fake.mean() - real.mean()


def wasserstein_g_loss(fake: Tensor) -> Tensor:
    """-E[D(G(z))]."""
    return -fake.mean()


def hinge_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """-E[D(G(z))]."""
    return -fake.mean()


def rpgan_d_loss(real: Tensor, fake: Tensor, smoothing: float = 0.0) -> Tensor:
    """E[softplus(−(D(x_i) − D(G(z_i))))]: the relativistic pairing loss (Jolicoeur-Martineau
    2019; the RpGAN of R3GAN, Huang et al. 2024), real and fake paired row by row."""
    return F.softplus(fake - real).mean()


def rpgan_g_loss(fake: Tensor, real: Tensor) -> Tensor:
    """E[softplus(−(D(G(z_i)) − D(x_i)))], the mirror of :func:`rpgan_d_loss`."""
    return F.softplus(real - fake).mean()


@dataclass(frozen=True)
class Objective:
    """A GAN objective: D's and G's losses, nothing else (penalties are
    :mod:`gankit.gan.penalties`)."""

    d_loss: Callable[..., Tensor]
    g_loss: Callable[..., Tensor]
    """``g_loss(fake)``, or ``g_loss(fake, real)`` when ``relativistic``."""
    probability: bool = False
    """True when sigmoid(logit) is D's probability that an image is real (for logging D(x))."""
    relativistic: bool = False
    """True when the losses compare D's outputs on real and fake images pair by pair: G's loss
    needs D(real) and label smoothing does not apply."""


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective(bce_d_loss, minimax_g_loss, probability=True),
    "non-saturating": Objective(bce_d_loss, non_saturating_g_loss, probability=True),
    "lsgan": Objective(lsgan_d_loss, lsgan_g_loss),
    "wgan": Objective(wasserstein_d_loss, wasserstein_g_loss),
    "hinge": Objective(hinge_d_loss, hinge_g_loss),
    "rpgan": Objective(rpgan_d_loss, rpgan_g_loss, relativistic=True),
}


LOSS_DEFAULTS: dict[str, tuple[str, dict[str, float]]] = {
    "wgan": ("wgan", {"clip": 0.01}),  # Arjovsky et al. 2017, algorithm 1: c = 0.01
    "wgan-gp": ("wgan", {"gp": 10.0}),  # Gulrajani et al. 2017, algorithm 1: lambda = 10
}
"""``gan.loss`` names that bring penalties: name -> (objective, {penalty: default weight}). An
explicit ``gan.clip`` / ``gan.gp_weight`` overrides the default."""

LOSSES: tuple[str, ...] = (*OBJECTIVES, *(k for k in LOSS_DEFAULTS if k not in OBJECTIVES))
"""Every name ``gan.loss`` accepts."""


def resolve_loss(name: str) -> tuple[Objective, dict[str, float]]:
    """The objective behind a ``gan.loss`` name and the penalty weights it brings by default."""
    base, defaults = LOSS_DEFAULTS.get(name, (name, {}))
    return OBJECTIVES[base], dict(defaults)
