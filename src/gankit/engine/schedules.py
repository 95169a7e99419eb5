"""Learning-rate (and momentum) schedules, as pure functions plus a PyTorch scheduler.

* ``one_cycle``: the one-cycle policy of Smith 2018 ("A disciplined approach to neural network
  hyper-parameters: Part 1", arXiv:1803.09820) with the exact semantics of fastai 0.7's
  ``use_clr_beta=(div, pct, mom_max, mom_min)`` (``CircularLR_beta``), as used by the fast.ai 2018
  course's CIFAR-10 Darknet (``use_clr_beta=(20, 20, 0.95, 0.85)``, lr 1.3).
* ``OneCycleScheduler``: an ``LRScheduler`` that applies ``one_cycle`` every step to the learning
  rate and to the momentum (SGD ``momentum``, or ``beta1`` for Adam-style ``betas``).
* ``linear_decay``: constant, then linear to zero (CycleGAN, Zhu et al. 2017: 100 epochs constant,
  100 epochs of linear decay), as a multiplier for a ``FactorSchedule``.
* ``FactorSchedule``: base lr × factor(step), with the step as its only state.

Schedules in a task's parts restore only their position on resume: their shape comes from the
(possibly changed) config, so ``--resume RUN classifier.lr=...`` or ``train.steps=...`` applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from gankit.errors import ConfigError

__all__ = [
    "FactorSchedule",
    "OneCycleScheduler",
    "check_decay_start",
    "cycle_breakpoints",
    "decay_after",
    "decaying",
    "linear_decay",
    "one_cycle",
]


def cycle_breakpoints(total_steps: int, pct: float) -> tuple[int, int]:
    """Steps at which the one-cycle lr peaks and at which its final annealing starts.

    As in fastai 0.7, the half-cycle length is ``floor(total_steps * (100 - pct) / 200)`` whole
    steps, so the peak is at that step and the annealing starts at twice it; the last
    ``total_steps - 2 * half`` steps (about ``pct`` %) anneal.
    """
    if total_steps < 1:
        raise ConfigError(f"one-cycle total_steps {total_steps} must be a positive step count")
    if not 0 <= pct < 100:
        raise ConfigError(
            f"one-cycle pct {pct} must be in [0, 100): the % of steps spent annealing"
        )
    # Computed as one division so that integer inputs land exactly on integers (no 19.999... -> 19).
    half = math.floor(total_steps * (100 - pct) / 200)
    if half < 1:
        raise ConfigError(
            f"one-cycle over {total_steps} steps with pct {pct} leaves no warm-up step: "
            "use more steps or a smaller pct"
        )
    return half, 2 * half


def one_cycle(
    step: int,
    total_steps: int,
    lr: float,
    div: float = 20.0,
    pct: float = 20.0,
    mom_max: float = 0.95,
    mom_min: float = 0.85,
) -> tuple[float, float]:
    """Learning rate and momentum at ``step`` of a one-cycle schedule (fastai ``use_clr_beta``).

    With ``half, anneal = cycle_breakpoints(total_steps, pct)``:

    * steps ``0 .. half``: lr rises linearly ``lr/div -> lr``; momentum falls ``mom_max -> mom_min``;
    * steps ``half .. anneal``: lr falls ``lr -> lr/div``; momentum rises ``mom_min -> mom_max``;
    * steps ``anneal .. total_steps``: lr anneals ``lr/div -> lr/(div*100)``; momentum stays at
      ``mom_max``.

    For lr 1.3, div 20 that is 0.065 -> 1.3 -> 0.065 -> 0.00065. ``step`` counts optimiser steps from
    0; the value at ``total_steps`` is the end point (the last of ``total_steps`` optimiser steps
    uses ``step = total_steps - 1``, one increment above it, exactly as fastai 0.7 did). Steps past
    ``total_steps`` keep the end values.
    """
    if div <= 1:
        raise ConfigError(f"one-cycle div {div} must be > 1 (the peak lr is div x the start lr)")
    if step < 0:
        raise ConfigError(f"one-cycle step {step} must be >= 0")
    half, anneal = cycle_breakpoints(total_steps, pct)
    low = lr / div
    step = min(step, total_steps)
    if step <= half:
        frac = step / half
        return low + frac * (lr - low), mom_max + frac * (mom_min - mom_max)
    if step <= anneal:
        frac = (step - half) / half
        return lr + frac * (low - lr), mom_min + frac * (mom_max - mom_min)
    frac = (step - anneal) / (total_steps - anneal)
    return low + frac * (low / 100 - low), mom_max


def linear_decay(step: int, total: int, start_decay: int) -> float:
    """Multiplier 1 until ``start_decay``, then linear down to 0 at ``total`` (clamped to [0, 1]).

    The CycleGAN schedule (Zhu et al. 2017) is ``linear_decay(epoch, 200, 100)`` per epoch.
    The reference code divides by ``n_epochs_decay + 1`` and so never reaches 0 (its last epoch
    uses 1/101); here the last epoch, ``total - 1``, uses ``1 / (total - start_decay)``.
    """
    if not 0 <= start_decay < total:
        raise ConfigError(
            f"linear_decay start_decay {start_decay} must be in [0, total={total}): "
            "the step at which the decay starts"
        )
    if step < start_decay:
        return 1.0
    return max(0.0, 1.0 - (step - start_decay) / (total - start_decay))


def decay_after(step: int, total: int, start: float | None) -> float:
    """``linear_decay`` from the fraction ``start`` of ``total`` steps (None: always 1): the
    multiplier behind the tasks' ``lr_decay_start`` options."""
    return 1.0 if start is None else linear_decay(step, total, int(start * total))


