"""Capabilities, declared: what a loaded run's model or a network can do.

A run loaded by :func:`gankit.inference.loading.load_run` hands back one model object that implements the roles
its task declares (``Task.roles``): ``gankit sample``, ``interpolate``, ``arithmetic`` and
``evaluate`` take a :class:`Generative`; ``--class`` a :class:`ConditionalGenerative`;
``--rank-by-d`` a :class:`Critic`; ``export`` an :class:`Exportable`; ``evaluate-classifier`` and
classifier features a :class:`Classifier`; ``translate`` (image-to-image tasks) a
:class:`Translator`; W-space tools a :class:`MappedGenerator`. A command asks
:func:`gankit.inference.loading.load_role` for the one role it needs, which refuses other runs in one line.

Networks declare what the tasks may use in the same way (a discriminator that reconstructs, one
that exposes features, one initialised from data, a translator that pads to a multiple). Every
check is ``isinstance`` on these runtime-checkable protocols, never a probe of attribute names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class ConditionalGenerative(Protocol):
    """A generator that may draw a requested class: ``label_classes`` names them (labels index
    them), or is None when this run's generator is unconditional."""

    label_classes: tuple[str, ...] | None

    def default_labels(self, n: int) -> Tensor:
        """Labels 0, 1, ..., K-1, 0, ...: every class equally often."""
        ...


def label_classes(model: object) -> tuple[str, ...] | None:
    """The class names a class-conditional generator draws (labels index them); None otherwise.

    Not ``classes``: a semi-supervised GAN's discriminator classifies (``classes``) while its
    generator takes no labels (and is no :class:`ConditionalGenerative`).
    """
    if isinstance(model, ConditionalGenerative) and model.label_classes:
        return tuple(model.label_classes)
    return None


@runtime_checkable
class Exportable(Protocol):
    """A generator that ``gankit export`` can write as a file: z (and labels) → images."""

    def export_generator(self, ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
        """The generator module in eval mode and its record: ``nz``, ``noise`` (normal or
        uniform) and, for a conditional one, ``classes`` and ``embed_dim``. Raises a one-line
        ConfigError when this generator cannot leave gankit (virtual batch norm)."""
        ...


@runtime_checkable
class MappedGenerator(Protocol):
    """A generator with a W space (StyleGAN2): z → ``mapping`` → w (one per layer, ``num_ws``)
    → ``synthesis`` → image; ``w_avg`` is the tracked mean of w (truncation, projection)."""

    mapping: nn.Module
    synthesis: nn.Module
    w_avg: Tensor
    num_ws: int


@runtime_checkable
class WSpaceModel(Protocol):
    """A loaded model that can hand out its generator's W space (``--truncation`` in W,
    ``gankit style-mix``): the :class:`MappedGenerator`, or None when its generator has none."""

    def w_generator(self, ema: bool = True) -> MappedGenerator | None: ...


@runtime_checkable
class Critic(Protocol):
    """A discriminator's realness score per image (higher = more real)."""

    def discriminate(self, images: Tensor) -> Tensor: ...


@runtime_checkable
class Translator(Protocol):
    """Image-to-image translation of a batch of any height and width."""

    channels: int
    """Channels of the images it translates (1 grey, 3 RGB)."""

    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor: ...


@runtime_checkable
class Classifier(Protocol):
    """Class logits of uint8 images, and the network and input transform behind them."""

    classes: list[str]
    channels: int
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


@runtime_checkable
class FeatureDiscriminator(Protocol):
    """A discriminator whose last hidden features feature matching reads (SSGAN's nets)."""

    def features(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class DataInitialised(Protocol):
    """A network whose layers are initialised from a batch of data before training (Salimans &
    Kingma 2016, data-dependent initialisation of weight-normalised layers)."""

    def init_from_data(self, x: Tensor) -> None: ...


@runtime_checkable
class SizeMultiple(Protocol):
    """A translator that needs height and width to be multiples of ``multiple`` (a U-Net:
    2^downsamplings); ``gankit translate`` pads to it and crops back."""

    multiple: int
