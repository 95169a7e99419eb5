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


def write_domains(root: Path, n: int = 8, size: int = 24) -> Path:
    """The reference's unpaired layout: ``root/trainA``, ``trainB``, ``testA``, ``testB``, of
    smooth random images (3×3 colour grids upsampled), which tiny nets learn in a few steps."""
    rng = np.random.default_rng(0)
    for name in ("trainA", "trainB", "testA", "testB"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            small = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8))
            small.resize((size, size), Image.Resampling.BICUBIC).save(
                root / name / f"img{i:03d}.png"
            )
    return root


TINY_CYCLEGAN = [
    "data.image_size=24",
    "nets.G_A.arch=resnet_6blocks",
    "nets.G_B.arch=resnet_6blocks",
    "nets.G_A.ngf=4",
    "nets.G_B.ngf=4",
    "nets.D_A.ndf=4",
    "nets.D_B.ndf=4",
    "train.batch_size=2",
    "train.n_preview=3",
    "train.progress=false",
    "train.device=cpu",
    "train.steps=4",
    "cyclegan.pool_size=3",
]
"""Overrides that make the cyclegan-mnistm recipe a sub-second job on 24×24 images."""


def metrics_rows(run: Path) -> list[dict]:
    """Every row of ``run/metrics.jsonl``, each line parsed strictly (a torn line fails the test)."""
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def cut_back(run: Path, step: int, dest: Path) -> Path:
    """A copy of ``run`` as if it had stopped at ``step``: later checkpoints removed."""
    import shutil

    shutil.copytree(run, dest)
    for ck in (dest / "checkpoints").glob("step-*.pt"):
        if int(ck.stem.split("-")[1]) > step:
            ck.unlink()
    return dest


TINY_SSGAN = [
    "data.source=builtin:mnist",
    "data.labels_per_class=2",
    "nets.D.hidden=[16]",
    "nets.G.hidden=[8]",
    "nets.G.nz=4",
    "train.batch_size=20",
    "train.n_preview=4",
    "train.progress=false",
    "train.device=cpu",
    "ssgan.eval_every=0",
    "train.steps=1",
]
"""Overrides that make ssgan-mnist-100 a one-step job on the built-in digits."""
