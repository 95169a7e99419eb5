"""FD∞: the Fréchet distance extrapolated to infinitely many samples (Chong & Forsyth 2020,
"Effectively Unbiased FID and Inception Score and where to find them", CVPR).

FID estimated from N samples is biased upward, and the bias is, to first order, linear in 1/N:
E[FID_N] ≈ FID_∞ + k / N. So FID is computed for the real statistics against ``num_points``
subsets of the samples of sizes evenly spaced from ``min(5000, max(N // 10, 2))`` to N, a line is
fitted to (1/N_i, FID_i) by least squares, and its value at 1/N = 0 is FD∞. This is dgm-eval's
``compute_FD_infinity`` (layer6ai-labs; 15 points, sizes and fit as here); gankit draws the subsets
from one seeded generator instead of shuffling the features in place. FID at the full N is
reported beside it: FD∞ from 2,000 samples is comparable with FD∞ (not FID) from 50,000, up to
its noise.

Each point costs one FID with the real side's square root reused: a symmetric eigendecomposition
of a 2048 x 2048 matrix, about a second on a 2-core CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics.fid import DDOF, as_features, feature_stats

FD_INF_POINTS = 15


def fd_sizes(n: int, num_points: int = FD_INF_POINTS) -> np.ndarray:
    """dgm-eval's sample sizes: ``linspace(min(5000, max(n // 10, 2)), n, num_points)`` as int."""
    return np.linspace(min(5000, max(n // 10, 2)), n, num_points).astype(np.int64)


def extrapolate(sizes: ArrayLike, values: ArrayLike) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line value = intercept + slope / size."""
    x = 1.0 / np.asarray(sizes, np.float64)
    y = np.asarray(values, np.float64)
    if len(np.unique(x)) < 2:
        raise DataError("FD∞ needs FIDs at two or more different sample sizes")
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


class _RealSide:
    """Real statistics with the square root of Σ_r computed once."""

    def __init__(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        self.mu, self.sigma = mu, sigma
        w, v = np.linalg.eigh(sigma)
        self.root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        self.trace = float(np.trace(sigma))

    def fid(self, mu: np.ndarray, sigma: np.ndarray) -> float:
        lam = np.linalg.eigvalsh(self.root @ sigma @ self.root)
        diff = self.mu - mu
        covmean = float(np.sqrt(np.clip(lam, 0.0, None)).sum())
        return float(diff @ diff + self.trace + np.trace(sigma) - 2.0 * covmean)


def fd_infinity(
    real: ArrayLike | torch.Tensor | tuple[np.ndarray, np.ndarray],
    fake: ArrayLike | torch.Tensor,
    *,
    num_points: int = FD_INF_POINTS,
    sizes: ArrayLike | None = None,
    seed: int = 0,
    ddof: int = DDOF,
) -> dict[str, object]:
    """FD∞ of ``fake`` against ``real`` (features, or statistics ``(mu, sigma)``).

    Returns ``fd_inf``, ``fid_at_n`` (FID of all N samples), ``n``, the ``sizes`` and the ``fids``
    of the fit, and its ``slope`` (the bias per 1/N). ``sizes`` overrides dgm-eval's choice.
    """
    f = as_features(fake, "fake features")
    n = len(f)
    if num_points < 2:
        raise ConfigError(f"FD∞ needs at least 2 points, got num_points={num_points}")
    use = np.asarray(sizes if sizes is not None else fd_sizes(n, num_points), np.int64)
    if use.min() < 2 or use.max() > n:
        raise DataError(f"FD∞ sample sizes must lie in [2, {n}], got {use.min()}..{use.max()}")
    mu_r, s_r = real if isinstance(real, tuple) else feature_stats(real, ddof)
    side = _RealSide(np.asarray(mu_r, np.float64), np.asarray(s_r, np.float64))
    rng = np.random.default_rng(seed)
    fids = []
    for size in use:
        rows = f if size == n else f[rng.choice(n, int(size), replace=False)]
        fids.append(side.fid(*feature_stats(rows, ddof)))
    intercept, slope = extrapolate(use, fids)
    at_n = fids[-1] if use[-1] == n else side.fid(*feature_stats(f, ddof))
    return {
        "fd_inf": intercept,
        "fid_at_n": float(at_n),
        "n": n,
        "slope": slope,
        "sizes": [int(s) for s in use],
        "fids": [float(v) for v in fids],
    }
