"""Class-conditional wrappers around any generator and discriminator of the registry.

- :class:`ConditionalGenerator`: the label's learned embedding joined to the noise (Mirza &
  Osindero 2014), so the base generator is built with ``nz + embed_dim`` inputs;
- :class:`LabelDiscriminator`, one of
  ``concat``: the one-hot label as ``K`` extra constant input channels (Mirza & Osindero 2014);
  ``projection``: D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩, φ the input of the base's last layer
  (Miyato & Koyama 2018, eq. 3);
  ``acgan``: the unconditional D plus an auxiliary classifier head on φ(x), trained with the
  class log-likelihood on real and generated images (Odena et al. 2017, eq. 2–3).

They work with every family (DCGAN, MNIST-DC, MLP) because they only need the base's input
channels and its last layer, found like feature matching finds it
(:func:`gankit.gan.stabilisers.matching.last_layer`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.gan.stabilisers.matching import last_layer, penultimate
from gankit.nets.eval_mode import eval_mode

Conditioning = Literal["concat", "projection", "acgan"]


class ConditionalGenerator(nn.Module):
    """``base(cat(z, embed(y)))``; ``base`` takes ``nz + embed_dim`` noise dimensions."""

    def __init__(self, base: nn.Module, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.base = base
        self.embed = nn.Embedding(num_classes, embed_dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)
        self.num_classes = num_classes

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.base(torch.cat([z.flatten(1), self.embed(y)], dim=1))


class LabelDiscriminator(nn.Module):
    """A discriminator that takes labels: ``forward(x, y) -> (logits (N,), class logits or None)``.

    For ``concat`` the base must be built with ``channels + num_classes`` input channels.
    ``feature_dim`` (the flattened input size of the base's last layer) is needed for
    ``projection`` and ``acgan``; :func:`feature_dim` measures it.
    """

    def __init__(
        self, base: nn.Module, mode: Conditioning, num_classes: int, feature_dim: int = 0
    ) -> None:
        super().__init__()
        self.base, self.mode, self.num_classes = base, mode, num_classes
        if mode == "projection":
            self.embed = nn.Embedding(num_classes, feature_dim)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        elif mode == "acgan":
            self.classifier = nn.Linear(feature_dim, num_classes)
        self._last = last_layer(base) if mode != "concat" else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if self.mode == "concat":
            onehot = F.one_hot(y, self.num_classes).to(x.dtype)
            maps = onehot.view(*onehot.shape, 1, 1).expand(-1, -1, *x.shape[2:])
            return self.base(torch.cat([x, maps], dim=1)), None
        out, feats = penultimate(self.base, x, self._last)
        feats = feats.flatten(1)
        if self.mode == "projection":
            return out + (self.embed(y) * feats).sum(1), None
        return out, self.classifier(feats)


@torch.no_grad()
def feature_dim(base: nn.Module, channels: int, size: int) -> int:
    """The flattened input size of ``base``'s last layer, by one forward pass of two zero images."""
    with eval_mode(base):
        _, feats = penultimate(base, torch.zeros(2, channels, size, size))
    return feats[0].numel()
