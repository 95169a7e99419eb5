"""What the commands need from a trained run, whatever task trained it.

A run loaded by :func:`gankit.runs.load_run` hands back one model object that implements the roles
of its task: ``gankit sample``, ``interpolate``, ``arithmetic`` and ``evaluate`` take a
:class:`Generative`; ``--rank-by-d`` also needs a :class:`Critic`; ``evaluate-classifier`` and
classifier features take a :class:`Classifier`; ``translate`` (image-to-image tasks) a
:class:`Translator`. The checks are ``isinstance`` on these runtime-checkable protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Generative(Protocol):
    """Images from latent noise (optionally labels)."""

    nz: int
    has_ema: bool
    device: torch.device

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` latent codes on the model's device (drawn on the CPU when ``generator`` is given)."""
        ...

    def sample(
        self, z: Tensor | None = None, labels: Tensor | None = None, ema: bool = True
    ) -> Tensor:
        """Images in [-1, 1] for the codes ``z`` (default: the run's fixed preview noise)."""
        ...


def label_classes(model: object) -> tuple[str, ...] | None:
    """The class names a class-conditional generator draws (labels index them); None otherwise.

    A generator is conditional when its model sets ``label_classes``. This is not ``classes``:
    a semi-supervised GAN's discriminator classifies (``classes``) while its generator takes no
    labels.
    """
    classes = getattr(model, "label_classes", None)
    return tuple(classes) if classes else None


@runtime_checkable
class Critic(Protocol):
    """A discriminator's realness score per image (higher = more real)."""

    def discriminate(self, images: Tensor) -> Tensor: ...


@runtime_checkable
class Translator(Protocol):
    """Image-to-image translation of a batch of any height and width."""

    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor: ...


@runtime_checkable
class Classifier(Protocol):
    """Class logits of uint8 images, and the network and input transform behind them."""

    classes: list[str]
    tta_flip: bool
    net: nn.Module
    device: torch.device
    inputs: Callable[[Tensor], Tensor]

    def predict(self, images: Tensor, tta_flip: bool | None = None) -> Tensor: ...


# --- what a network can do (declared by its class, checked with isinstance) -------------------


@runtime_checkable
class ReconstructingDiscriminator(Protocol):
    """A discriminator with self-supervised decoders (FastGAN, Liu et al. 2021): called as
    ``D(x, reconstruct=True)`` it returns its logits and the reconstruction loss of ``x``."""

    def reconstruction_loss(self, x: Tensor) -> Tensor: ...
