"""The reference set: real images at the samples' geometry, split into reference and held-out parts.

The M images of the reference source are put in one fixed random order; the last
``h = min(n, M // 5)`` are held out and the first ``min(ref_n, M - h)`` are the reference, so the two
parts never overlap (the protocol is in :mod:`gankit.evaluation.evaluate`). Protocols whose
reference is every training image (``fid50k_full``, ``clean-fid``, ``studiogan``) hold nothing
out. A hash of both parts' bytes keys their cached features.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from gankit.config import DataConfig
from gankit.data.sources import load_source
from gankit.errors import ConfigError, DataError

HELDOUT_DIVISOR = 5
"""At most 1/5 of the reference source is held out (see the module docstring)."""


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
    sha256: str = ""
    """SHA-256 of the reference images' bytes (uint8, in their order): the recorded checksum."""

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
    source: str,
    like: DataConfig,
    n: int | None,
    *,
    root: str | None = None,
    progress: bool = True,
    holdout: bool = True,
) -> ReferenceSet:
    """The reference and held-out images of ``source`` at ``like``'s size, channels and fit.

    ``n`` None takes every image; ``holdout=False`` keeps none back (the held-out part is empty).
    """
    if n is not None and n < 1:
        raise ConfigError(f"reference size {n} must be positive")
    if source not in (
        "builtin:mnist",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "stacked-mnist",
    ) and not (
        source.startswith(("folder:", "lmdb:", "stacked-mnist:")) and source.split(":", 1)[1]
    ):
        raise ConfigError(
            f"reference {source!r} is unknown: use builtin:mnist, mnist, fashion-mnist, cifar10 "
            "(with a root), stacked-mnist[:N], folder:PATH or lmdb:PATH"
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
    n = m if n is None else n
    h = min(n, m // HELDOUT_DIVISOR) if holdout else 0
    images = _take(data, order[: min(n, m - h)], progress)
    heldout = _take(data, order[m - h :], progress) if h else images[:0].clone()
    geometry = f"{like.image_size}px-{like.channels}ch-{like.fit}"
    sha = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()
    key = f"{source}:{geometry}:{sha[:16]}-{_content_hash(heldout)}"
    return ReferenceSet(source, images, heldout, m, key, sha)
