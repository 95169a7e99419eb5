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
  Inception (after one of the resizers of :mod:`gankit.evaluation.metrics.resize`, by default
  ``legacy-tensorflow``, the original TF FID code's; see
  :func:`~gankit.evaluation.metrics.inception.inception_preprocess`) or a gankit classifier
  run's penultimate layer, after bringing the images to the classifier's size and channels with the
  data pipeline's :func:`~gankit.data.sources.fit_tensor`. Reference features are cached on disk,
  keyed by the extractor (resizer, network checksum), a hash of the reference images' bytes and
  the protocol (:func:`~gankit.evaluation.metrics.reference_cache.reference_features`).
- **Protocols** (:mod:`gankit.evaluation.protocols`): ``protocol="fid50k_full"`` and the other
  named ones fix the samples, the reference, the resizer and the covariance convention of a
  published pipeline, and hold nothing out (their reference is the training images the pipeline
  uses); ``custom`` (default) takes ``n``, ``ref_n`` and ``resizer``. Every result carries the
  protocol record that :func:`~gankit.evaluation.protocols.compare_records` checks.
- **Statistics files** (``ref="stats:FILE.npz"``, :mod:`gankit.evaluation.stats_files`) stand for
  the reference: FID and FD∞ from their ``mu``/``sigma``, KID and PRDC from their ``feats``.
- **FID** uses the ``eigh`` form of the matrix square root: it equals scipy's ``sqrtm`` to 1e-13
  relative (tests/test_fid.py) and takes seconds instead of a minute for 2048-d features on a CPU.
- **Modes** need class probabilities from a gankit classifier run; the real class histogram is the
  same classifier's predictions on the reference images, so its own biases cancel.
- **PPL** (perceptual path length, asked for by name) is scored on a StyleGAN2 generator itself,
  not on samples: ``n`` pairs a small step apart in W, LPIPS-VGG16 (:mod:`.metrics.ppl`). Alone,
  it needs no reference set.
- **IS** (asked for by name) needs the full Inception with its classification head
  (:mod:`.metrics.inception_score`) and no reference; **FD∞** (``fdinf``) fits FID against 1/N
  (:mod:`.metrics.fd_infinity`).

