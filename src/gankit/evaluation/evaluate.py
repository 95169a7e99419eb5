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
  antialiasing; see :func:`~gankit.evaluation.metrics.features.inception_preprocess`) or a gankit classifier
  run's penultimate layer, after bringing the images to the classifier's size and channels with the
  data pipeline's :func:`~gankit.data.sources.fit_tensor`. Reference features are cached on disk,
  keyed by the extractor and a hash of the reference images' bytes
  (:func:`~gankit.evaluation.metrics.features.reference_features`).
- **FID** uses the ``eigh`` form of the matrix square root: it equals scipy's ``sqrtm`` to 1e-13
  relative (tests/test_fid.py) and takes seconds instead of a minute for 2048-d features on a CPU.
- **Modes** need class probabilities from a gankit classifier run; the real class histogram is the
  same classifier's predictions on the reference images, so its own biases cancel.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from gankit.config import Config, DataConfig
from gankit.data.images import scan_images
from gankit.data.sources import fit_tensor, load_source
from gankit.engine import distributed
from gankit.errors import CheckpointError, ConfigError, DataError
from gankit.evaluation.metrics import (
    compute_fid,
    compute_kid,
    compute_memorisation,
    compute_mode_coverage,
    compute_prdc,
    copying_statistic,
)
from gankit.evaluation.metrics.features import (
    FeatureExtractor,
    InceptionFeatures,
    ModuleFeatures,
    check_images,
    find_inception,
    reference_features,
)

METRIC_CHOICES = ("fid", "kid", "prdc", "modes", "memorisation", "copying")
DEFAULT_METRICS = ("fid", "kid", "prdc", "modes", "memorisation")
FEATURE_METRICS = {"fid", "kid", "prdc", "memorisation", "copying"}
TRAINING_METRICS: dict[str, tuple[str, bool]] = {
    "fid": ("fid", False),
    "kid": ("kid", False),
    "precision": ("prdc", True),
    "recall": ("prdc", True),
    "density": ("prdc", True),
    "coverage": ("prdc", True),
}
"""``eval.metric`` -> (metric family computed, higher is better)."""
HELDOUT_DIVISOR = 5
"""At most 1/5 of the reference source is held out (see the module docstring)."""


def to_uint8(images: Tensor) -> Tensor:
    """Generator output in [-1, 1] -> uint8, rounding to the nearest grey level."""
    return (images.detach().float().cpu().clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8)


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


# --- feature extractors and classifiers ------------------------------------------------------


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
) -> FeatureExtractor:
    """``inception`` (found or downloaded now, so a missing file fails before any work) or
    ``classifier:RUN``. ``backend`` runs the Inception under ONNX Runtime or torch (``auto``:
    ONNX Runtime on a CPU when installed)."""
    if spec == "inception":
        path = find_inception(inception)
        return InceptionFeatures(path, device=device, progress=progress, backend=backend)
    if spec.startswith("classifier:") and spec.split(":", 1)[1]:
        return ClassifierRun(spec.split(":", 1)[1], device).features(progress)
    raise ConfigError(f"features {spec!r} is unknown: use inception or classifier:RUN")


# --- samples and reference sets --------------------------------------------------------------


@dataclass
class Samples:
    """Images to evaluate and where they came from."""

    images: Tensor
    """uint8 (N, C, S, S)."""
    origin: str
    step: int | None
    data: DataConfig
    """Size, channels, fit (and, for a run, the training source and root) of the images."""
    is_run: bool
    ema: bool = False
    """Whether the samples came from the EMA generator."""


def generate_samples(
    run: str | Path,
    n: int,
    *,
    ema: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
) -> Samples:
    """``n`` uint8 samples from a GAN run's newest (or the given) checkpoint.

    ``ema``: None samples the EMA generator when the run has one (as its previews do).
    """
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative
    from gankit.inference.sampling import generate, resolve_ema

    run = Path(run)
    if not run.is_dir():
        raise CheckpointError(
            f"{run} does not exist: give a GAN run directory or a folder of images"
        )
    loaded = load_role(run, Generative, device=device, checkpoint=checkpoint)
    ema = resolve_ema(ema, loaded.model, run)
    images = to_uint8(generate(loaded.model, n, seed=seed, ema=ema))
    return Samples(images, str(run), loaded.step, loaded.cfg.data, is_run=True, ema=ema)


