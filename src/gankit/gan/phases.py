"""The GAN game in phases: what one step of any image GAN is made of.

As in stylegan2-ada-pytorch (training/training_loop.py, training/loss.py), a step is a sequence
of named **phases**, each computing one loss from the networks it owns, after which the driver
steps that network's optimizer:

- ``D``: the discriminator's objective on real and generated images, plus the penalties due at
  this update that are *fused* into it (every penalty unless ``gan.lazy_reg=separate``);
- ``Dreg``: with ``gan.lazy_reg=separate``, D's lazily evaluated penalties as their own update
  every k steps, the optimizer compensated (:func:`compensate`);
- ``G``: the generator's objective through D (or feature matching);
- ``Greg``: the generator's penalties (a path-length penalty plugs in here).

A :class:`Game` holds what the phases share: the networks, the objective, the pipeline in front
of D and the runtime. A :class:`PhaseBatch` is what one critic update draws. The driver (the GAN
task's ``step``) only orders phases, applies intervals, steps optimizers and updates the EMA.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.config import OptimConfig
from gankit.errors import ConfigError
from gankit.gan.game import Game, PhaseBatch
from gankit.gan.penalties import Penalty, augmented_critic, gradient_sq_norm, weighted_sum
from gankit.gan.stabilisers.matching import feature_matching_loss, penultimate


class Phase(Protocol):
    """One loss and the network whose optimizer steps after it."""

    name: str
    net: str
    every: int

    def due(self, batch: PhaseBatch) -> bool: ...

    def loss(self, game: Game, batch: PhaseBatch) -> tuple[Tensor, dict[str, Tensor]]: ...


def add_penalties(
    loss: Tensor, penalties: Sequence[Penalty], game: Game, batch: PhaseBatch, logs: dict
) -> Tensor:
    """``loss + every · Σ weight · value`` for each group of due penalties (lazy regularisation)."""
    for every, total in weighted_sum(penalties, game, batch, logs):
        loss = loss + every * total
    return loss


class DMain:
    """D's objective, FastGAN's reconstruction, AC-GAN's class terms and the fused penalties."""

    name, net, every = "D", "D", 1

    def __init__(
        self,
        penalties: Sequence[Penalty],
        label_smoothing: float = 0.0,
        aux_weight: float = 1.0,
        reconstructs: bool = False,
        watch_grads: int = 0,
    ) -> None:
        self.penalties, self.smoothing = list(penalties), label_smoothing
        self.aux_weight, self.reconstructs = aux_weight, reconstructs
        self.watch_grads = watch_grads

    def due(self, batch: PhaseBatch) -> bool:
        return True

    def _logits(self, game: Game, b: PhaseBatch) -> tuple[Tensor, ...]:
        recon = None
        with game.rt.autocast():
            real_in = game.augment(b.real)
            if self.reconstructs:  # FastGAN's D: logits and reconstruction in one pass
                real_logits, recon = game.d(real_in, reconstruct=True)
                real_logits, real_aux = real_logits.float(), None
            else:
                real_logits, real_aux = game.discriminate(real_in, b.y_real)
            fake_logits, fake_aux = game.discriminate(game.augment(b.fake.detach()), b.y_fake)
        return real_logits, real_aux, fake_logits, fake_aux, recon

    def loss(self, game: Game, b: PhaseBatch) -> tuple[Tensor, dict[str, Tensor]]:
        real_logits, real_aux, fake_logits, fake_aux, recon = self._logits(game, b)
        loss = game.objective.d_loss(real_logits, fake_logits, self.smoothing)
        game.observe(real_logits.detach(), fake_logits.detach(), len(b.real))
        logs: dict[str, Tensor] = {}
        if recon is not None:
            recon = recon.float()
            loss = loss + recon
            logs["recon"] = recon.detach()
        if real_aux is not None:  # AC-GAN: D also learns the class of both
            aux = F.cross_entropy(real_aux, b.y_real) + F.cross_entropy(fake_aux, b.y_fake)
            loss = loss + self.aux_weight * aux
            logs["aux_d"] = aux.detach()
        loss = add_penalties(loss, self.penalties, game, b, logs)
        head = {"loss_d": loss.detach()}  # the progress bar's keys first, in metrics.jsonl too
        if b.last_update:
            squash = torch.sigmoid if game.objective.probability else (lambda t: t)
            head["d_real"] = squash(real_logits.detach()).mean()
            head["d_fake"] = squash(fake_logits.detach()).mean()
            if self.watch_grads and b.step % self.watch_grads == 0:
                logs.update(_watched_grads(game, b))
        return loss, {**head, **logs}


