"""Fréchet distance: agreement with pytorch-fid, zero on itself, exact mean-shift term."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics import METRICS
from gankit.evaluation.metrics.fid import (
    compute_fid,
    feature_stats,
    fid_from_features,
    frechet_distance,
)


def two_feature_sets(n: int = 400, d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3
    b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + rng.normal(size=d) * 0.5
    return a, b


def test_matches_pytorch_fid() -> None:
    fid_score = pytest.importorskip(
        "pytorch_fid.fid_score",
        reason="pytorch-fid not installed (pip install pytorch-fid --no-deps)",
    )
    a, b = two_feature_sets()
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytorch-fid passes scipy's old disp=
        theirs = float(fid_score.calculate_frechet_distance(mu1, s1, mu2, s2))
    assert fid_from_features(a, b) == pytest.approx(theirs, rel=1e-6)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(theirs, rel=1e-6)


def test_itself_is_zero() -> None:
    a, _ = two_feature_sets(n=300, d=64)
    assert abs(fid_from_features(a, a)) < 1e-6


def test_itself_is_near_zero_with_singular_covariance() -> None:
    # n < d: sqrtm of a rank-deficient product is only accurate relative to the traces involved.
    a, _ = two_feature_sets(n=40, d=64)
    assert abs(fid_from_features(a, a)) < 1e-7 * 2 * np.trace(np.cov(a, rowvar=False))


def test_mean_shift_adds_squared_norm() -> None:
    a, _ = two_feature_sets()
    mu, sigma = feature_stats(a)
    v = np.random.default_rng(1).normal(size=mu.shape)
    assert frechet_distance(mu, sigma, mu + v, sigma) == pytest.approx(v @ v, rel=1e-9)
    assert fid_from_features(a, a + v) == pytest.approx(v @ v, rel=1e-6)


def test_eigh_method_agrees_with_sqrtm() -> None:
    a, b = two_feature_sets(n=300, d=48)
    assert fid_from_features(a, b, method="eigh") == pytest.approx(
        fid_from_features(a, b), rel=1e-9
    )
    singular, _ = two_feature_sets(n=30, d=48)
    tolerance = 1e-7 * 2 * np.trace(np.cov(singular, rowvar=False))
    assert abs(fid_from_features(singular, singular, method="eigh")) < tolerance
    with pytest.raises(ConfigError, match="sqrtm, eigh"):
        fid_from_features(a, b, method="svd")


def test_stats_are_float64_and_accept_tensors() -> None:
    a, b = two_feature_sets()
    mu, sigma = feature_stats(torch.from_numpy(a).float())
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (32, 32)
    out = compute_fid(torch.from_numpy(a), torch.from_numpy(b))
    assert out == {"fid": pytest.approx(fid_from_features(a, b))}
    assert METRICS["fid"] is compute_fid


def test_bad_inputs_raise_one_line_errors() -> None:
    a, _ = two_feature_sets()
    with pytest.raises(DataError, match="same feature extractor"):
        fid_from_features(a, a[:, :16])
    with pytest.raises(DataError, match="NaN"):
        fid_from_features(a, np.full_like(a, np.nan))
    with pytest.raises(DataError, match="at least 2"):
        fid_from_features(a, a[:1])


def test_low_rank_form_equals_eigh_and_sqrtm_for_few_samples() -> None:
    from gankit.evaluation.metrics.fid import feature_stats, fid_low_rank

    rng = np.random.default_rng(5)
    for n1, n2, d in ((6, 9, 64), (40, 30, 128)):
        a = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d)) / 8
        b = rng.normal(size=(n2, d)) + 0.3
        for ddof in (0, 1):
            # eigh of a singular product adds square roots of rounding noise (~1e-8 relative
            # here); the low-rank form has no zero eigenvalues to round
            full = frechet_distance(*feature_stats(a, ddof), *feature_stats(b, ddof), method="eigh")
            assert fid_low_rank(a, b, ddof) == pytest.approx(full, rel=1e-7)
            # fid_from_features takes the low-rank form by itself when N < D
            assert fid_from_features(a, b, method="eigh", ddof=ddof) == fid_low_rank(a, b, ddof)
        sq = fid_from_features(a, b, method="sqrtm")
        assert fid_from_features(a, b, method="eigh") == pytest.approx(sq, rel=1e-6)
