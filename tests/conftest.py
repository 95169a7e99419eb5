"""Shared fixtures: tiny image folders and fast configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def write_random_images(
    folder: Path, n: int = 8, size: int = 20, mode: str = "RGB", seed: int = 0
) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        p = folder / f"img{i:03d}.png"
        img.save(p)
        paths.append(p)
    return paths


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    write_random_images(tmp_path / "imgs")
    return tmp_path / "imgs"


TINY = [
    "nets.G.arch=dcgan",
    "nets.D.arch=dcgan",
    "gan.noise=normal",
    "nets.G.init=normal02",
    "nets.D.init=normal02",
    "data.image_size=16",
    "nets.G.ngf=4",
    "nets.D.ndf=4",
    "nets.G.nz=8",
    "train.batch_size=4",
    "train.n_preview=4",
    "train.progress=false",
    "data.limit=64",
    "train.device=cpu",
]
"""Overrides that make dcgan-mnist a sub-second job: a tiny 16x16 DCGAN (Radford et al. nets)."""


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny nets run fastest on one thread, and two test workers must not oversubscribe 2 cores."""
    import torch

    torch.set_num_threads(1)