def _watched_grads(game: Game, b: PhaseBatch) -> dict[str, Tensor]:
    """``gan.watch_grads``: E‖∇D‖² on the batch's real and generated images (through D's
    augmentation, as R1/R2 measure it), logged whether or not a penalty acts on it."""
    return {
        "grad_real": gradient_sq_norm(augmented_critic(game, b.y_real), b.real.float()),
        "grad_fake": gradient_sq_norm(augmented_critic(game, b.y_fake), b.fake.float()),
    }


class Regularise:
    """``Dreg`` / ``Greg``: a network's lazily evaluated penalties as an update of their own, on the
    last critic update of every ``every``-th generator step (Karras et al. 2020)."""

    def __init__(self, net: str, penalties: Sequence[Penalty]) -> None:
        intervals = {p.every for p in penalties}
        if len(intervals) != 1:
            raise ConfigError(
                f"gan.lazy_reg=separate: {net}'s penalties need one interval, got "
                f"{sorted(intervals)}: give them the same gan.reg_every"
            )
        self.name, self.net, self.every = f"{net}reg", net, intervals.pop()
        self.penalties = list(penalties)

    def due(self, batch: PhaseBatch) -> bool:
        return batch.last_update and batch.step % self.every == 0

    def loss(self, game: Game, b: PhaseBatch) -> tuple[Tensor, dict[str, Tensor]]:
        logs: dict[str, Tensor] = {}
        if self.net == "G" and not all(p.draws_own for p in self.penalties):
            b = game.redraw(b)  # G's main update consumed the batch's graph
        zero = torch.zeros((), device=b.real.device)
        return add_penalties(zero, self.penalties, game, b, logs), logs


class GMain:
    """G's objective through D on the last critic update's generated images (the same batch D
    just saw, as the PyTorch DCGAN example does), or feature matching; AC-GAN's class term."""

    name, net, every = "G", "G", 1

    def __init__(
        self,
        feature_layer: nn.Module | None = None,
        aux_weight: float = 1.0,
        penalties: Sequence[Penalty] = (),
    ) -> None:
        self.feature_layer, self.aux_weight = feature_layer, aux_weight
        self.penalties = list(penalties)

    def due(self, batch: PhaseBatch) -> bool:
        return True

    def _feature_matching(self, game: Game, b: PhaseBatch) -> tuple[Tensor, Tensor | None]:
        """‖E f(real) − E f(fake)‖² on the input of D's output layer (Salimans et al. 2016)."""
        layer = self.feature_layer
        with torch.no_grad():
            _, f_real = penultimate(
                lambda x: game.discriminate(x, b.y_real, compiled=False),
                game.augment(b.real),
                layer,
            )
        (_, aux), f_fake = penultimate(
            lambda x: game.discriminate(x, b.y_fake, compiled=False), game.augment(b.fake), layer
        )
        return feature_matching_loss(f_real.float(), f_fake.float()), aux

    def loss(self, game: Game, b: PhaseBatch) -> tuple[Tensor, dict[str, Tensor]]:
        obj, logs = game.objective, {}
        with game.rt.autocast():
            if self.feature_layer is not None:
                loss, aux = self._feature_matching(game, b)
            else:
                logits, aux = game.discriminate(game.augment(b.fake), b.y_fake)
                if obj.relativistic:
                    with torch.no_grad():
                        pair, _ = game.discriminate(game.augment(b.real), b.y_real)
                    loss = obj.g_loss(logits, pair)
                else:
                    loss = obj.g_loss(logits)
        if aux is not None:
            aux_g = F.cross_entropy(aux, b.y_fake)
            loss = loss + self.aux_weight * aux_g
            logs["aux_g"] = aux_g.detach()
        loss = add_penalties(loss, self.penalties, game, b, logs)
        return loss, {"loss_g": loss.detach(), **logs}


def compensate(opts: OptimConfig, interval: int, key: str) -> OptimConfig:
    """The optimizer of a network regularised every ``interval`` steps in a separate update:
    lr·I/(I+1) and β^(I/(I+1)) (stylegan2-ada, training_loop.py), so that the main and the
    regularisation updates together move the weights as one update per step would."""
    if interval <= 1:
        return opts
    if opts.name != "adam":
        raise ConfigError(
            f"gan.lazy_reg=separate compensates Adam's learning rate and betas; {key}.name="
            f"{opts.name}: use {key}.name=adam or gan.lazy_reg=fused"
        )
    ratio = interval / (interval + 1)
    betas = tuple(b**ratio for b in opts.betas)
    return dataclasses.replace(opts, lr=opts.lr * ratio, betas=betas)
