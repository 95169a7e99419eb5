"""Memorisation: copies of training images are flagged, novel real images are not; C_T's sign."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics import METRICS
from gankit.evaluation.metrics.memorisation import compute_memorisation, copying_statistic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
MNIST_RAW = SHARED / "mnist" / "MNIST" / "raw"


def mixture(n: int, g: torch.Generator, d: int = 32) -> torch.Tensor:
    """A mixture of 10 Gaussians in d dimensions, standing in for image features."""
    centres = torch.randn(10, d, generator=torch.Generator().manual_seed(99)) * 4
    return centres[torch.randint(0, 10, (n,), generator=g)] + torch.randn(n, d, generator=g)


def check_copies_and_novel(
    train: torch.Tensor, heldout: torch.Tensor, novel: torch.Tensor, noise: float
) -> None:
    g = torch.Generator().manual_seed(1)
    picks = torch.randperm(len(train), generator=g)[: len(novel)]
    copies = train[picks] + noise * torch.randn(
        len(picks), train.shape[1], generator=g, dtype=train.dtype
    )

    copied = compute_memorisation(copies, train, heldout, top_k=8)
    assert copied.fraction_flagged >= 0.95
    assert (copied.gen_nearest == picks.numpy()).mean() >= 0.95
    first, train_index = copied.closest_pairs[0]
    assert train_index == picks[first] and copied.closest_pairs.shape == (8, 2)
    assert np.all(np.diff(copied.gen_distances[copied.closest_pairs[:, 0]]) >= 0)

    fresh = compute_memorisation(novel, train, heldout)
    assert fresh.fraction_flagged < 0.05
    assert fresh.threshold == copied.threshold  # derived from the held-out set only
    summary = fresh.summary()
    assert summary["memorised_fraction"] == fresh.fraction_flagged
    assert summary["gen_nn_median"] > summary["copy_threshold"]

    assert copying_statistic(copies, train, heldout, num_cells=8)["c_t"] < -3
    assert abs(copying_statistic(novel, train, heldout, num_cells=8)["c_t"]) < 3


def test_gaussian_mixture_features() -> None:
    g = torch.Generator().manual_seed(0)
    train, heldout, novel = mixture(3000, g), mixture(1000, g), mixture(1000, g)
    check_copies_and_novel(train.double(), heldout.double(), novel.double(), noise=0.01)


def read_idx_images(path: Path) -> torch.Tensor:
    raw = gzip.decompress(path.read_bytes())
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784).copy())


@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason=f"MNIST not found at {MNIST_RAW}")
def test_mnist_pixels() -> None:
    """Pixels in [0, 1]; copies get Gaussian noise of 0.01 (2.5 grey levels, distance ≈ 0.2,
    against a held-out median nearest-training distance of about 5)."""
    train = read_idx_images(MNIST_RAW / "train-images-idx3-ubyte.gz")[:5000].double() / 255
    test = read_idx_images(MNIST_RAW / "t10k-images-idx3-ubyte.gz").double() / 255
    check_copies_and_novel(train, test[:1000], test[1000:2000], noise=0.01)


def test_registry_and_validation() -> None:
    g = torch.Generator().manual_seed(0)
    train, heldout, gen = mixture(200, g), mixture(100, g), mixture(100, g)
    summary = METRICS["memorisation"](gen, train, heldout)
    assert set(summary) == {
        "memorised_fraction",
        "copy_threshold",
        "gen_nn_median",
        "ref_nn_median",
    }
    copying = METRICS["copying"](gen, train, heldout, num_cells=2)
    json.dumps(copying, allow_nan=False)  # goes to metrics.jsonl as is
    assert copying["cells_used"] == sum(z is not None for z in copying["cell_z"])
    with pytest.raises(DataError, match="dimensions differ"):
        compute_memorisation(gen[:, :5], train, heldout)
    with pytest.raises(ConfigError, match="alpha"):
        compute_memorisation(gen, train, heldout, alpha=0.0)
    with pytest.raises(DataError, match="fewer"):
        copying_statistic(gen[:10], train, heldout, num_cells=4)
