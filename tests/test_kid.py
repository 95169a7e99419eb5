"""KID: the unbiased MMD² estimator, ≈ 0 for equal distributions, clearly > 0 for different ones."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from gankit.errors import DataError
from gankit.evaluation.metrics import METRICS
from gankit.evaluation.metrics.kid import compute_kid, mmd2_unbiased


def sets(seed: int = 0, n: int = 400, d: int = 16, shift: float = 0.5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.normal(size=(n, d)) + shift


def test_mmd2_matches_the_definition_term_by_term() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.3
    d, m = x.shape[1], len(x)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / d + 1) ** 3

    pairs = [(i, j) for i, j in itertools.product(range(m), repeat=2) if i != j]
    expected = (
        sum(k(x[i], x[j]) for i, j in pairs) / (m * (m - 1))
        + sum(k(y[i], y[j]) for i, j in pairs) / (m * (m - 1))
        - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    )
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)


def test_equal_distributions_near_zero_different_clearly_positive() -> None:
    x, y, z = sets()
    same = compute_kid(x, y, subset_size=200)
    identical = compute_kid(x, x, subset_size=200)
    different = compute_kid(x, z, subset_size=200)
    assert abs(same["kid"]) < 3 * same["kid_std"]
    # The same set against itself is not two independent samples: the estimator is then slightly
    # negative (O(1/m)), but tiny next to a real difference.
    assert abs(identical["kid"]) < 0.05 * different["kid"]
    assert different["kid"] > 10 * different["kid_std"] > 0


def test_seeded_and_subset_size_clipped() -> None:
    x, _, z = sets(n=120)
    a = compute_kid(torch.from_numpy(x), z, num_subsets=10, seed=7)
    assert a == compute_kid(x, z, num_subsets=10, seed=7)
    # Other subsets differ with the seed (full-size subsets do not: they are the whole sets).
    part = compute_kid(x, z, num_subsets=10, subset_size=50, seed=7)
    assert part != compute_kid(x, z, num_subsets=10, subset_size=50, seed=8)
    # subset_size 1000 > n: every subset is the full set, so all subsets agree.
    assert a["kid_std"] < 1e-12
    assert METRICS["kid"] is compute_kid


def test_dimension_mismatch() -> None:
    x, y, _ = sets()
    with pytest.raises(DataError, match="dimensions"):
        compute_kid(x, y[:, :8])


def test_joint_kernel_gives_the_per_subset_values(monkeypatch) -> None:
    from gankit.evaluation.metrics import kid

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 16)), rng.normal(0.2, 1.0, size=(250, 16))
    joint = compute_kid(real, fake, num_subsets=20, subset_size=100)
    monkeypatch.setattr(kid, "JOINT_KERNEL_MAX", 0)  # force one kernel per subset
    per_subset = compute_kid(real, fake, num_subsets=20, subset_size=100)
    assert joint["kid"] == pytest.approx(per_subset["kid"], rel=1e-9, abs=1e-12)
    assert joint["kid_std"] == pytest.approx(per_subset["kid_std"], rel=1e-9, abs=1e-12)
