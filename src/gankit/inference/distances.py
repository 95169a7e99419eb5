"""How far a generated image is from a target: the distances that projection minimises.

Each distance is bound to a target image (one, or one per candidate) and, for a class-conditional
run, the class of each candidate, and then maps a batch of generated images in [-1, 1] to one
value per image:

- ``lpips``: LPIPS-VGG16 v0.1 (Zhang et al. 2018), the distance of stylegan2-ada-pytorch's
  ``projector.py`` (Karras et al. 2020). It needs torchvision's VGG16 weights and the LPIPS lin
  weights (``--vgg PATH --lpips PATH``, or the cache, see
  :func:`gankit.evaluation.metrics.lpips.load_lpips`). Images smaller than 64 pixels are enlarged
  to 64 first (VGG16 sees little in a 28×28 digit), larger than 256 shrunk to 256 as the
  reference does.
- ``pixel``: the mean squared difference of the pixels. Offline, instant, and blind to shifts.
- ``dfeat``: the run's own discriminator as a feature extractor, LPIPS-style (each layer's
  activations unit-normalised over channels, squared differences averaged), plus ``pixel``. The
  discriminator was trained on exactly this kind of image, so its features are the offline
  stand-in for a perceptual network; ``benchmarks/projection.py`` measures which projects best.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.nets.base import WeightLayer

Bound = Callable[[Tensor], Tensor]
"""Generated images (B, C, H, W) in [-1, 1] → distance to the bound target, (B,)."""


@runtime_checkable
class HasDiscriminator(Protocol):
    """A loaded GAN model that holds its discriminator (``D``, None when exported without it) and
    how it takes labels (``conditional``: none, concat, projection or acgan)."""

    D: nn.Module | None
    conditional: str


def pixel_distance(target: Tensor) -> Bound:
    """Mean squared pixel difference to ``target`` (1 or B, C, H, W)."""
    return lambda images: (images - target).square().flatten(1).mean(1)


def lpips_distance(target: Tensor, lpips: nn.Module) -> Bound:
    """LPIPS of each image to ``target``, grey images repeated to RGB, resized for VGG16."""
    t = _for_vgg(target)
    return lambda images: lpips(t.expand(len(images), -1, -1, -1), _for_vgg(images))


def _for_vgg(x: Tensor) -> Tensor:
    """RGB, at least 64 and at most 256 pixels high (area-shrunk as the reference, or enlarged)."""
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    size = x.shape[-1]
    if size > 256:
        return F.interpolate(x, size=(256, 256), mode="area")
    if size < 64:
        return F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    return x


class DiscriminatorFeatures:
    """The outputs of a discriminator's conv and linear layers that have more than one channel
    (so not its logit), read with forward hooks from a private copy, so that concurrent
    projections and the run's own model never share hooks."""

    def __init__(self, D: nn.Module, conditional: str) -> None:
        self.D = copy.deepcopy(D).requires_grad_(False).eval()
        self.conditional = conditional
        self.layers = [
            m for m in self.D.modules() if isinstance(m, nn.Conv2d | nn.Linear | WeightLayer)
        ]

    def __call__(self, x: Tensor, labels: Tensor | None) -> list[Tensor]:
        out: list[Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: out.append(o)) for m in self.layers]
        try:
            if self.conditional != "none":
                self.D(x, labels)
            else:
                self.D(x)
        finally:
            for h in hooks:
                h.remove()
        feats = [f for f in out if isinstance(f, Tensor) and f.dim() >= 2 and f.shape[1] > 1]
        if not feats:
            raise ConfigError("--distance dfeat: this discriminator has no hidden layer to compare")
        return feats


def _unit(f: Tensor) -> Tensor:
    """Features unit-normalised over channels (dim 1), as LPIPS does."""
    return f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)


def dfeat_distance(target: Tensor, features: DiscriminatorFeatures, labels: Tensor | None) -> Bound:
    """LPIPS-style distance in the discriminator's features plus the pixel distance; the target
    is described under each candidate's label (a conditional D sees the label beside the image)."""
    pixel = pixel_distance(target)
    n = len(target) if labels is None else len(labels)
    with torch.no_grad():
        ref = [_unit(f) for f in features(target.expand(n, -1, -1, -1), labels)]

    def distance(images: Tensor) -> Tensor:
        feats = features(images, labels)
        per_layer = [
            (_unit(f) - r).square().sum(1).reshape(len(f), -1).mean(1)
            for f, r in zip(feats, ref, strict=True)
        ]
        return torch.stack(per_layer).mean(0) + pixel(images)

    return distance


DISTANCES = ("lpips", "pixel", "dfeat")
"""The names ``--distance`` accepts."""


Binder = Callable[[Tensor, Tensor | None], Bound]
"""``binder(target, labels)``: a distance bound to a target (1, C, H, W), or one per candidate
(B, C, H, W), and the candidates' class labels (B,) or None."""


def distance_binder(name: str, model: object, lpips: nn.Module | None = None) -> Binder:
    """The distance ``name``, ready to bind to targets: ``lpips`` is the loaded LPIPS module for
    ``name == "lpips"``, ``model`` the loaded run (its discriminator, for ``dfeat``)."""
    if name == "pixel":
        return lambda target, labels: pixel_distance(target)
    if name == "lpips":
        if lpips is None:
            raise ConfigError("--distance lpips: load LPIPS first (--vgg PATH --lpips PATH)")
        return lambda target, labels: lpips_distance(target, lpips)
    if name == "dfeat":
        D = model.D if isinstance(model, HasDiscriminator) else None
        if D is None:
            raise ConfigError(
                "--distance dfeat needs the run's discriminator: use a GAN run directory, or "
                "--distance pixel"
            )
        features = DiscriminatorFeatures(D, model.conditional)
        return lambda target, labels: dfeat_distance(target, features, labels)
    raise ConfigError(f"--distance {name!r}: choose one of {', '.join(DISTANCES)}")
