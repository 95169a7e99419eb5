"""What stands between an image and the discriminator: an ordered pipeline of transforms.

Every image D sees, real or generated, goes through the same transforms in the configured order
(``gan.d_input``, default ADA → DiffAugment → instance noise). A transform may keep state in
``buffers`` (checkpointed with the run: ADA's p and its r_t counts) and may ``observe`` D's
outputs on real images (ADA's r_t); most ignore both. Everything is differentiable tensor work, so
G learns through D's view of its augmented samples.

Adding a transform is one class here and one line in :data:`TRANSFORMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from gankit.data.augment import diff_augment
from gankit.gan.ada import BGC, AdaController, ada_augment, expand_ops
from gankit.gan.stabilisers.noise import instance_noise, instance_noise_std


class Transform:
    """One stage of D's input pipeline; identity on ``observe`` and ``begin`` by default."""

    name: ClassVar[str]
    buffers: dict[str, Tensor]

    def __init__(self) -> None:
        self.buffers = {}

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def begin(self, step: int) -> None:
        """Called before each generator step ``step`` (annealed transforms read it)."""

    def observe(self, signal: Tensor, batch: int) -> None:
        """D's outputs on the real images of one update (``batch``: images in the global batch)."""

    def logs(self) -> dict[str, Tensor]:
        return {}


class Ada(Transform):
    """Adaptive (or fixed-p) discriminator augmentation (Karras et al. 2020b): the op groups
    ``ops`` (``gan.ada_ops``, default ``bgc``), geometric ops anti-aliased unless ``antialias`` is
    False (``gan.ada_antialias``). Only the controller's state is checkpointed."""

    name = "ada"

    def __init__(
        self,
        controller: AdaController,
        reduce: Callable[[Tensor], Tensor],
        ops: Sequence[str] = BGC,
        antialias: bool = True,
    ) -> None:
        super().__init__()
        self.controller, self.reduce = controller, reduce
        self.ops, self.antialias = expand_ops(ops), antialias
        self.buffers = {"ada": controller.state}

    def __call__(self, x: Tensor) -> Tensor:
        return ada_augment(x, self.controller.p, ops=self.ops, antialias=self.antialias)

    def observe(self, signal: Tensor, batch: int) -> None:
        self.controller.observe(signal.detach(), batch, reduce=self.reduce)

    def logs(self) -> dict[str, Tensor]:
        c = self.controller
        return {"ada_p": torch.tensor(c.p), "ada_rt": torch.tensor(c.rt)}


class DiffAugment(Transform):
    """Differentiable augmentation with a fixed policy (Zhao et al. 2020)."""

    name = "diffaugment"

    def __init__(self, policy: Sequence[str]) -> None:
        super().__init__()
        self.policy = list(policy)

    def __call__(self, x: Tensor) -> Tensor:
        return diff_augment(x, self.policy)


class InstanceNoise(Transform):
    """Gaussian noise on every input of D, annealed linearly to 0 over ``total`` generator steps
    (Sønderby et al. 2017; Arjovsky & Bottou 2017)."""

    name = "noise"

    def __init__(
        self,
        std: float,
        total: int,
        rank_rows: Callable | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        """``rank_rows`` draws this rank's rows of the global batch's noise (training);
        ``generator`` draws from one CPU generator instead (the 2-D lab's single stream)."""
        super().__init__()
        self.start, self.total, self.rank_rows, self.generator = std, total, rank_rows, generator
        self.std = std

    def begin(self, step: int) -> None:
        self.std = instance_noise_std(self.start, step, self.total)

    def __call__(self, x: Tensor) -> Tensor:
        if self.generator is not None or self.std <= 0:
            return instance_noise(x, self.std, self.generator)
        assert self.rank_rows is not None
        shape, device, dtype = x.shape[1:], x.device, x.dtype
        noise = self.rank_rows(lambda n: torch.randn(n, *shape, device=device, dtype=dtype), len(x))
        return x + self.std * noise


TRANSFORMS: tuple[str, ...] = ("ada", "diffaugment", "noise")
"""The transform names ``gan.d_input`` orders (each is built by the GAN task when its options
switch it on: ``gan.ada``, ``gan.augment``, ``gan.instance_noise``)."""


class Pipeline:
    """The transforms in order: applied one after another, all observing, buffers merged."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def begin(self, step: int) -> None:
        for t in self.transforms:
            t.begin(step)

    def observe(self, signal: Tensor, batch: int) -> None:
        for t in self.transforms:
            t.observe(signal, batch)

    @property
    def observes(self) -> bool:
        """Whether any transform reads D's outputs (so the caller need not compute the signal)."""
        return any(type(t).observe is not Transform.observe for t in self.transforms)

    @property
    def buffers(self) -> dict[str, Tensor]:
        return {k: v for t in self.transforms for k, v in t.buffers.items()}

    def logs(self) -> dict[str, Tensor]:
        return {k: v for t in self.transforms for k, v in t.logs().items()}
