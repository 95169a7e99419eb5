"""Non-finite values, caught on the device without a host synchronisation per step.

The loop keeps the first bad step in a device tensor and reads it at log, preview, evaluation and
checkpoint steps, so a NaN stops the run within ``train.log_every`` steps, before any checkpoint
could save it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from gankit.engine import distributed
from gankit.errors import TrainingError


class FiniteGuard:
    """Remembers, on the device, the first step whose outputs were not all finite.

    ``observe`` costs no host synchronisation; ``check`` (one ``.item()``) raises TrainingError
    naming the step, the keys and their values.
    """

    def __init__(self, device: torch.device) -> None:
        self.bad_step = torch.zeros((), dtype=torch.int64, device=device)
        self.keys: tuple[str, ...] = ()
        self.snapshot: torch.Tensor | None = None

    def observe(self, step: int, out: dict[str, torch.Tensor]) -> None:
        keys = tuple(out)
        values = torch.stack(
            [v.detach().float().reshape(()).to(self.bad_step.device) for v in out.values()]
        )
        if keys != self.keys:  # the step's outputs changed: settle the old record first
            if self.snapshot is not None:
                self.check()
            self.keys, self.snapshot = keys, torch.zeros_like(values)
        first = (self.bad_step == 0) & ~torch.isfinite(values).all()
        self.bad_step = torch.where(first, step, self.bad_step)
        self.snapshot = torch.where(first, values, self.snapshot)

    def check(self, advice: str = "", kept: Callable[[], Path | None] = lambda: None) -> None:
        """Raise if a value was non-finite; ``kept()`` names the last good checkpoint, if any.

        Under torchrun every rank calls this at the same steps and all raise together, naming the
        first bad step of any rank.
        """
        bad = int(self.bad_step)
        if distributed.active():
            never = 2**62
            first_bad = distributed.reduce_min(bad or never)
            if first_bad == never:
                return
            if bad != first_bad:
                raise TrainingError(
                    f"a value became non-finite at step {first_bad} in another process: {advice}"
                )
        if not bad:
            return
        assert self.snapshot is not None
        where = kept()  # looked up only when there is something to report
        vals = self.snapshot.tolist()
        names = [k for k, v in zip(self.keys, vals, strict=True) if not math.isfinite(v)]
        first = vals[self.keys.index(names[0])]
        kept = (
            f"; the last good checkpoint, {where}, is kept"
            if where
            else "; no checkpoint had been written yet"
        )
        raise TrainingError(f"{', '.join(names)} became {first} at step {bad}{kept}: {advice}")
