"""Precision/recall and density/coverage: a direct reference, sanity values, and the direction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.errors import DataError
from gankit.evaluation.metrics import METRICS
from gankit.evaluation.metrics.prdc import compute_prdc, kth_neighbour_distances, nearest_neighbours


def gaussians(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def reference_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """The definitions written out with full distance matrices (no blocks, no torch)."""

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    rr, ff, rf = dist(real, real), dist(fake, fake), dist(real, fake)
    r_pr, r_dc = np.sort(rr, axis=1)[:, k_pr], np.sort(rr, axis=1)[:, k_dc]
    f_pr = np.sort(ff, axis=1)[:, k_pr]
    return {
        "precision": (rf <= r_pr[:, None]).any(axis=0).mean(),
        "recall": (rf <= f_pr[None, :]).any(axis=1).mean(),
        "density": (rf <= r_dc[:, None]).sum() / (k_dc * len(fake)),
        "coverage": (rf.min(axis=1) <= r_dc).mean(),
    }


def test_matches_the_definitions_and_blocking_does_not_matter() -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(150, 6)), rng.normal(size=(120, 6)) * 1.2 + 0.3
    expected = reference_prdc(real, fake, 3, 5)
    assert compute_prdc(real, fake) == pytest.approx(expected, abs=1e-12)
    # Tiny blocks (a few rows at a time) must give exactly the same answer.
    assert compute_prdc(real, fake, max_elements=500) == pytest.approx(expected, abs=1e-12)
    assert METRICS["prdc"] is compute_prdc


def test_same_gaussian_2000_vs_2000() -> None:
    """Identical N(0, I) in 1000-d at n = 2000 (CI size; the 10k check is the slow test below).

    Density has expectation 1 and coverage 1 - 2^-5 ≈ 0.969 for identical distributions (Naeem et
    al. 2020, Sec. 4); over 14 seeds this implementation gave density 1.00 ± 0.09 and coverage
    0.970 ± 0.008, so the bands are about 3.5 standard deviations. Precision/recall with k = 5 were
    0.558 ± 0.017 at this n (they fall slowly with n, to 0.477 at 10k): the band [0.50, 0.62] is
    also ±3.5 sd, and its real content is "equal to each other and far below 1".
    """
    real, fake = gaussians(2000, 1000, seed=0)
    out = compute_prdc(real, fake, k_pr=5, k_dc=5)
    assert 0.50 < out["precision"] < 0.62 and 0.50 < out["recall"] < 0.62
    assert abs(out["density"] - 1.0) < 0.3
    assert abs(out["coverage"] - 0.969) < 0.025


@pytest.mark.slow
def test_reference_sanity_values_10k() -> None:
    """clovaai/generative-evaluation-prdc's README: 10k vs 10k N(0, I) in 1000-d with k = 5 for all
    four gives 0.4772, 0.4705, 1.0555, 0.9735. Their draw is unseeded, so tolerances are about 3
    seed-to-seed standard deviations at 10k (scaled from the n = 2000 spread); ~30 s on 2 cores.
    Note k = 5 for precision/recall here: with the paper's k = 3 they are about 0.39.
    """
    real, fake = gaussians(10_000, 1000, seed=0)
    out = compute_prdc(real, fake, k_pr=5, k_dc=5)
    assert out["precision"] == pytest.approx(0.4772, abs=0.025)
    assert out["recall"] == pytest.approx(0.4705, abs=0.025)
    assert out["density"] == pytest.approx(1.0555, abs=0.12)
    assert out["coverage"] == pytest.approx(0.9735, abs=0.01)


def test_partial_generator_has_high_precision_low_recall() -> None:
    """A generator producing one of four real clusters: its samples are realistic (precision as
    high as real-vs-real) but it misses 3/4 of the data (recall and coverage ≈ 1/4). A library
    with precision and recall swapped (torch-fidelity issue 58) fails this."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 8, generator=g) * 6
    labels = torch.arange(800) % 4
    real = centres[labels] + torch.randn(800, 8, generator=g)
    real_again = centres[labels] + torch.randn(800, 8, generator=g)
    partial = centres[0] + torch.randn(800, 8, generator=g)

    baseline = compute_prdc(real, real_again)
    out = compute_prdc(real, partial)
    assert out["precision"] > 0.8 and out["precision"] > baseline["precision"] - 0.05
    assert out["recall"] < 0.35 and out["coverage"] < 0.35
    assert baseline["recall"] > 0.8 and baseline["coverage"] > 0.9


def test_neighbour_helpers() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    radii = kth_neighbour_distances(x, (1, 2), max_elements=3)
    assert radii[:, 0].tolist() == [1.0, 1.0, 2.0, 4.0]
    assert radii[:, 1].tolist() == [3.0, 2.0, 3.0, 6.0]
    dist, idx = nearest_neighbours(torch.tensor([[2.9], [-5.0]], dtype=torch.float64), x)
    assert idx.tolist() == [2, 0] and dist.tolist() == pytest.approx([0.1, 5.0])


def test_too_few_samples_and_mismatched_dims() -> None:
    real, fake = gaussians(20, 4, seed=1)
    with pytest.raises(DataError, match="more than 5 samples"):
        compute_prdc(real[:5], fake)
    with pytest.raises(DataError, match="dimensions"):
        compute_prdc(real, fake[:, :3])
