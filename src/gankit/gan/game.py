"""What the phases of a GAN step share: the :class:`Game` (networks, objective, D's input
pipeline, runtime) and the :class:`PhaseBatch` that one critic update draws."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gankit.data.stream import to_unit
from gankit.engine.runtime import Runtime
from gankit.gan.objectives import Objective
from gankit.gan.pipeline import Pipeline


@dataclass
class PhaseBatch:
    """One critic update's images: real (and labels) and generated (and the labels drawn)."""

    real: Tensor
    y_real: Tensor | None
    fake: Tensor
    """Generated with its graph on the last critic update (the G phase reuses it)."""
    y_fake: Tensor | None
    step: int
    """The generator step (0-based) this update belongs to."""
    last_update: bool
    """Whether this is the last critic update before the generator's."""


@dataclass
class Game:
    """The networks and rules every phase plays with."""

    G: nn.Module
    D: nn.Module
    g: Callable[..., Tensor]
    """G as trained (compiled, distributed ...); ``G`` is the module itself."""
    d: Callable[..., Any]
    objective: Objective
    augment: Pipeline
    rt: Runtime
    noise: Callable[[int], Tensor]
    num_classes: int = 0

    def discriminate(
        self, x: Tensor, y: Tensor | None, compiled: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """D's logits (float) and, for AC-GAN, its class logits. ``compiled=False`` calls the
        module itself (double backward stays outside ``torch.compile``)."""
        d = self.d if compiled else self.D
        if y is None:
            return d(x).float(), None
        logits, aux = d(x, y)
        return logits.float(), None if aux is None else aux.float()

    def generate(self, z: Tensor, y: Tensor | None) -> Tensor:
        return self.g(z) if y is None else self.g(z, y)

    def draw(self, stream: Iterator, step: int, last_update: bool) -> PhaseBatch:
        """Real images from ``stream`` and as many generated ones (with their graph only on the
        last update), this rank's rows of the global noise and labels."""
        batch = next(stream)
        labelled = isinstance(batch, tuple | list)  # a labelled stream yields (uint8, labels)
        real, y_real = (to_unit(batch[0]), batch[1]) if labelled else (batch, None)
        real = real.contiguous(memory_format=self.rt.memory_format)
        fake, y_fake = self._fake(len(real), labelled, last_update)
        return PhaseBatch(real, y_real, fake, y_fake, step, last_update)

    def redraw(self, batch: PhaseBatch) -> PhaseBatch:
        """``batch`` with newly generated images (and labels), with their graph: a phase after
        G's main update draws its own, as each phase of stylegan2-ada does."""
        fake, y_fake = self._fake(len(batch.real), batch.y_real is not None, True)
        return dataclasses.replace(batch, fake=fake, y_fake=y_fake)

    def _fake(self, n: int, labelled: bool, grad: bool) -> tuple[Tensor, Tensor | None]:
        z = self.rt.rank_rows(self.noise, n)
        y = None
        if labelled:
            k, device = self.num_classes, self.rt.device
            y = self.rt.rank_rows(lambda rows: torch.randint(k, (rows,), device=device), n)
        with torch.set_grad_enabled(grad), self.rt.autocast():
            return self.generate(z, y), y

    def observe(self, real_logits: Tensor, fake_logits: Tensor, n: int) -> None:
        """Show D's outputs on real images to the pipeline (ADA's r_t). For a relativistic loss
        the signal is D(real) − D(fake), whose sign is all a pairing loss fixes."""
        if self.augment.observes:
            signal = real_logits - fake_logits if self.objective.relativistic else real_logits
            self.augment.observe(signal, n * self.rt.world)
