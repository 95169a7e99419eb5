"""FD∞ (Chong & Forsyth 2020; dgm-eval's compute_FD_infinity) on statistics with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics.fd_infinity import extrapolate, fd_infinity, fd_sizes
from gankit.evaluation.metrics.fid import fid_from_features


def test_sizes_are_dgm_evals() -> None:
    assert fd_sizes(50_000).tolist() == np.linspace(5000, 50_000, 15).astype(int).tolist()
    assert fd_sizes(2000)[0] == 200 and fd_sizes(2000)[-1] == 2000 and len(fd_sizes(2000)) == 15
    assert fd_sizes(10)[0] == 2


def test_an_exact_line_is_extrapolated_exactly() -> None:
    sizes = np.array([100, 200, 400, 1000])
    intercept, slope = extrapolate(sizes, 3.5 + 700.0 / sizes)
    assert intercept == pytest.approx(3.5, abs=1e-9) and slope == pytest.approx(700.0)
    with pytest.raises(DataError, match="two or more"):
        extrapolate([5, 5], [1.0, 2.0])


def test_gaussians_with_a_known_distance() -> None:
    # Real: N(0, I) given exactly; samples: N(0.1, diag(s^2)). FD = |mu|^2 + sum (1 - s)^2.
    d, n = 64, 4000
    s = np.linspace(0.5, 1.5, d)
    mu = np.full(d, 0.1)
    truth = mu @ mu + ((1 - s) ** 2).sum()
    errors_inf, errors_n = [], []
    for seed in range(6):
        fake = np.random.default_rng(seed).standard_normal((n, d)) * s + mu
        out = fd_infinity((np.zeros(d), np.eye(d)), fake, seed=seed)
        errors_inf.append(out["fd_inf"] - truth)
        errors_n.append(out["fid_at_n"] - truth)
        assert out["n"] == n and len(out["sizes"]) == len(out["fids"]) == 15
    # FID at n = 4,000 sits 0.2-0.4 above the truth (its 1/N bias); FD∞ within noise of it.
    assert min(errors_n) > 0.15
    assert abs(np.mean(errors_inf)) < 0.05 and np.max(np.abs(errors_inf)) < 0.15


def test_fid_at_n_is_fid_and_real_features_work() -> None:
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(300, 8)), rng.normal(size=(200, 8)) + 0.3
    out = fd_infinity(real, fake, num_points=5)
    assert out["fid_at_n"] == pytest.approx(fid_from_features(real, fake), rel=1e-9)
    assert out["sizes"][-1] == 200
    with pytest.raises(ConfigError, match="at least 2 points"):
        fd_infinity(real, fake, num_points=1)
    with pytest.raises(DataError, match="sample sizes"):
        fd_infinity(real, fake, sizes=[1, 300])
