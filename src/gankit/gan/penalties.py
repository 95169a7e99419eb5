"""Penalties and constraints of the GAN game, one object each: R1, R2, the gradient penalty,
weight clipping, and the generator's path-length penalty.

A penalty declares the network whose phase it belongs to (``net``), its weight and its interval
``every`` (in generator steps), and computes its *unweighted* value from the game and one
:class:`~gankit.gan.game.PhaseBatch`. The phases add ``every · Σ weight · value`` over the
penalties that are due (lazy regularisation, Karras et al. 2020, "Analyzing and Improving the
Image Quality of StyleGAN", appendix B: a penalty evaluated every k-th step counts k times). A
constraint (weight clipping) computes nothing and acts on the weights after its network's
optimizer step.

Adding a penalty is one class here and one line in :data:`PENALTIES` (see docs/design.md, "Add a
penalty").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from gankit.gan.game import Game, PhaseBatch


def zero_centred_penalty(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """E‖∇ₓD(x)‖² at the given images: R1 on real images, R2 on generated ones (Mescheder et
    al. 2018). The caller scales it by γ/2 (and by the interval when applied lazily). Run it
    outside autocast and ``torch.compile``: it needs a double backward."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).float().sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def augmented_critic(game: Game, y: Tensor | None) -> Callable[[Tensor], Tensor]:
    """``x -> D(aug(x))`` for labels ``y``, uncompiled: the function whose gradient with respect
    to the images before augmentation R1, R2 and ``gan.watch_grads`` measure, as stylegan2-ada
    takes it (training/loss.py)."""
    return lambda t: game.discriminate(game.augment(t), y, compiled=False)[0]