This module evaluates a run or a folder (:func:`evaluate_source`) and scores a GAN during training
(:class:`TrainingEvaluator`); the parts live beside it: the samples (:mod:`.samples`), the
reference set (:mod:`.reference`), the feature extractors by name (:mod:`.extractors`), the scoring
of images (:mod:`.scoring`) and the per-class scores (:mod:`.per_class`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.config import Config, DataConfig
from gankit.engine import distributed
from gankit.errors import CheckpointError, ConfigError
from gankit.evaluation.extractors import ClassifierRun, make_extractor
from gankit.evaluation.metrics import compute_fid, compute_kid, compute_prdc
from gankit.evaluation.metrics.features import FeatureExtractor
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.protocol_inputs import (
    evaluation_record,
    protocol_notes,
    read_checked_stats,
    samples_and_reference,
)
from gankit.evaluation.protocols import Resolved, resolve_protocol
from gankit.evaluation.reference import ReferenceSet, load_reference
from gankit.evaluation.samples import Samples, load_samples, to_uint8
from gankit.evaluation.scoring import (
    FEATURE_METRICS,
    REFERENCE_FREE,
    Evaluation,
    ScoringOptions,
    evaluate_images,
)
from gankit.evaluation.stats_files import StatsFile

METRIC_CHOICES = ("fid", "kid", "prdc", "modes", "memorisation", "copying", "ppl", "is", "fdinf")
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
    reference: ReferenceSet | StatsFile | None
    """None with ``--metrics ppl`` or ``is`` alone; a :class:`StatsFile` for ``stats:FILE``."""
    result: Evaluation
    extractor: FeatureExtractor | None
    classifier: ClassifierRun | None
    checkpoint: Path | None
    like: DataConfig
    root: str | None
    protocol: dict[str, Any] | None = None
    """What makes the scores comparable (:func:`~gankit.evaluation.protocols.protocol_record`)."""


def evaluate_source(
    path: str | Path,
    ref: str | None,
    *,
    n: int | None = None,
    metrics: str | Sequence[str] | None = None,
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
    protocol: str = "custom",
    resizer: str | None = None,
) -> EvaluationRun:
    """Evaluate a GAN run's samples (or a folder of images) against ``ref`` (a data source or
    ``stats:FILE.npz``); a translation run on its source domain's test images translated in
    ``direction``. Behind ``gankit evaluate`` and :func:`gankit.evaluate`. A named ``protocol``
    fixes ``n``, ``ref_n``, ``resizer`` and the default ``metrics`` (the module docstring).
    Metrics named explicitly must be computable; ``ppl`` and ``is`` need no ``ref``."""
    resolved = resolve_protocol(protocol, n=n, ref_n=ref_n, resizer=resizer)
    names, explicit = _metric_names(metrics, resolved)
    path = Path(path)
    scored = _check_arguments(path, ref, ref_n, names, resolved, features, ema)
    stats = read_checked_stats(ref, scored, resolved)
    ckpt = _checkpoint_file(path, checkpoint)
    # Feature networks first: a missing Inception should fail before minutes of sampling.
    extractor = _source_extractor(names, features, inception, device, backend, resolved.resizer)
    head = extractor.head_weight() if "is" in names else None  # type: ignore[union-attr]
    classifier = classifier or _stacked_digit_classifier(path, names, explicit)
    judge = ClassifierRun(classifier, device) if classifier else None
    count = resolved.n if isinstance(resolved.n, int) else 0
    ppl = _path_length(path, count, vgg, lpips, ema, seed, device, ckpt) if "ppl" in names else None
    if ppl and not scored:  # PPL alone: no samples, no reference
        record, result = ppl[0], Evaluation({"ppl": ppl[1]()})
        return EvaluationRun(record, None, result, None, judge, ckpt, record.data, root)
    load = functools.partial(
        load_samples, ema=ema, seed=seed, device=device, checkpoint=ckpt, fit=fit, direction=direction
    )  # fmt: skip
    samples, reference, like, root, count = samples_and_reference(
        path, ref, resolved, load, fit, root, stats, bool(set(scored) - REFERENCE_FREE)
    )
    _check_modes(names, classifier, explicit)  # after the data: their errors come first
    options = ScoringOptions(resolved.ddof, resolved.name, head, seed)
    result = evaluate_images(
        samples.images, reference, scored, extractor, classifier=judge, options=options
    )
    result.notes += protocol_notes(path, samples, reference, resolved, count, stats)
    if ppl:
        result.metrics["ppl"] = ppl[1]()
    record = evaluation_record(resolved, samples, reference, extractor, like)
    return EvaluationRun(samples, reference, result, extractor, judge, ckpt, like, root, record)


def _stacked_digit_classifier(path: Path, names: list[str], explicit: bool) -> Path | None:
    """``--metrics modes`` on a Stacked MNIST run without ``--classifier``: gankit's own digit
    classifier, trained once and cached (:mod:`gankit.evaluation.digit_classifier`)."""
    config = path / "config.yaml"
    if "modes" not in names or not explicit or not config.is_file():
        return None
    from gankit.evaluation.digit_classifier import cached_digit_classifier
    from gankit.registries import load_config

    if not load_config(config).data.source.startswith("stacked-mnist"):
        return None
    return cached_digit_classifier(say=lambda message: print(message, flush=True))


def _check_modes(names: list[str], classifier: str | Path | None, explicit: bool) -> None:
    if "modes" in names and classifier is None and explicit:
        # Asked for by name, it must not silently come back empty (by default it is skipped).
        raise ConfigError(
            "--metrics modes needs --classifier RUN (a gankit classifier run) to count classes"
        )


def _metric_names(
    metrics: str | Sequence[str] | None, resolved: Resolved
) -> tuple[list[str], bool]:
    """The metrics to compute and whether they were named explicitly: the default set (None, or
    the command line's default string) is a named protocol's own."""
    default = metrics is None or metrics in (DEFAULT_METRICS, ",".join(DEFAULT_METRICS))
    if default:
        metrics = resolved.protocol.metrics or DEFAULT_METRICS
    return parse_metrics(metrics), not default  # type: ignore[arg-type]


def _check_arguments(
    path: Path,
    ref: str | None,
    ref_n: int | None,
    names: list[str],
    resolved: Resolved,
    features: str,
    ema: bool | None,
) -> list[str]:
    """The metrics scored on samples (all but ``ppl``), after one-line errors for a missing path,
    a bad ``--ref-n``, sample metrics without ``--ref`` and what a named protocol rules out."""
    scored = [m for m in names if m != "ppl"]
    if not path.exists():
        raise CheckpointError(
            f"{path} does not exist: give a GAN run directory or a folder of images"
        )
    if ref_n is not None and ref_n < 1:
        raise ConfigError(f"--ref-n {ref_n} must be positive")
    needing = [m for m in scored if m not in REFERENCE_FREE]
    if needing and not ref:
        raise ConfigError(
            f"--metrics {','.join(needing)} needs --ref DATA (the real images, e.g. builtin:mnist)"
        )
    name = resolved.name
    if resolved.protocol.named:
        if features != "inception":
            raise ConfigError(
                f"--protocol {name} is defined on the FID Inception: --features {features} "
                "needs --protocol custom"
            )
        held = [m for m in scored if m in ("memorisation", "copying")]
        if held:
            raise ConfigError(
                f"--metrics {','.join(held)} needs held-out real images, and --protocol {name} "
                "uses the training images it names as the reference: use --protocol custom"
            )
        if resolved.protocol.ema and ema is False:
            raise ConfigError(
                f"--protocol {name} samples the EMA generator: drop --no-ema, or use --protocol custom"
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
    names: list[str],
    features: str,
    inception: str | None,
    device: str,
    backend: str,
    resizer: str,
) -> FeatureExtractor | None:
    """The feature extractor the metrics ``names`` need, or None when none needs features."""
    if not FEATURE_METRICS & set(names):
        return None
    extractor = make_extractor(
        features,
        inception=inception,
        device=device,
        backend=backend,
        resizer=resizer,
        head="is" in names,
    )
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
            e.features,
            inception=e.inception,
            device=str(device),
            progress=progress,
            resizer=e.resizer,
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
