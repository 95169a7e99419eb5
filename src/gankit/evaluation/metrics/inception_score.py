"""Inception Score (Salimans et al. 2016, "Improved techniques for training GANs", Sec. 4).

IS = exp(E_x KL(p(y|x) || p(y))): high when each sample is confidently one class and the samples
spread over many classes. The class probabilities come from the 2015-12-05 Inception's 1,008-way
head applied to its 2048-d pool3 features *without the head's bias* (the original TF code's
``softmax`` of ``pool3 @ W``; stylegan2-ada's ``no_output_bias=True``; torch-fidelity's
``logits_unbiased``), so gankit computes the logits itself from the same features FID uses
(:meth:`~gankit.evaluation.metrics.inception.InceptionFeatures.head_weight`).

The samples are cut into ``splits`` (10) consecutive parts ``[k N / S, (k + 1) N / S)``; per
part, p = softmax(logits), q = the part's mean p, score = exp(mean_i Σ_c p_ic (log p_ic − log q_c));
the result is the mean and the population standard deviation of the parts' scores, in float64.
stylegan2-ada and the original code take the samples in their order; torch-fidelity first
shuffles them with ``numpy.random.RandomState(2020)`` (``shuffle_seed=2020`` here).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics.fid import as_features

IS_SPLITS = 10


def inception_logits(
    features: ArrayLike | torch.Tensor, weight: ArrayLike | torch.Tensor
) -> np.ndarray:
    """(N, 1008) float64 logits ``features @ weight.T`` (no bias) from (N, 2048) pool3 features."""
    f = as_features(features, "Inception features")
    w = (
        weight.detach().cpu().double().numpy()
        if isinstance(weight, torch.Tensor)
        else np.asarray(weight, np.float64)
    )
    if w.ndim != 2 or w.shape[1] != f.shape[1]:
        raise DataError(f"head weight {w.shape} does not fit features of {f.shape[1]} dimensions")
    return f @ w.T


def inception_score(
    logits: ArrayLike | torch.Tensor, splits: int = IS_SPLITS, shuffle_seed: int | None = None
) -> dict[str, float]:
    """``{"is": mean, "is_std": std}`` over ``splits`` parts of the (N, C) logits.

    ``shuffle_seed`` permutes the rows with ``numpy.random.RandomState(seed)`` first (torch-fidelity
    uses 2020); None keeps their order (stylegan2-ada, the original code).
    """
    x = as_features(logits, "logits")
    n = len(x)
    if splits < 1:
        raise ConfigError(f"Inception Score splits {splits} must be at least 1")
    if n < splits:
        raise DataError(
            f"the Inception Score over {splits} splits needs at least {splits} samples, got {n}"
        )
    if shuffle_seed is not None:
        x = x[np.random.RandomState(shuffle_seed).permutation(n)]
    log_p = x - x.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for k in range(splits):
        part = slice(k * n // splits, (k + 1) * n // splits)
        q = p[part].mean(axis=0, keepdims=True)
        kl = (p[part] * (log_p[part] - np.log(q))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return {"is": float(np.mean(scores)), "is_std": float(np.std(scores)), "splits": splits}


def compute_is(
    features: ArrayLike | torch.Tensor,
    weight: ArrayLike | torch.Tensor,
    *,
    splits: int = IS_SPLITS,
    shuffle_seed: int | None = None,
) -> dict[str, float]:
    """Registry entry: the Inception Score of pool3 ``features`` with the head ``weight``."""
    return inception_score(inception_logits(features, weight), splits, shuffle_seed)
