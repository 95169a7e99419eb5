"""Feature extractors chosen by name, and gankit classifier runs as judges.

``--features inception`` is the FID Inception (:mod:`gankit.evaluation.metrics.inception`);
``--features classifier:RUN`` is a gankit classifier run's penultimate layer, after bringing the
images to the classifier's own size and channels. A :class:`ClassifierRun` also gives the class
probabilities that the modes metric counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from gankit.data.sources import fit_tensor
from gankit.errors import ConfigError
from gankit.evaluation.metrics.features import FeatureExtractor, ModuleFeatures, check_images
from gankit.evaluation.metrics.inception import (
    InceptionFeatures,
    find_full_inception,
    find_inception,
)
from gankit.evaluation.metrics.resize import DEFAULT_RESIZER


class ClassifierRun:
    """A trained gankit classifier run: class probabilities and penultimate features of images.

    Images of any size and channel count are first brought to the classifier's own
    ``data.image_size``, ``channels`` and ``fit`` (as its training data was).
    """

    def __init__(self, run: str | Path, device: str = "cpu") -> None:
        from gankit.inference.loading import load_role
        from gankit.inference.roles import Classifier

        loaded = load_role(run, Classifier, device=device)
        self.cfg, self.model, self.step = loaded.cfg, loaded.model, loaded.step
        self.run = Path(run)

    def fit(self, images: Tensor) -> Tensor:
        d = self.cfg.data
        return fit_tensor(images.cpu(), d.image_size, d.fit, d.channels)

    def probabilities(self, images: Tensor) -> Tensor:
        """Softmax (N, K) of the classifier for uint8 images, without flip averaging."""
        check_images(images)
        return self.model.predict(self.fit(images), tta_flip=False).softmax(1)

    def features(self, progress: bool = True) -> FeatureExtractor:
        inner = ModuleFeatures(
            self.model.net, self.model.inputs, device=self.model.device, progress=progress
        )
        return _FittedFeatures(inner, self.fit, f"{self.cfg.data.fit}-{self.cfg.data.image_size}")


class _FittedFeatures:
    """An extractor whose images are first resized/converted by ``fit``; the fit is in its id."""

    def __init__(self, inner: FeatureExtractor, fit: Callable[[Tensor], Tensor], tag: str) -> None:
        self.inner, self._fit = inner, fit
        self.feature_id = f"{inner.feature_id}:{tag}"
        self.split = inner.split

    def __call__(self, images: Tensor) -> Tensor:
        check_images(images)
        return self.inner(self._fit(images))


def make_extractor(
    spec: str,
    *,
    inception: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    backend: str = "auto",
    resizer: str = DEFAULT_RESIZER,
    head: bool = False,
) -> FeatureExtractor:
    """``inception`` (found or downloaded now, so a missing file fails before any work) or
    ``classifier:RUN``. ``backend`` runs the Inception under ONNX Runtime or torch (``auto``:
    ONNX Runtime on a CPU when installed); ``resizer`` brings images to its 299x299
    (:mod:`gankit.evaluation.metrics.resize`). ``head=True`` (the Inception Score) needs the full
    network with its classification head: it is looked for as :func:`find_full_inception` says
    and checked now, a one-line error for the head-less copy."""
    if spec == "inception":
        path = find_full_inception(inception) if head else find_inception(inception)
        extractor = InceptionFeatures(
            path, resizer=resizer, device=device, progress=progress, backend=backend
        )
        if head:
            extractor.head_weight()  # the head-less copy fails here, before any sampling
        return extractor
    if head:
        raise ConfigError("the Inception Score needs --features inception (the full network)")
    if spec.startswith("classifier:") and spec.split(":", 1)[1]:
        return ClassifierRun(spec.split(":", 1)[1], device).features(progress)
    raise ConfigError(f"features {spec!r} is unknown: use inception or classifier:RUN")
