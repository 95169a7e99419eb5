"""GAN objectives as small pure functions of discriminator logits, in one registry.

Each objective gives the discriminator's loss from its outputs on real and generated images and the
generator's loss from the outputs on generated images (a *relativistic* objective's generator
loss also reads the outputs on real images). Penalties (weight clipping, gradient penalty, the
zero-centred R1/R2) are declared by the objective or the config and applied by the GAN task.
Adding an objective is one entry in ``OBJECTIVES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
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


def zero_centred_penalty(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """E‖∇ₓD(x)‖² at the given images: R1 on real images, R2 on generated ones (Mescheder et
    al. 2018). The caller scales it by γ/2 (and by the interval when applied lazily). Run it
    outside autocast and ``torch.compile``: it needs a double backward."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).float().sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """E[(‖∇D(x̂)‖₂ - 1)²] at x̂ = εx + (1-ε)G(z), one ε ~ U[0, 1] per sample (Gulrajani et al. 2017, alg. 1)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@dataclass(frozen=True)
class Objective:
    """A GAN game: losses plus the penalties it needs by default."""

    d_loss: Callable[..., Tensor]
    g_loss: Callable[..., Tensor]
    """``g_loss(fake)``, or ``g_loss(fake, real)`` when ``relativistic``."""
    probability: bool = False
    """True when sigmoid(logit) is D's probability that an image is real (for logging D(x))."""
    clip: float | None = None
    gp_weight: float = 0.0
    relativistic: bool = False
    """True when the losses compare D's outputs on real and fake images pair by pair: G's loss
    needs D(real) and label smoothing does not apply."""


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective(bce_d_loss, minimax_g_loss, probability=True),
    "non-saturating": Objective(bce_d_loss, non_saturating_g_loss, probability=True),
    "lsgan": Objective(lsgan_d_loss, lsgan_g_loss),
    "wgan": Objective(wasserstein_d_loss, wasserstein_g_loss, clip=0.01),
    "wgan-gp": Objective(wasserstein_d_loss, wasserstein_g_loss, gp_weight=10.0),
    "hinge": Objective(hinge_d_loss, hinge_g_loss),
    "rpgan": Objective(rpgan_d_loss, rpgan_g_loss, relativistic=True),
}
