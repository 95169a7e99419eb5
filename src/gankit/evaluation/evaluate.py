"""Evaluating generators against real images: the library behind ``gankit evaluate`` and ``eval.every``.

The protocol, in one place so that the command line and training report comparable numbers:

- **Samples** are uint8 images: a GAN run's generator output in [-1, 1] mapped by
  ``round(127.5 x + 127.5)``, or the images of a folder at one size.
- **Reference set.** The reference source (any ``data.source``: ``builtin:mnist``, ``mnist``,
  ``fashion-mnist``, ``cifar10``, ``folder:PATH``, ``lmdb:PATH``; its training split, no
  ``data.limit``) is brought to the samples' size, channels and fit, and its M images are put in one
  fixed random order (``numpy.random.default_rng(0).permutation(M)``). The last
  ``h = min(n, M // 5)`` images of that order are the **held-out** part; the reference for FID, KID,
  precision/recall, density/coverage and the "training" side of the memorisation tests is the
  first ``min(ref_n, M - h)`` images. The two parts never overlap, and the reference does not
  depend on which metrics are asked for. Memorisation only searches the reference part for copies:
  raise ``ref_n`` to search more of a large training set.
- **Features** come from one extractor for all sides (:mod:`gankit.evaluation.metrics.features`): the FID
  Inception (torch bilinear resize to 299 of the uint8 images, ``align_corners=False``, no
  antialiasing; see :func:`~gankit.evaluation.metrics.inception.inception_preprocess`) or a gankit classifier
  run's penultimate layer, after bringing the images to the classifier's size and channels with the
  data pipeline's :func:`~gankit.data.sources.fit_tensor`. Reference features are cached on disk,
  keyed by the extractor and a hash of the reference images' bytes
  (:func:`~gankit.evaluation.metrics.reference_cache.reference_features`).
- **FID** uses the ``eigh`` form of the matrix square root: it equals scipy's ``sqrtm`` to 1e-13
  relative (tests/test_fid.py) and takes seconds instead of a minute for 2048-d features on a CPU.
- **Modes** need class probabilities from a gankit classifier run; the real class histogram is the
  same classifier's predictions on the reference images, so its own biases cancel.
- **PPL** (perceptual path length, asked for by name) is scored on a StyleGAN2 generator itself,
  not on samples: ``n`` pairs a small step apart in W, LPIPS-VGG16 (:mod:`.metrics.ppl`). Alone,
  it needs no reference set.

This module evaluates a run or a folder (:func:`evaluate_source`) and scores a GAN during training
(:class:`TrainingEvaluator`); the parts live beside it: the samples (:mod:`.samples`), the
reference set (:mod:`.reference`), the feature extractors by name (:mod:`.extractors`), the scoring
of images (:mod:`.scoring`) and the per-class scores (:mod:`.per_class`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gankit.config import Config, DataConfig
from gankit.engine import distributed
from gankit.errors import CheckpointError, ConfigError
from gankit.evaluation.extractors import ClassifierRun, make_extractor
from gankit.evaluation.metrics import compute_fid, compute_kid, compute_prdc
from gankit.evaluation.metrics.features import FeatureExtractor
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.reference import ReferenceSet, load_reference
from gankit.evaluation.samples import Samples, load_samples, to_uint8
from gankit.evaluation.scoring import FEATURE_METRICS, Evaluation, evaluate_images

METRIC_CHOICES = ("fid", "kid", "prdc", "modes", "memorisation", "copying", "ppl")
DEFAULT_METRICS = ("fid", "kid", "prdc", "modes", "memorisation")
TRAINING_METRICS: dict[str, tuple[str, bool]] = {
    "fid": ("fid", False),
    "kid": ("kid", False),
    "precision": ("prdc", True),
    "recall": ("prdc", True),
    "density": ("prdc", True),
    "coverage": ("prdc", True),
}
"""``eval.metric`` -> (metric family computed, higher is better)."""


def parse_metrics(text: str | Sequence[str]) -> list[str]:
    """``"fid,kid"`` -> ``["fid", "kid"]``, checked against :data:`METRIC_CHOICES`."""
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    for m in names:
        if m not in METRIC_CHOICES:
            raise ConfigError(
                f"--metrics: {m!r} is unknown: choose from {', '.join(METRIC_CHOICES)}"
            )
    if not names:
        raise ConfigError(f"--metrics is empty: choose from {', '.join(METRIC_CHOICES)}")
    return list(dict.fromkeys(names))


# --- a run or a folder ------------------------------------------------------------------------


@dataclass
class EvaluationRun:
    """One evaluation of a run or folder: what was compared and the scores."""

    samples: Samples
    """With ``--metrics ppl`` alone: the run's step, data and EMA choice, and no images."""
    reference: ReferenceSet | None
    """None with ``--metrics ppl`` alone."""
    result: Evaluation
    extractor: FeatureExtractor | None
    classifier: ClassifierRun | None
    checkpoint: Path | None
    like: DataConfig
    root: str | None