def translated_samples(
    run: str | Path,
    n: int,
    direction: str | None = None,
    *,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    batch_size: int = 64,
) -> Samples:
    """Up to ``n`` test images of a translation run's source domain, translated, as uint8.

    ``direction`` defaults to AtoB, or to the one direction of a one-sided run.
    """
    from gankit.data.stream import to_unit
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Translator
    from gankit.registries import task_class

    loaded = load_role(run, Translator, device=device, checkpoint=checkpoint)
    model = loaded.model
    direction = direction or ("AtoB" if "AtoB" in model.directions else model.directions[0])
    model.generator(direction)  # a direction the run does not have fails before any work
    inputs = task_class(loaded.cfg.task).test_inputs(loaded.cfg, direction)[:n]
    out = [
        to_uint8(model.translate(to_unit(chunk), direction)) for chunk in inputs.split(batch_size)
    ]
    data = dataclasses.replace(loaded.cfg.data, source=f"{run} ({direction})")
    return Samples(torch.cat(out), str(run), loaded.step, data, is_run=True)


def folder_samples(
    folder: str | Path, n: int, *, fit: str = "resize", progress: bool = True
) -> Samples:
    """Up to ``n`` images of a folder (sorted names), at the first image's size and channels."""
    files = scan_images(
        folder, label="gankit evaluate:", hint="give a GAN run directory or a folder of images"
    )
    try:
        with Image.open(files[0]) as first:
            size, mode = min(first.size), first.mode
    except OSError as e:
        raise DataError(f"{files[0]}: not an image file that PIL can read ({e})") from None
    channels = 1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 3
    dcfg = DataConfig(
        source=f"folder:{folder}",
        image_size=size,
        channels=channels,
        fit=fit,
        limit=n,
        in_memory="yes",
        workers=2 if min(n, len(files)) > 2000 else 0,  # worker start-up outweighs small folders
    )
    data = load_source(dcfg, progress=progress)
    return Samples(data.images, str(folder), None, dcfg, is_run=False)  # type: ignore[arg-type]


def load_samples(
    path: str | Path,
    n: int,
    *,
    ema: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    fit: str | None = None,
    progress: bool = True,
    direction: str | None = None,
) -> Samples:
    """A GAN run directory (it has ``config.yaml``), a translation run (its source domain's test
    images, translated in ``direction``), or a folder of images."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p} does not exist: give a GAN run directory or a folder of images")
    if (p / "config.yaml").is_file():
        from gankit.inference.roles import Translator
        from gankit.registries import load_config, task_class

        if Translator in task_class(load_config(p / "config.yaml").task).roles:
            if ema:
                raise ConfigError(f"--ema: {p} is a translation run; it has no EMA generator")
            return translated_samples(p, n, direction, device=device, checkpoint=checkpoint)
        return generate_samples(p, n, ema=ema, seed=seed, device=device, checkpoint=checkpoint)
    if ema or checkpoint:
        raise ConfigError(f"--ema and --checkpoint need a run directory; {p} has no config.yaml")
    return folder_samples(p, n, fit=fit or "resize", progress=progress)


@dataclass
class ReferenceSet:
    """The reference images and the disjoint held-out images (see the module docstring)."""

    source: str
    images: Tensor
    heldout: Tensor
    size: int
    """Images in the whole source."""
    key: str
    """Source, geometry and a hash of the images' bytes: the feature-cache key."""

    def feature_key(self, part: str) -> str:
        return f"{self.key}:{part}"


def _content_hash(images: Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]


def _take(data: Any, index: np.ndarray, progress: bool) -> Tensor:
    if data.images is not None:
        return data.images[torch.from_numpy(index)].cpu()
    items = tqdm(
        index.tolist(), desc="reading reference", unit="img", disable=not progress, leave=False
    )
    return torch.stack([data.dataset[i] for i in items])


