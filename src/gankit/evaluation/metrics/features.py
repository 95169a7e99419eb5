"""Feature extractors: uint8 images in, one feature vector per image out.

Every extractor is a callable ``extractor(images) -> features`` taking a uint8 NCHW tensor with 1
or 3 channels (any device) and returning a float32 CPU tensor of shape (N, D), computed in batches
with a tqdm bar when there is more than one batch. Each has a ``feature_id`` string naming the
network *and* the preprocessing, which keys the reference-feature cache: features are only
comparable when both match.

- :class:`~gankit.evaluation.metrics.inception.InceptionFeatures` -- the FID Inception (the
  TensorFlow 2015-12-05 graph of Szegedy et al. 2016 used by Heusel et al. 2017, as TorchScript),
  2048-d pool3 features, in :mod:`gankit.evaluation.metrics.inception` with its download and its
  ONNX Runtime backend.
- :class:`ModuleFeatures` -- the penultimate activations of any torch classifier (gankit's own).
- :func:`~gankit.evaluation.metrics.reference_cache.reference_features` -- compute a reference
  set's features once and keep them as ``.npy`` (:mod:`gankit.evaluation.metrics.reference_cache`).

This module holds what they share: the :class:`FeatureExtractor` protocol, the input check, the
batching base class and the cache folder. The package never looks for data outside the cache
folder (``$GANKIT_CACHE`` or ``~/.cache/gankit``), an explicit path, or ``$GANKIT_INCEPTION``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gankit.engine import distributed
from gankit.errors import ConfigError, DataError
from gankit.nets.eval_mode import eval_mode


class FeatureExtractor(Protocol):
    """What metrics need from an extractor: an id for caching and a batched call."""

    feature_id: str
    split: bool
    """Whether a call under torchrun splits the batch over the ranks (all ranks must call)."""

    def __call__(self, images: Tensor) -> Tensor: ...


def cache_dir() -> Path:
    """The folder for downloaded weights and cached features: ``$GANKIT_CACHE`` or ``~/.cache/gankit``."""
    env = os.environ.get("GANKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gankit"


def check_images(images: Tensor) -> None:
    """Raise DataError unless ``images`` is a uint8 (N, C, H, W) tensor with C in (1, 3)."""
    if not isinstance(images, Tensor):
        raise DataError(
            f"feature extractors take a torch.Tensor of images, got {type(images).__name__}"
        )
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(
            f"feature extractors take uint8 NCHW images with 1 or 3 channels, got {images.dtype} "
            f"{tuple(images.shape)}: convert with (x.clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8)"
        )


class _BatchedExtractor:
    """Shared input checks, batching, device transfer and progress bar; subclasses define ``_forward``."""

    feature_id: str = "abstract"
    split = False
    """Under torchrun: every rank calls with the same images, computes the features of its
    contiguous share and gathers the rest (N processes, 1/N of the work each, the same rows)."""

    def __init__(self, *, device: str | torch.device, batch_size: int, progress: bool) -> None:
        if batch_size < 1:
            raise ConfigError(f"feature batch_size {batch_size} must be at least 1")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.progress = progress

    def _forward(self, batch: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        """Features of ``images`` (uint8 NCHW, 1 or 3 channels) as a float32 CPU tensor (N, D)."""
        check_images(images)
        if self.split and distributed.active():
            w = distributed.world()
            bounds = [len(images) * r // w.size for r in range(w.size + 1)]
            mine = images[bounds[w.rank] : bounds[w.rank + 1]]
            local = self._features(mine) if len(mine) else torch.zeros(0, 0)
            return distributed.all_gather_rows(local)
        return self._features(images)

    def _features(self, images: Tensor) -> Tensor:
        starts = range(0, len(images), self.batch_size)
        bar = tqdm(
            starts,
            desc=f"features {self.feature_id.split(':')[0]}",
            unit="batch",
            disable=not self.progress or len(starts) < 2,
            leave=False,
        )
        out = [
            self._forward(images[i : i + self.batch_size].to(self.device)).float().flatten(1).cpu()
            for i in bar
        ]
        if not out:
            raise DataError("feature extractors need at least one image, got an empty tensor")
        return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Any classifier
# --------------------------------------------------------------------------------------------


def _state_digest(module: nn.Module) -> str:
    """A short hash of a module's parameters and buffers, so retrained weights get a new cache key."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


class ModuleFeatures(_BatchedExtractor):
    """Penultimate activations of a torch classifier as features.

    ``preprocess`` maps a uint8 batch (already on ``device``) to the module's input, e.g.
    ``lambda x: x.float() / 127.5 - 1``. By default the features are the *input* of the module's
    last ``nn.Linear`` (in registration order, normally the classification head); pass ``layer``
    (a name from ``module.named_modules()``) to take that submodule's *output* instead. The module is
    put in eval mode during extraction and restored afterwards. ``feature_id`` defaults to the class
    name, layer and a hash of the weights; pass one explicitly if ``preprocess`` changes.
    """

    def __init__(
        self,
        module: nn.Module,
        preprocess: Callable[[Tensor], Tensor],
        *,
        layer: str | None = None,
        feature_id: str | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size, progress=progress)
        self.module = module.to(self.device)
        self.preprocess = preprocess
        if layer is None:
            heads = [m for m in module.modules() if isinstance(m, nn.Linear)]
            if not heads:
                raise ConfigError(
                    f"ModuleFeatures: {type(module).__name__} has no nn.Linear head: pass layer=NAME "
                    "of the submodule whose output are the features"
                )
            self._target, self._use_input = heads[-1], True
        else:
            named = dict(module.named_modules())
            if layer not in named:
                choices = ", ".join(list(named)[1:20])
                raise ConfigError(
                    f"ModuleFeatures: no layer {layer!r} in {type(module).__name__}: use one of {choices}"
                )
            self._target, self._use_input = named[layer], False
        self.feature_id = feature_id or (
            f"{type(module).__name__}:{layer or 'penultimate'}:{_state_digest(module)}"
        )

    def _forward(self, batch: Tensor) -> Tensor:
        captured: list[Tensor] = []

        def hook(_mod: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            captured.append(inputs[0] if self._use_input else output)

        handle = self._target.register_forward_hook(hook)
        try:
            with eval_mode(self.module):
                self.module(self.preprocess(batch))
        finally:
            handle.remove()
        return captured[-1]