def evaluate_source(
    path: str | Path,
    ref: str | None,
    *,
    n: int = 2000,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    ref_n: int | None = None,
    features: str = "inception",
    inception: str | None = None,
    backend: str = "auto",
    classifier: str | Path | None = None,
    ema: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    fit: str | None = None,
    root: str | None = None,
    direction: str | None = None,
    vgg: str | Path | None = None,
    lpips: str | Path | None = None,
) -> EvaluationRun:
    """Evaluate a GAN run's samples (or a folder of images) against the reference source ``ref``.

    A translation run is scored on its source domain's test images translated in ``direction``
    (default AtoB, or its one direction): give the target domain's test images as ``ref``.

    The one implementation behind ``gankit evaluate`` and :func:`gankit.evaluate`; see the module
    docstring for the protocol. ``metrics`` named explicitly must all be computable (``modes``
    needs ``classifier``); the default set skips what it cannot compute, with a note. ``ppl``
    scores a StyleGAN2 generator over ``n`` pairs (LPIPS weights ``vgg``, ``lpips``), no ``ref``.
    """
    explicit = metrics != DEFAULT_METRICS and metrics != ",".join(DEFAULT_METRICS)
    names = parse_metrics(metrics)
    path = Path(path)
    scored = _check_arguments(path, ref, ref_n, names)
    ckpt = _checkpoint_file(path, checkpoint)
    # Feature networks first: a missing Inception should fail before minutes of sampling.
    extractor = _source_extractor(names, features, inception, device, backend)
    judge = ClassifierRun(classifier, device) if classifier else None
    ppl = _path_length(path, n, vgg, lpips, ema, seed, device, ckpt) if "ppl" in names else None
    if ppl and not scored:  # PPL alone: no samples, no reference
        record, result = ppl[0], Evaluation({"ppl": ppl[1]()})
        return EvaluationRun(record, None, result, None, judge, ckpt, record.data, root)
    samples = load_samples(
        path, n, ema=ema, seed=seed, device=device, checkpoint=ckpt, fit=fit, direction=direction
    )
    like = dataclasses.replace(samples.data, fit=fit) if fit else samples.data
    root = root or (samples.data.root if samples.is_run else None)
    reference = load_reference(ref, like, ref_n or n, root=root)
    if "modes" in names and judge is None and explicit:
        # Asked for by name, it must not silently come back empty (by default it is skipped).
        raise ConfigError(
            "--metrics modes needs --classifier RUN (a gankit classifier run) to count classes"
        )
    result = evaluate_images(samples.images, reference, scored, extractor, classifier=judge)
    if len(samples.images) < n:
        result.notes.append(f"{path} has only {len(samples.images)} images (asked for --n {n})")
    if ppl:
        result.metrics["ppl"] = ppl[1]()
    return EvaluationRun(samples, reference, result, extractor, judge, ckpt, like, root)


def _check_arguments(path: Path, ref: str | None, ref_n: int | None, names: list[str]) -> list[str]:
    """The metrics scored on samples (all but ``ppl``), after one-line errors for a missing path,
    a bad ``--ref-n`` and sample metrics without ``--ref``."""
    scored = [m for m in names if m != "ppl"]
    if not path.exists():
        raise CheckpointError(
            f"{path} does not exist: give a GAN run directory or a folder of images"
        )
    if ref_n is not None and ref_n < 1:
        raise ConfigError(f"--ref-n {ref_n} must be positive")
    if scored and not ref:
        raise ConfigError(
            f"--metrics {','.join(scored)} needs --ref DATA (the real images, e.g. builtin:mnist)"
        )
    return scored