def decaying(
    optims: dict[str, Optimizer], total: int, start: float | None
) -> dict[str, FactorSchedule]:
    """One :class:`FactorSchedule` per optimizer: its lr constant until the fraction ``start`` of
    ``total`` steps, then linear to 0 (:func:`decay_after`); None keeps it constant. The
    schedules behind every task's ``lr_decay_start`` option."""
    return {
        k: FactorSchedule(o, lambda step: decay_after(step, total, start))
        for k, o in optims.items()
    }


def check_decay_start(value: float | None, key: str) -> None:
    """A one-line ConfigError unless ``value`` (the option ``key``) is in [0, 1) or None."""
    if value is not None and not 0 <= value < 1:
        raise ConfigError(f"{key}={value} must be in [0, 1), or null for a constant lr")


class OneCycleScheduler(LRScheduler):
    """Sets lr and momentum of every param group to ``one_cycle`` at each ``step()``.

    Call ``step()`` once after each optimiser step, like any PyTorch scheduler. Construction applies
    step 0. ``lr`` is the peak learning rate (one per param group, or one for all); by default each
    group's own lr at construction is its peak. Momentum goes to ``group['momentum']`` (SGD,
    RMSprop) or to ``group['betas'][0]`` (Adam, AdamW). ``state_dict()``/``load_state_dict()``
    restore the position exactly, and loading re-applies the current lr and momentum to the
    optimiser, so a resume is exact even if the optimiser's own state was not loaded.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        lr: float | Sequence[float] | None = None,
        div: float = 20.0,
        pct: float = 20.0,
        mom_max: float = 0.95,
        mom_min: float = 0.85,
        cycle_momentum: bool = True,
        last_epoch: int = -1,
    ) -> None:
        cycle_breakpoints(total_steps, pct)  # validate now rather than at the first step
        groups = optimizer.param_groups
        if lr is None:
            peaks = [float(g.get("initial_lr", g["lr"])) for g in groups]
        elif isinstance(lr, Sequence):
            if len(lr) != len(groups):
                raise ConfigError(
                    f"one-cycle got {len(lr)} peak lrs for {len(groups)} param groups: "
                    "give one lr per group or a single float"
                )
            peaks = [float(v) for v in lr]
        else:
            peaks = [float(lr)] * len(groups)
        if cycle_momentum:
            for i, g in enumerate(groups):
                if "momentum" not in g and "betas" not in g:
                    raise ConfigError(
                        f"one-cycle: param group {i} of {type(optimizer).__name__} has no momentum "
                        "or betas to cycle; pass cycle_momentum=False"
                    )
        self.total_steps = total_steps
        self.peak_lrs = peaks
        self.div = div
        self.pct = pct
        self.mom_max = mom_max
        self.mom_min = mom_min
        self.cycle_momentum = cycle_momentum
        super().__init__(optimizer, last_epoch)

    def _values(self) -> tuple[list[float], float]:
        moms = [
            one_cycle(
                self.last_epoch,
                self.total_steps,
                peak,
                self.div,
                self.pct,
                self.mom_max,
                self.mom_min,
            )
            for peak in self.peak_lrs
        ]
        return [lr for lr, _ in moms], moms[0][1]

    def _set_momentum(self, mom: float) -> None:
        if not self.cycle_momentum:
            return
        for g in self.optimizer.param_groups:
            if "betas" in g:
                g["betas"] = (mom, *g["betas"][1:])
            else:
                g["momentum"] = mom

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The lrs for ``self.last_epoch``; sets momentum too, as torch's OneCycleLR does."""
        lrs, mom = self._values()
        self._set_momentum(mom)
        return lrs

    def get_last_momentum(self) -> float:
        """The momentum (or beta1) applied at the current step."""
        return self._values()[1]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position only; the schedule's shape (peak lr, length, div, pct, momenta)
        stays as constructed, so a resume with changed settings follows them from here on."""
        self.last_epoch = state_dict["last_epoch"]
        self._step_count = state_dict.get("_step_count", self.last_epoch + 1)
        lrs, mom = self._values()
        for g, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            g["lr"] = lr
        self._set_momentum(mom)
        self._last_lr = lrs


class FactorSchedule:
    """Every param group's lr = its base lr × ``factor(step)``; only the step is state.

    The base lrs are the optimizer's at construction, i.e. the config's. Loading restores the step
    and re-applies the factor, so a resumed run with another ``optim.*.lr`` or ``train.steps``
    follows the new values from the resume step on (and an unchanged one is bit-exact).
    """

    def __init__(self, optimizer: Optimizer, factor: Callable[[int], float]) -> None:
        self.optimizer, self.factor = optimizer, factor
        self.base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def _apply(self) -> None:
        f = self.factor(self.last_epoch)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["lr"] = base * f

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, int]:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_epoch = int(state["last_epoch"])
        self._apply()
