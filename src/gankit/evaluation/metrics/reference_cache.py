"""The reference-feature cache: a reference set's features computed once, then read from disk.

Files are ``.npy`` arrays in ``cache_dir() / "features"`` (or a given folder), named by a hash of
the extractor's ``feature_id`` (for the Inception: its resizer and the network file's checksum),
the reference set's id, its size and the evaluation protocol, each with a ``.json`` beside it
saying what it holds. Under torchrun rank 0 alone reads and writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gankit.engine import distributed
from gankit.errors import DataError
from gankit.evaluation.metrics.features import FeatureExtractor, cache_dir


def reference_features(
    extractor: FeatureExtractor,
    dataset_id: str,
    n: int,
    load: Callable[[], Tensor],
    *,
    cache: str | os.PathLike | None = None,
    protocol: str = "custom",
) -> Tensor:
    """Features of a reference set, computed once and then read back from a ``.npy`` file.

    The file name is a hash of (``extractor.feature_id`` -- the network file's checksum and the
    resizer --, ``dataset_id``, ``n``, ``protocol``), so features made under one resizer or
    protocol are never read under another; ``load`` is only
    called on a miss and must return exactly ``n`` uint8 images. ``dataset_id`` must change when the
    images do (e.g. ``"mnist-train"`` with the split and order fixed). Files live in ``cache``
    (default ``cache_dir() / "features"``), written to a temporary name and renamed, with a
    ``.json`` beside each saying what it holds.
    """
    key_fields = {
        "feature_id": extractor.feature_id,
        "dataset_id": dataset_id,
        "n": int(n),
        "protocol": protocol,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:20]
    folder = Path(cache).expanduser() if cache is not None else cache_dir() / "features"
    path = folder / f"{key}.npy"
    split = extractor.split and distributed.active()
    # Under torchrun every rank must take the same branch: rank 0 reads the cache for all.
    cached = (
        distributed.from_main(lambda: _read_cached(path, n)) if split else _read_cached(path, n)
    )
    if cached is not None:
        return torch.from_numpy(cached)
    images = load()
    if len(images) != n:
        raise DataError(f"reference set {dataset_id!r} has {len(images)} images, expected n={n}")
    feats = extractor(images).numpy()
    if split and not distributed.world().is_main:
        return torch.from_numpy(feats)  # one writer
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, write in (
        (".json", lambda f: f.write(json.dumps(key_fields, indent=1).encode())),
        (".npy", lambda f: np.save(f, feats)),
    ):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path.with_suffix(suffix))
        finally:
            Path(tmp).unlink(missing_ok=True)
    return torch.from_numpy(feats)


def _read_cached(path: Path, n: int) -> np.ndarray | None:
    """The cached features at ``path`` if they hold ``n`` rows, else None (warning if broken)."""
    if not path.is_file():
        return None
    try:
        feats = np.load(path)
        if feats.ndim == 2 and len(feats) == n:
            return feats
    except (ValueError, OSError):
        pass  # unreadable: recompute, overwriting it
    warnings.warn(f"ignoring unreadable cached features {path}; recomputing", stacklevel=3)
    return None
