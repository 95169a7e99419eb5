"""Options that change during a run: ``gan.schedules=[NAME:cosine:START:END:KIMG, ...]``.

R3GAN (Huang et al. 2024, Table 9; brownvc/R3GAN ``train.py``) moves γ, the learning rate and
Adam's β2 by a cosine from a start to an end value over a "burn-in" of thousands of real images,
then holds the end value:

    v(t) = start + (end − start)·(1 − cos(π·t/T))/2  for t < T,  v = end  after,

with t the thousands of real images seen before the step (``step · batch / 1000``). A schedule is
a pure function of the step, so a resumed run continues it exactly; each scheduled value is
logged (``sched_NAME``) and so drawn in the report's curves.

Names: ``r1``, ``r2`` (γ of the penalties), ``lr`` (both optimizers), ``beta2`` (both Adams),
``ada_p`` (with ``gan.ada=fixed``: a fixed schedule of p instead of ADA's controller),
``ema_kimg`` (the EMA half-life).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gankit.errors import ConfigError

SCHEDULABLE = ("r1", "r2", "lr", "beta2", "ada_p", "ema_kimg")
SHAPES = ("cosine", "linear")


@dataclass(frozen=True)
class Schedule:
    name: str
    shape: str
    start: float
    end: float
    kimg: float

    def value(self, kimg_seen: float) -> float:
        """The value after ``kimg_seen`` thousand images."""
        if self.kimg <= 0 or kimg_seen >= self.kimg:
            return self.end
        frac = kimg_seen / self.kimg
        if self.shape == "cosine":
            frac = (1 - math.cos(math.pi * frac)) / 2
        return self.start + (self.end - self.start) * frac


def parse_schedules(items: list[str]) -> list[Schedule]:
    """``gan.schedules`` as :class:`Schedule` objects; a one-line ConfigError for a bad item."""
    out: list[Schedule] = []
    for item in items:
        parts = item.split(":")
        example = "e.g. r1:cosine:1:0.1:2000 (gamma from 1 to 0.1 over 2,000 kimg)"
        if len(parts) != 5 or parts[0] not in SCHEDULABLE or parts[1] not in SHAPES:
            raise ConfigError(
                f"gan.schedules: {item!r} must be NAME:SHAPE:START:END:KIMG with NAME one of "
                f"{', '.join(SCHEDULABLE)} and SHAPE {' or '.join(SHAPES)}, {example}"
            )
        try:
            start, end, kimg = (float(p) for p in parts[2:])
        except ValueError:
            raise ConfigError(f"gan.schedules: {item!r} needs numbers, {example}") from None
        if kimg < 0 or min(start, end) < 0:
            raise ConfigError(f"gan.schedules: {item!r} needs values and KIMG >= 0, {example}")
        if any(s.name == parts[0] for s in out):
            raise ConfigError(f"gan.schedules: {parts[0]} is scheduled twice: keep one")
        out.append(Schedule(parts[0], parts[1], start, end, kimg))
    return out


class Scheduler:
    """Sets the scheduled values on the live objects at the start of every step: the R1/R2
    penalties' weights (γ/2), both optimizers' lr and β2, the fixed ADA p; ``ema_kimg`` is read
    back by the task (:meth:`value`)."""

    def __init__(
        self, schedules: list[Schedule], batch: int, penalties: list, optimizers: list,
        ada_state: object | None, lr_schedules: list = (),
    ) -> None:  # fmt: skip
        self.schedules, self.batch, self.lr_schedules = schedules, batch, list(lr_schedules)
        self.penalties, self.optimizers, self.ada_state = penalties, optimizers, ada_state
        self.current: dict[str, float] = {}

    def apply(self, step: int) -> dict[str, float]:
        """Set every scheduled value for generator step ``step``; returns them by name."""
        kimg = step * self.batch / 1000
        for s in self.schedules:
            v = self.current[s.name] = s.value(kimg)
            if s.name in ("r1", "r2"):
                for pen in self.penalties:
                    if pen.name == s.name:
                        pen.weight = v / 2
            elif s.name in ("lr", "beta2"):
                for opt in self.optimizers:
                    for group in opt.param_groups:
                        if s.name == "lr":
                            group["lr"] = v
                        else:
                            group["betas"] = (group["betas"][0], v)
                for sched in self.lr_schedules if s.name == "lr" else ():  # their base lr too
                    sched.base_lrs = [v] * len(sched.base_lrs)
            elif s.name == "ada_p" and self.ada_state is not None:
                self.ada_state[0] = v
        return dict(self.current)

    def value(self, name: str, default: float) -> float:
        return self.current.get(name, default)