def _path_length(
    path: Path, n: int, vgg: str | Path | None, lpips: str | Path | None, ema: bool | None,
    seed: int, device: str, checkpoint: Path | None,
) -> tuple[Samples, Callable[[], dict[str, float]]]:  # fmt: skip
    """``--metrics ppl``: the run, its W space and LPIPS loaded and checked (in that order, so that
    a run without a W space fails before any download); the run's record (no images) and the PPL,
    computed when called (:mod:`gankit.evaluation.metrics.ppl`)."""
    from gankit.evaluation.metrics.lpips import load_lpips
    from gankit.evaluation.metrics.ppl import perceptual_path_length
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative
    from gankit.inference.sampling import resolve_ema
    from gankit.inference.wspace import mapped_generator

    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"--metrics ppl needs a GAN run with a W space (StyleGAN2); {path} is not a run directory"
        )
    loaded = load_role(path, Generative, device=device, checkpoint=checkpoint)
    model, ema = loaded.model, resolve_ema(ema, loaded.model, path)
    mapped_generator(model, ema, "--metrics ppl")
    distance = load_lpips(vgg, lpips, model.device)  # where the run went (--device auto)
    data = loaded.cfg.data
    blank = torch.zeros(0, data.channels, data.image_size, data.image_size, dtype=torch.uint8)
    record = Samples(blank, str(path), loaded.step, data, is_run=True, ema=ema)
    return record, lambda: perceptual_path_length(model, distance, n, ema=ema, seed=seed)


def _checkpoint_file(path: Path, checkpoint: str | Path | None) -> Path | None:
    """``--checkpoint``: None (the newest), ``best`` (the run's best.pt) or a file that exists."""
    from gankit.engine.checkpoint import best_checkpoint

    ckpt = (
        best_checkpoint(path)
        if checkpoint == "best"
        else (Path(checkpoint) if checkpoint else None)
    )
    if ckpt and not ckpt.is_file():
        raise CheckpointError(f"--checkpoint: {ckpt} does not exist")
    return ckpt


def _source_extractor(
    names: list[str], features: str, inception: str | None, device: str, backend: str
) -> FeatureExtractor | None:
    """The feature extractor the metrics ``names`` need, or None when none needs features."""
    if not FEATURE_METRICS & set(names):
        return None
    extractor = make_extractor(features, inception=inception, device=device, backend=backend)
    # Under torchrun (`torchrun --nproc_per_node=N -m gankit evaluate ...`) every rank
    # extracts 1/N of the features and gathers the rest: the same scores, N times faster.
    extractor.split = distributed.active()
    return extractor


# --- during training -------------------------------------------------------------------------


class TrainingEvaluator:
    """``eval.every`` for a GAN: ``eval.n`` samples from fixed noise against a cached reference.

    Built once (extractor, reference images and their features); each call returns
    ``{"eval_<key>": value}`` for every scalar of the configured metric's family.
    """

    def __init__(self, cfg: Config, device: str | torch.device) -> None:
        e = cfg.eval
        if e.metric not in TRAINING_METRICS:
            raise ConfigError(
                f"eval.metric={e.metric!r}: choose from {', '.join(TRAINING_METRICS)}"
            )
        self.family, self.higher_is_better = TRAINING_METRICS[e.metric]
        self.key = f"eval_{e.metric}"
        self.n = e.n
        progress = cfg.train.progress
        self.extractor = make_extractor(
            e.features, inception=e.inception, device=str(device), progress=progress
        )
        # Under torchrun every rank evaluates together, each extracting 1/N of the features.
        self.extractor.split = distributed.active()
        self.reference = load_reference(
            e.ref or cfg.data.source, cfg.data, e.n, root=e.root or cfg.data.root, progress=progress
        )
        self.ref_features = reference_features(
            self.extractor,
            self.reference.feature_key("ref"),
            len(self.reference.images),
            lambda: self.reference.images,
        )

    def __call__(self, generate: Callable[[int], Tensor]) -> dict[str, float]:
        fake = self.extractor(to_uint8(generate(self.n)))
        if self.family == "fid":
            scores = compute_fid(self.ref_features, fake, method="eigh")
        elif self.family == "kid":
            scores = compute_kid(self.ref_features, fake)
        else:
            scores = compute_prdc(self.ref_features, fake)
        return {f"eval_{k}": float(v) for k, v in scores.items()}