def load_reference(
    source: str, like: DataConfig, n: int, *, root: str | None = None, progress: bool = True
) -> ReferenceSet:
    """The reference and held-out images of ``source`` at ``like``'s size, channels and fit."""
    if n < 1:
        raise ConfigError(f"reference size {n} must be positive")
    if source not in ("builtin:mnist", "mnist", "fashion-mnist", "cifar10") and not (
        source.startswith(("folder:", "lmdb:")) and source.split(":", 1)[1]
    ):
        raise ConfigError(
            f"reference {source!r} is unknown: use builtin:mnist, mnist, fashion-mnist, cifar10 "
            "(with a root), folder:PATH or lmdb:PATH"
        )
    dcfg = DataConfig(
        source=source,
        root=root,
        split="train",
        image_size=like.image_size,
        channels=like.channels,
        fit=like.fit,
        in_memory="auto",
        workers=like.workers,
    )
    data = load_source(dcfg, progress=progress)
    m = len(data)
    if m < 2 * HELDOUT_DIVISOR:
        raise DataError(
            f"reference {source} has {m} images: evaluation needs at least {2 * HELDOUT_DIVISOR}"
        )
    order = np.random.default_rng(0).permutation(m)
    h = min(n, m // HELDOUT_DIVISOR)
    images = _take(data, order[: min(n, m - h)], progress)
    heldout = _take(data, order[m - h :], progress)
    geometry = f"{like.image_size}px-{like.channels}ch-{like.fit}"
    key = f"{source}:{geometry}:{_content_hash(images)}-{_content_hash(heldout)}"
    return ReferenceSet(source, images, heldout, m, key)


# --- computing -------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Scores of one set of samples: ``metrics`` maps a metric name to its JSON-ready results."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    closest_pairs: list[dict[str, float]] = field(default_factory=list)
    """Memorisation: ``{"sample", "reference", "distance"}``, closest first."""


def evaluate_images(
    fake: Tensor,
    reference: ReferenceSet,
    metrics: Sequence[str],
    extractor: FeatureExtractor | None,
    *,
    classifier: ClassifierRun | None = None,
    cache: str | Path | None = None,
) -> Evaluation:
    """Compute ``metrics`` of uint8 samples ``fake`` against ``reference``."""
    check_images(fake)
    out = Evaluation()
    feats: dict[str, Tensor] = {}
    if FEATURE_METRICS & set(metrics):
        if extractor is None:
            raise ConfigError("these metrics need a feature extractor: use --features")
        feats["ref"] = reference_features(
            extractor,
            reference.feature_key("ref"),
            len(reference.images),
            lambda: reference.images,
            cache=cache,
        )
        feats["fake"] = extractor(fake)
    if {"memorisation", "copying"} & set(metrics):
        feats["heldout"] = reference_features(
            extractor,
            reference.feature_key("heldout"),
            len(reference.heldout),  # type: ignore[arg-type]
            lambda: reference.heldout,
            cache=cache,
        )
    for name in metrics:
        if name == "fid":
            out.metrics["fid"] = compute_fid(feats["ref"], feats["fake"], method="eigh")
        elif name == "kid":
            out.metrics["kid"] = compute_kid(feats["ref"], feats["fake"])
        elif name == "prdc":
            out.metrics["prdc"] = compute_prdc(feats["ref"], feats["fake"])
        elif name == "memorisation":
            mem = compute_memorisation(feats["fake"], feats["ref"], feats["heldout"])
            out.metrics["memorisation"] = mem.summary()
            out.closest_pairs = [
                {"sample": int(g), "reference": int(t), "distance": float(mem.gen_distances[g])}
                for g, t in mem.closest_pairs
            ]
        elif name == "copying":
            cells = max(1, min(20, len(feats["heldout"]) // 40))  # ~40 held-out images a cell
            try:
                out.metrics["copying"] = copying_statistic(
                    feats["fake"], feats["ref"], feats["heldout"], num_cells=cells
                )
            except DataError as e:
                out.notes.append(f"copying (C_T) skipped: {e}")
        elif name == "modes":
            if classifier is None:
                out.notes.append("modes skipped: give --classifier RUN (a gankit classifier run)")
                continue
            out.metrics["modes"] = compute_mode_coverage(
                classifier.probabilities(fake), classifier.probabilities(reference.images)
            )
    return out


@dataclass
class EvaluationRun:
    """One evaluation of a run or folder: what was compared and the scores."""

    samples: Samples
    reference: ReferenceSet
    result: Evaluation
    extractor: FeatureExtractor | None
    classifier: ClassifierRun | None
    checkpoint: Path | None
    like: DataConfig
    root: str | None


def evaluate_source(
    path: str | Path,
    ref: str,
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
) -> EvaluationRun:
    """Evaluate a GAN run's samples (or a folder of images) against the reference source ``ref``.

    A translation run is scored on its source domain's test images translated in ``direction``
    (default AtoB, or its one direction): give the target domain's test images as ``ref``.

    The one implementation behind ``gankit evaluate`` and :func:`gankit.evaluate`; see the module
    docstring for the protocol. ``metrics`` named explicitly must all be computable (``modes``
    needs ``classifier``); the default set skips what it cannot compute, with a note.
    """
    from gankit.engine.checkpoint import best_checkpoint

    explicit = metrics != DEFAULT_METRICS and metrics != ",".join(DEFAULT_METRICS)
    names = parse_metrics(metrics)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"{path} does not exist: give a GAN run directory or a folder of images"
        )
    if ref_n is not None and ref_n < 1:
        raise ConfigError(f"--ref-n {ref_n} must be positive")
    ckpt = (
        best_checkpoint(path)
        if checkpoint == "best"
        else (Path(checkpoint) if checkpoint else None)
    )
    if ckpt and not ckpt.is_file():
        raise CheckpointError(f"--checkpoint: {ckpt} does not exist")
    # Feature networks first: a missing Inception should fail before minutes of sampling.
    extractor = None
    if FEATURE_METRICS & set(names):
        extractor = make_extractor(features, inception=inception, device=device, backend=backend)
        # Under torchrun (`torchrun --nproc_per_node=N -m gankit evaluate ...`) every rank
        # extracts 1/N of the features and gathers the rest: the same scores, N times faster.
        extractor.split = distributed.active()
    judge = ClassifierRun(classifier, device) if classifier else None
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
    result = evaluate_images(samples.images, reference, names, extractor, classifier=judge)
    if len(samples.images) < n:
        result.notes.append(f"{path} has only {len(samples.images)} images (asked for --n {n})")
    return EvaluationRun(samples, reference, result, extractor, judge, ckpt, like, root)


def per_class_scores(
    run: str | Path,
    ref: str,
    extractor: FeatureExtractor,
    *,
    n: int = 500,
    ema: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    root: str | None = None,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """FID and KID of every class of a conditional GAN run (``gankit evaluate --per-class``).

    For class k: ``n`` samples drawn with label k against all of the reference's training images
    labelled k (``ref`` must have the run's classes). A class whose FID stands out is one the
    generator draws badly even when the overall score looks fine.
    """
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative, label_classes
    from gankit.inference.sampling import generate, resolve_ema

    loaded = load_role(run, Generative, device=device, checkpoint=checkpoint)
    model, like = loaded.model, loaded.cfg.data
    classes = list(label_classes(model) or [])
    if not classes:
        raise ConfigError(
            f"--per-class needs a class-conditional run (gan.conditional): {run} is unconditional"
        )
    if n < 2:
        raise ConfigError(f"--n {n}: per-class scores need at least 2 samples per class")
    dcfg = DataConfig(
        source=ref,
        root=root or like.root,
        split="train",
        image_size=like.image_size,
        channels=like.channels,
        fit=like.fit,
        in_memory="yes",
    )
    data = load_source(dcfg, progress=progress, with_labels=True)
    if data.labels is None or data.images is None:
        raise DataError(f"--per-class: {ref} has no labels (use a labelled source)")
    if data.classes and list(data.classes) != classes:
        raise DataError(
            f"--per-class: {ref} has classes {', '.join(data.classes)}, the run "
            f"{', '.join(classes)}"
        )
    ema = resolve_ema(ema, model, Path(run))
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(tqdm(classes, desc="per class", disable=not progress, leave=False)):
        real = data.images[data.labels == k]
        if len(real) < 2:
            raise DataError(f"--per-class: {ref} has {len(real)} images of class {name}")
        labels = torch.full((n,), k, dtype=torch.long)
        fake = to_uint8(generate(model, n, seed=seed + k, ema=ema, labels=labels))
        f_real, f_fake = extractor(real), extractor(fake)
        fid = compute_fid(f_real, f_fake, method="eigh")["fid"]
        size = min(len(f_real), len(f_fake), 1000)
        kid = compute_kid(f_real, f_fake, subset_size=size)["kid"]
        out[name] = {"fid": fid, "kid": kid, "samples": n, "reference": len(real)}
    return out


def format_per_class(scores: dict[str, dict[str, float]]) -> str:
    """Per-class scores as aligned rows, the worst FID marked."""
    worst = max(scores, key=lambda c: scores[c]["fid"])
    width = max(len("class"), *(len(c) for c in scores))
    lines = [f"  {'class':<{width}}  {'fid':>9}  {'kid':>9}  reference"]
    for name, row in scores.items():
        mark = "  <- worst" if name == worst and len(scores) > 1 else ""
        lines.append(
            f"  {name:<{width}}  {row['fid']:>9.4g}  {row['kid']:>9.4g}  {row['reference']}{mark}"
        )
    return "\n".join(lines)


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
