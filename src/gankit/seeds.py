"""Seed offsets: every random generator a run makes is seeded ``cfg.seed + offset``, one offset per
use, so that no two uses draw the same numbers."""

from __future__ import annotations

import torch

PREVIEW = 1
"""The fixed noise of the preview grids (and of ``gankit sample`` without a seed)."""
AUGMENT = 2
"""The classifier's data augmentation."""
VBN_REFERENCE = 3
"""Virtual batch norm's reference batch."""
EVALUATION = 4
"""The generated samples of evaluations during training (``eval.every``)."""
STREAM = 1000
"""Stride between the data streams of one run: stream i is seeded ``seed + STREAM * i``."""


def generator(seed: int, offset: int) -> torch.Generator:
    """A CPU generator seeded ``seed + offset``."""
    return torch.Generator().manual_seed(seed + offset)
