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
from gankit.evaluation.metrics.features import FeatureExtractor, check_images
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.reference import ReferenceSet

FEATURE_METRICS = {"fid", "kid", "prdc", "memorisation", "copying"}


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
    feats = _feature_sets(fake, reference, metrics, extractor, cache)
    for name in metrics:
        _score(name, out, feats, fake, reference, classifier)
    return out


def _feature_sets(
    fake: Tensor,
    reference: ReferenceSet,
    metrics: Sequence[str],
    extractor: FeatureExtractor | None,
    cache: str | Path | None,
) -> dict[str, Tensor]:
    """The features the metrics need: ``ref``, ``fake`` and, for memorisation, ``heldout``."""
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
    return feats


def _score(
    name: str,
    out: Evaluation,
    feats: dict[str, Tensor],
    fake: Tensor,
    reference: ReferenceSet,
    classifier: ClassifierRun | None,
) -> None:
    """Add metric ``name`` to ``out`` (or a note on why it was skipped)."""
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
            return
        if fake.shape[1] == 3 and classifier.cfg.data.channels == 1:  # Stacked MNIST
            channels = [classifier.probabilities(fake[:, c : c + 1]) for c in range(3)]
            out.metrics["modes"] = stacked_mode_coverage(channels)
            return
        out.metrics["modes"] = compute_mode_coverage(
            classifier.probabilities(fake), classifier.probabilities(reference.images)
        )
