"""Scoring uint8 samples against a reference set: features once, then every asked-for metric.

The features of all sides come from one extractor; the reference's and the held-out part's are
read from the reference-feature cache when they were computed before
(:mod:`gankit.evaluation.metrics.reference_cache`). The protocol is in
:mod:`gankit.evaluation.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import ConfigError, DataError
from gankit.evaluation.extractors import ClassifierRun
from gankit.evaluation.metrics import (
    compute_fid,
    compute_kid,
    compute_memorisation,
    compute_mode_coverage,
    compute_prdc,
    copying_statistic,
    stacked_mode_coverage,
)
from gankit.evaluation.metrics.fd_infinity import fd_infinity
from gankit.evaluation.metrics.features import FeatureExtractor, check_images
from gankit.evaluation.metrics.fid import DDOF
from gankit.evaluation.metrics.inception_score import compute_is
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.reference import ReferenceSet
from gankit.evaluation.stats_files import StatsFile

FEATURE_METRICS = {"fid", "kid", "prdc", "memorisation", "copying", "is", "fdinf"}
REFERENCE_FREE = {"is", "ppl"}
"""Metrics of the samples alone: no ``--ref`` needed."""
STATS_METRICS = {"fid", "fdinf", "is"}
"""What a statistics file (``--ref stats:``) supports without its ``feats``; with them, also
``kid`` and ``prdc``."""


@dataclass
class Evaluation:
    """Scores of one set of samples: ``metrics`` maps a metric name to its JSON-ready results."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    closest_pairs: list[dict[str, float]] = field(default_factory=list)
    """Memorisation: ``{"sample", "reference", "distance"}``, closest first."""


@dataclass
class ScoringOptions:
    """How the protocol scores: covariance convention, cache namespace, IS head, FD∞ seed."""

    ddof: int = DDOF
    protocol: str = "custom"
    """Keys the reference-feature cache: features made under another protocol are not read."""
    head_weight: Tensor | None = None
    """The Inception's (1008, 2048) head, for ``is``."""
    seed: int = 0
    """FD∞'s subsets."""


def evaluate_images(
    fake: Tensor,
    reference: ReferenceSet | StatsFile | None,
    metrics: Sequence[str],
    extractor: FeatureExtractor | None,
    *,
    classifier: ClassifierRun | None = None,
    cache: str | Path | None = None,
    options: ScoringOptions | None = None,
) -> Evaluation:
    """Compute ``metrics`` of uint8 samples ``fake`` against ``reference`` (a reference set, a
    statistics file, or None for metrics of the samples alone)."""
    check_images(fake)
    options = options or ScoringOptions()
    out = Evaluation()
    feats, stats = _feature_sets(fake, reference, metrics, extractor, cache, options.protocol)
    for name in metrics:
        _score(name, out, feats, stats, fake, reference, classifier, options)
    return out


def _feature_sets(
    fake: Tensor,
    reference: ReferenceSet | StatsFile | None,
    metrics: Sequence[str],
    extractor: FeatureExtractor | None,
    cache: str | Path | None,
    protocol: str,
) -> tuple[dict[str, Tensor], tuple | None]:
    """The features the metrics need (``ref``, ``fake`` and, for memorisation, ``heldout``) and,
    from a statistics file, the reference's ``(mu, sigma)``."""
    feats: dict[str, Tensor] = {}
    stats = None
    if FEATURE_METRICS & set(metrics):
        if extractor is None:
            raise ConfigError("these metrics need a feature extractor: use --features")
        if isinstance(reference, StatsFile):
            stats = (reference.mu, reference.sigma)
            if reference.feats is not None:
                feats["ref"] = torch.from_numpy(reference.feats)
        elif reference is not None and set(metrics) - REFERENCE_FREE:
            feats["ref"] = reference_features(
                extractor,
                reference.feature_key("ref"),
                len(reference.images),
                lambda: reference.images,
                cache=cache,
                protocol=protocol,
            )
        feats["fake"] = extractor(fake)
    if {"memorisation", "copying"} & set(metrics):
        assert isinstance(reference, ReferenceSet)  # checked by evaluate_source
        feats["heldout"] = reference_features(
            extractor,  # type: ignore[arg-type]
            reference.feature_key("heldout"),
            len(reference.heldout),
            lambda: reference.heldout,
            cache=cache,
            protocol=protocol,
        )
    return feats, stats


def _score(
    name: str,
    out: Evaluation,
    feats: dict[str, Tensor],
    stats: tuple | None,
    fake: Tensor,
    reference: ReferenceSet | StatsFile | None,
    classifier: ClassifierRun | None,
    options: ScoringOptions,
) -> None:
    """Add metric ``name`` to ``out`` (or a note on why it was skipped)."""
    real = stats if stats is not None else feats.get("ref")
    if name == "fid":
        out.metrics["fid"] = compute_fid(real, feats["fake"], method="eigh", ddof=options.ddof)
    elif name == "fdinf":
        out.metrics["fdinf"] = fd_infinity(
            real, feats["fake"], ddof=options.ddof, seed=options.seed
        )
    elif name == "is":
        if options.head_weight is None:
            raise ConfigError("--metrics is needs the full Inception's head (--features inception)")
        out.metrics["is"] = compute_is(feats["fake"], options.head_weight)
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
            return
        if fake.shape[1] == 3 and classifier.cfg.data.channels == 1:  # Stacked MNIST
            channels = [classifier.probabilities(fake[:, c : c + 1]) for c in range(3)]
            out.metrics["modes"] = stacked_mode_coverage(channels)
            return
        assert isinstance(reference, ReferenceSet)  # checked by evaluate_source
        out.metrics["modes"] = compute_mode_coverage(
            classifier.probabilities(fake), classifier.probabilities(reference.images)
        )
