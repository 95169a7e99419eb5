"""The samples and the reference that a protocol asks for, its notes and its record.

:func:`gankit.evaluation.evaluate.evaluate_source` calls these: a statistics file read and checked
against the protocol (:func:`read_checked_stats`), the samples and the reference set in the order
the protocol needs them (:func:`samples_and_reference`: StudioGAN's protocol draws as many samples
as there are training images, so its reference comes first), what fell short of the protocol
(:func:`protocol_notes`) and the record every result carries (:func:`evaluation_record`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gankit.config import DataConfig
from gankit.errors import ConfigError
from gankit.evaluation.metrics.features import FeatureExtractor
from gankit.evaluation.metrics.inception import InceptionFeatures
from gankit.evaluation.protocols import ALL, TRAIN, Resolved, protocol_record
from gankit.evaluation.reference import ReferenceSet, load_reference
from gankit.evaluation.samples import Samples
from gankit.evaluation.scoring import STATS_METRICS
from gankit.evaluation.stats_files import StatsFile, check_stats, read_stats

STATS_PREFIX = "stats:"


def samples_and_reference(
    path: Path,
    ref: str | None,
    resolved: Resolved,
    load: Callable,
    fit: str | None,
    root: str | None,
    stats: StatsFile | None,
    needs_reference: bool,
) -> tuple[Samples, ReferenceSet | StatsFile | None, DataConfig, str | None, int]:
    """The samples, the reference (a set, a statistics file or None), the samples' data settings,
    the reference's data root and the number of samples asked for."""
    if resolved.n == TRAIN and stats is None and needs_reference:
        samples, reference, like, root = _as_many_as_training(path, ref, resolved, load, fit, root)  # type: ignore[arg-type]
        return samples, reference, like, root, len(reference.images)
    count = _training_count(stats, resolved) if resolved.n == TRAIN else int(resolved.n)
    samples = load(path, count)
    like = dataclasses.replace(samples.data, fit=fit) if fit else samples.data
    root = root or (samples.data.root if samples.is_run else None)
    reference: ReferenceSet | StatsFile | None = stats
    if stats is None and needs_reference:
        reference = load_protocol_reference(ref, like, resolved, root)  # type: ignore[arg-type]
    return samples, reference, like, root, count


def read_checked_stats(ref: str | None, scored: list[str], resolved: Resolved) -> StatsFile | None:
    """``--ref stats:FILE.npz``, read and checked against the protocol and the metrics (None
    for any other ``ref``)."""
    if not ref or not ref.startswith(STATS_PREFIX):
        return None
    stats = read_stats(ref[len(STATS_PREFIX) :])
    stats.notes = check_stats(
        stats, protocol=resolved.name, resizer=resolved.resizer, ddof=resolved.ddof
    )
    allowed = STATS_METRICS | ({"kid", "prdc"} if stats.feats is not None else set())
    other = [m for m in scored if m not in allowed]
    if other:
        why = "its features (feats)" if set(other) <= {"kid", "prdc"} else "the reference images"
        raise ConfigError(
            f"--metrics {','.join(other)} needs {why}, which {stats.path.name} does not hold: "
            f"with --ref stats: use {','.join(sorted(allowed))}"
        )
    return stats


def _training_count(stats: StatsFile | None, resolved: Resolved) -> int:
    """The number of training images a ``studiogan``-like protocol samples, from a stats file."""
    if stats is None or stats.n is None:
        raise ConfigError(
            f"--protocol {resolved.name} draws as many samples as there are training images, "
            "and the statistics file does not say how many: give --ref the images themselves"
        )
    return stats.n


def _as_many_as_training(
    path: Path, ref: str, resolved: Resolved, load: Callable, fit: str | None, root: str | None
) -> tuple[Samples, ReferenceSet, DataConfig, str | None]:
    """Samples as many as the reference's training images (StudioGAN): the reference first."""
    if (path / "config.yaml").is_file():
        from gankit.registries import load_config

        data = load_config(path / "config.yaml").data
        like = dataclasses.replace(data, fit=fit) if fit else data
        root = root or data.root
        reference = load_protocol_reference(ref, like, resolved, root)
        return load(path, len(reference.images)), reference, like, root
    samples = load(path, 2**31 - 1)  # a folder: all of it, cut to the reference's size below
    like = dataclasses.replace(samples.data, fit=fit) if fit else samples.data
    reference = load_protocol_reference(ref, like, resolved, root)
    samples.images = samples.images[: len(reference.images)]
    return samples, reference, like, root


def load_protocol_reference(
    ref: str, like: DataConfig, resolved: Resolved, root: str | None
) -> ReferenceSet:
    ref_n = None if resolved.ref_n == ALL else resolved.ref_n
    return load_reference(ref, like, ref_n, root=root, holdout=not resolved.protocol.named)  # type: ignore[arg-type]


def protocol_notes(
    path: Path,
    samples: Samples,
    reference: ReferenceSet | StatsFile | None,
    resolved: Resolved,
    count: int,
    stats: StatsFile | None,
) -> list[str]:
    """Where the evaluation falls short of what it asked for: fewer images, unchecked files."""
    notes = []
    named = resolved.protocol.named
    if len(samples.images) < count:
        short = f"{path} has only {len(samples.images)} images (asked for --n {count})"
        notes.append(short + (f": not a {resolved.name} number" if named else ""))
    partial = isinstance(reference, ReferenceSet) and isinstance(resolved.ref_n, int)
    if named and partial and len(reference.images) < resolved.ref_n:  # type: ignore[union-attr,operator]
        notes.append(
            f"the reference has only {len(reference.images)} images ({resolved.name} uses "
            f"{resolved.ref_n}): not a {resolved.name} number"
        )
    if named and samples.is_run and resolved.protocol.ema and not samples.ema:
        notes.append(f"{path} has no EMA generator; {resolved.name} samples G_ema")
    if stats is not None:
        notes += stats.notes
    if resolved.protocol.caveat:
        notes.append(f"{resolved.name}: {resolved.protocol.caveat}")
    return notes


def evaluation_record(
    resolved: Resolved,
    samples: Samples,
    reference: ReferenceSet | StatsFile | None,
    extractor: FeatureExtractor | None,
    like: DataConfig,
) -> dict[str, Any]:
    """The protocol record of this evaluation (:func:`~gankit.evaluation.protocols.protocol_record`)."""
    if isinstance(reference, StatsFile):
        ref_name, ref_n, ref_sha = reference.source, reference.n, reference.checksum
    elif reference is not None:
        ref_name, ref_n, ref_sha = reference.source, len(reference.images), reference.sha256
    else:
        ref_name = ref_n = ref_sha = None
    return protocol_record(
        resolved,
        n=len(samples.images),
        ref_n=ref_n,
        reference=ref_name,
        reference_sha256=ref_sha,
        features=extractor.feature_id if extractor else None,
        network_sha256=extractor.network_sha256
        if isinstance(extractor, InceptionFeatures)
        else None,
        image_size=like.image_size,
    )
