"""Fréchet Inception Distance (Heusel et al. 2017, "GANs trained by a two time-scale update rule").

FID is the Fréchet (2-Wasserstein) distance between two Gaussians fitted to feature matrices:

    d² = |mu_1 - mu_2|² + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))        (Heusel et al. 2017)

Statistics are float64 (features are float32; summing 10k outer products in float32 loses digits
that the trace difference needs). FID is biased upward at small n (Chong & Forsyth 2020): compare
values only at the same n and the same feature extractor and resize.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy import linalg

from gankit.errors import ConfigError, DataError


def as_features(x: ArrayLike | torch.Tensor, name: str = "features") -> np.ndarray:
    """A float64 (N, D) numpy array from a tensor or array; DataError if not 2-D, empty or non-finite."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise DataError(f"{name} must be a non-empty (N, D) matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"{name} contain NaN or infinity: check the generator's output")
    return a


def feature_stats(features: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of a feature matrix (N, D), both float64."""
    f = as_features(features)
    if len(f) < 2:
        raise DataError(
            f"FID needs at least 2 feature vectors to estimate a covariance, got {len(f)}"
        )
    return f.mean(axis=0), np.cov(f, rowvar=False)


FID_METHODS = ("sqrtm", "eigh")


def trace_sqrt_product_sqrtm(s1: np.ndarray, s2: np.ndarray, eps: float = 1e-6) -> float:
    """Tr((S1 S2)^(1/2)) with scipy's ``sqrtm``, handled exactly as the TTUR code and pytorch-fid.

    If the product is numerically singular (its root is not finite) ``eps`` is added to both
    diagonals and the root recomputed. Rounding can leave a tiny imaginary part: it is dropped when
    the diagonal's imaginary part is below 1e-3; a larger one raises DataError.
    """
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = float(np.max(np.abs(covmean.imag)))
            raise DataError(
                f"FID: sqrtm of the covariance product has imaginary part {worst:.3g}: the "
                "statistics are too ill-conditioned; use more samples than feature dimensions"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def trace_sqrt_product_eigh(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) from symmetric eigendecompositions, several times faster than ``sqrtm``.

    S1 S2 is similar to R S2 R with R = S1^(1/2) (symmetric PSD), so its eigenvalues are real and
    non-negative and the trace of its root is the sum of their square roots. Rounding makes a few
    eigenvalues slightly negative; they are clipped to 0 (their true value for singular S1 or S2).
    """
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    lam = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(
    mu1: ArrayLike,
    sigma1: ArrayLike,
    mu2: ArrayLike,
    sigma2: ArrayLike,
    eps: float = 1e-6,
    method: str = "sqrtm",
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017).

    ``method="sqrtm"`` (default) is the reference computation, equal to pytorch-fid's; see
    :func:`trace_sqrt_product_sqrtm`. ``method="eigh"`` (:func:`trace_sqrt_product_eigh`) agreed
    with it to 1e-13 relative on random 256- to 1024-d statistics and is faster: sqrtm's Schur
    decomposition of a non-symmetric 2048 x 2048 matrix took 30-100 s on a busy 2-core CPU, the
    symmetric eigendecompositions a few seconds.
    """
    if method not in FID_METHODS:
        raise ConfigError(f"FID method {method!r} is unknown: use one of {', '.join(FID_METHODS)}")
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    s1, s2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise DataError(
            f"FID statistics do not match: means {mu1.shape} and {mu2.shape}, covariances "
            f"{s1.shape} and {s2.shape}; were they computed with the same feature extractor?"
        )
    diff = mu1 - mu2
    if method == "sqrtm":
        tr_covmean = trace_sqrt_product_sqrtm(s1, s2, eps)
    else:
        tr_covmean = trace_sqrt_product_eigh(s1, s2)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_features(
    features1: ArrayLike | torch.Tensor,
    features2: ArrayLike | torch.Tensor,
    eps: float = 1e-6,
    method: str = "sqrtm",
) -> float:
    """FID between two feature matrices (N1, D) and (N2, D); see :func:`frechet_distance`."""
    mu1, s1 = feature_stats(features1)
    mu2, s2 = feature_stats(features2)
    return frechet_distance(mu1, s1, mu2, s2, eps=eps, method=method)


def compute_fid(
    real: ArrayLike | torch.Tensor,
    fake: ArrayLike | torch.Tensor,
    *,
    eps: float = 1e-6,
    method: str = "sqrtm",
) -> dict[str, float]:
    """Registry entry: ``{"fid": FID(real, fake)}`` from feature matrices."""
    return {"fid": fid_from_features(real, fake, eps=eps, method=method)}