def gradient_sq_norm(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """E‖∇ₓD(x)‖², the value :func:`zero_centred_penalty` penalises, measured without a graph
    (a monitor: nothing flows back from it)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).float().sum(), x)
    return grad.flatten(1).pow(2).sum(1).mean().detach()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """E[(‖∇D(x̂)‖₂ - 1)²] at x̂ = εx + (1-ε)G(z), one ε ~ U[0, 1] per sample (Gulrajani et al. 2017, alg. 1)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class Penalty:
    """A term added to one network's loss every ``every`` generator steps, weighted by ``weight``.

    ``each_update``: evaluated on every critic update of a due step (the gradient penalty, as
    Gulrajani et al. do), instead of once per generator step on the last critic update (R1/R2).
    """

    name: ClassVar[str]
    """Its key in the logged scalars."""
    net: ClassVar[str] = "D"
    each_update: ClassVar[bool] = False
    draws_own: ClassVar[bool] = False
    """Generates its own images (a G penalty that needs no redrawn batch)."""

    def __init__(self, weight: float, every: int = 1) -> None:
        self.weight, self.every = weight, every
        self.buffers: dict[str, Tensor] = {}
        """State kept across steps, checkpointed with the run (the path length's mean)."""

    def due(self, step: int, last_update: bool) -> bool:
        return (self.each_update or last_update) and step % self.every == 0

    def __call__(self, game: Game, batch: PhaseBatch) -> Tensor | None:
        """The unweighted value (None for a constraint that only acts after the step)."""
        return None

    def after_step(self, net: nn.Module) -> None:
        """Act on the network's weights after its optimizer step (a constraint); a no-op here."""


class R1(Penalty):
    """γ/2·E‖∇ₓD(aug(x))‖² on real images (Mescheder et al. 2018), the gradient taken with
    respect to the images before D's augmentation, as stylegan2-ada does (training/loss.py)."""

    name = "r1"

    def __call__(self, game: Game, batch: PhaseBatch) -> Tensor:
        return zero_centred_penalty(augmented_critic(game, batch.y_real), batch.real.float())


class R2(Penalty):
    """γ/2·E‖∇D(aug(G(z)))‖² on generated images (with RpGAN: R3GAN, Huang et al. 2024)."""

    name = "r2"

    def __call__(self, game: Game, batch: PhaseBatch) -> Tensor:
        critic = augmented_critic(game, batch.y_fake)
        return zero_centred_penalty(critic, batch.fake.detach().float())


class GradientPenalty(Penalty):
    """λ·E[(‖∇D(x̂)‖ − 1)²] on interpolates of real and generated images, every critic update
    (WGAN-GP, Gulrajani et al. 2017); no augmentation, as in the paper."""

    name = "gp"
    each_update = True

    def __call__(self, game: Game, batch: PhaseBatch) -> Tensor:
        y = batch.y_real
        return gradient_penalty(
            lambda x: game.discriminate(x, y, compiled=False)[0],
            batch.real.float(),
            batch.fake.detach().float(),
        )


class WeightClip(Penalty):
    """Clamp every weight of D to [−c, c] after each of its updates (WGAN, Arjovsky et al. 2017);
    ``weight`` is the bound c."""

    name = "clip"
    each_update = True

    @torch.no_grad()
    def after_step(self, net: nn.Module) -> None:
        for p in net.parameters():
            p.clamp_(-self.weight, self.weight)


class ZeroCentredGP(Penalty):
    """E‖∇D(x̂)‖² at interpolates x̂ = εx + (1−ε)G(z), ε ~ U[0, 1] per sample: the zero-centred
    gradient penalty of Thanh-Tung et al. 2019 ("Improving Generalization and Stability of
    Generative Adversarial Networks", eq. 9), which keeps D's gradient small between the real
    and the generated distribution. ``gan.penalties=zero-gp:10``."""

    name = "zero_gp"
    each_update = True

    def __call__(self, game: Game, batch: PhaseBatch) -> Tensor:
        real, fake = batch.real.float(), batch.fake.detach().float()
        eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
        x_hat = eps * real + (1 - eps) * fake
        y = batch.y_real
        return zero_centred_penalty(lambda x: game.discriminate(x, y, compiled=False)[0], x_hat)


class PathLength(Penalty):
    """StyleGAN2's path-length regularisation of G (Karras et al. 2020, sec. 3.2; stylegan2-ada
    training/loss.py): for ws of half a batch (``shrink`` 2) and y ~ N(0, I)/√(H·W),
    L = √(mean over ws of ‖∂Σ(G(w)·y)/∂w‖²); the value is E(L − a)² with a ← lerp(a, E L,
    ``decay`` 0.01) (its gradient also flows through the new E L, as the reference's does).
    ``gan.penalties=path-length:2:4`` is the paper's weight and interval. Needs a generator with
    a W space (:class:`gankit.inference.roles.MappedGenerator`)."""

    name = "pl"
    net = "G"
    draws_own = True
    shrink, decay = 2, 0.01

    def __init__(self, weight: float, every: int = 1) -> None:
        super().__init__(weight, every)
        self.pl_mean = torch.zeros([])
        self.buffers["pl_mean"] = self.pl_mean

    def __call__(self, game: Game, batch: PhaseBatch) -> Tensor:
        n = max(1, len(batch.real) // self.shrink)
        z = game.rt.rank_rows(game.noise, n)
        y = None if batch.y_fake is None else batch.y_fake[:n]
        img, ws = game.G(z, y, return_ws=True)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        if self.pl_mean.device != lengths.device:  # the same tensor object, moved
            self.pl_mean.data = self.pl_mean.data.to(lengths.device)
        mean = self.pl_mean.lerp(lengths.mean(), self.decay)
        self.pl_mean.copy_(mean.detach())
        return (lengths - mean).square().mean()


PENALTIES: dict[str, type[Penalty]] = {
    "r1": R1,
    "r2": R2,
    "gp": GradientPenalty,
    "clip": WeightClip,
    "zero-gp": ZeroCentredGP,
    "path-length": PathLength,
}
"""Penalty classes by name: ``r1``, ``r2``, ``gp`` and ``clip`` are set by their own options
(gan.r1, gan.r2, gan.gp_weight, gan.clip); any of them can also be listed in ``gan.penalties``."""


def weighted_sum(
    penalties: Iterable[Penalty], game: Game, batch: PhaseBatch, logs: dict[str, Tensor]
) -> list[tuple[int, Tensor]]:
    """``[(every, Σ weight·value)]`` over the due penalties with a value, one sum per interval and
    kind (per update or per step) in the order they come; each unweighted value is logged under
    its name. (The grouping fixes the order of the floating-point sums, so that a run's numbers
    do not depend on how penalties are listed within a group.)"""
    sums: dict[tuple[int, bool], Tensor] = {}
    for pen in penalties:
        if not pen.due(batch.step, batch.last_update):
            continue
        value = pen(game, batch)
        if value is None:
            continue
        logs[pen.name] = value.detach()
        key = (pen.every, pen.each_update)
        total = sums.get(key, torch.zeros((), device=value.device))
        sums[key] = total + pen.weight * value
    return [(every, total) for (every, _), total in sums.items()]
