"""Mode coverage from a classifier's class probabilities (the "mode counting" of Che et al. 2017,
"Mode regularized GANs", and Srivastava et al. 2017, "VEEGAN", on MNIST-like data).

A trained classifier labels each generated sample. We report:

- ``classes_hit``: classes that received at least ``min_count`` *confident* samples (top
  probability >= ``confidence``, 0.9 by default). The default ``min_count`` is a tenth of a class's
  fair share, ``max(1, ceil(0.1 · N / K))`` for N samples and K classes: a small MNIST CNN is
  confidently wrong on well under 1 % of images, and spread over K - 1 classes those errors stay
  far below a tenth of a share, so they cannot fake a mode; a mode generated at a tenth of its
  real frequency still counts.
- ``histogram``: the fraction of all samples whose most probable class is each class.
- ``kl``: KL(sample histogram ‖ real histogram) in nats, both histograms smoothed by adding
  ``smoothing`` (default 1) pseudo-counts per class (Laplace's rule) before normalising. Smoothing
  keeps the divergence finite when a class is empty in the reference and changes it by O(K / N);
  with it, a one-class generator on 10 balanced classes scores about log 10 ≈ 2.3 and a generator
  with the real frequencies scores ≈ 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics.features import check_images
from gankit.nets.eval_mode import eval_mode


def class_probabilities(
    classifier: nn.Module,
    images: Tensor,
    preprocess: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Softmax of ``classifier(preprocess(batch))`` for uint8 NCHW ``images``: (N, K) on the CPU."""
    check_images(images)
    with eval_mode(classifier), torch.inference_mode():
        out = [
            classifier(preprocess(images[i : i + batch_size].to(device))).float().softmax(1).cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(out)


def _as_probs(p: ArrayLike | Tensor, name: str) -> np.ndarray:
    if isinstance(p, Tensor):
        p = p.detach().cpu().double().numpy()
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 2 or len(a) == 0 or a.shape[1] < 2 or not np.isfinite(a).all():
        raise DataError(
            f"{name} must be a finite (N, K) matrix of class probabilities, got shape {a.shape}"
        )
    return a


def _reference_counts(reference: ArrayLike | Tensor | None, num_classes: int) -> np.ndarray:
    """Class counts of the reference: int labels (N,), probabilities (N, K), or None for uniform."""
    if reference is None:
        return np.ones(num_classes)
    if isinstance(reference, Tensor):
        reference = reference.detach().cpu().numpy()
    ref = np.asarray(reference)
    if ref.ndim == 2:
        ref = _as_probs(ref, "reference probabilities").argmax(axis=1)
    if ref.ndim != 1 or len(ref) == 0 or not np.issubdtype(ref.dtype, np.integer):
        raise DataError("reference must be integer labels (N,) or class probabilities (N, K)")
    if ref.min() < 0 or ref.max() >= num_classes:
        raise DataError(
            f"reference labels must lie in [0, {num_classes}), got {ref.min()}..{ref.max()}"
        )
    return np.bincount(ref, minlength=num_classes).astype(np.float64)


def compute_mode_coverage(
    fake_probs: ArrayLike | Tensor,
    reference: ArrayLike | Tensor | None = None,
    *,
    confidence: float = 0.9,
    min_count: int | None = None,
    smoothing: float = 1.0,
) -> dict[str, int | float | list[float]]:
    """Classes hit, sample class histogram and KL(sample ‖ real) from class probabilities.

    ``fake_probs`` is (N, K) (softmax outputs of a classifier on generated samples); ``reference``
    is the real data's labels (N_real,) or probabilities (N_real, K), or None for a uniform real
    histogram. Returns ``classes_hit``, ``num_classes``, ``confident_fraction``, ``kl`` and
    ``histogram`` (a list of K fractions). See the module docstring for the definitions.
    """
    probs = _as_probs(fake_probs, "fake class probabilities")
    n, k = probs.shape
    if not 0.0 <= confidence <= 1.0 or smoothing < 0 or (min_count is not None and min_count < 1):
        raise ConfigError(
            f"mode coverage: need 0 <= confidence <= 1, smoothing >= 0 and min_count >= 1, got "
            f"{confidence}, {smoothing}, {min_count}"
        )
    if min_count is None:
        min_count = max(1, math.ceil(0.1 * n / k))
    predicted = probs.argmax(axis=1)
    confident = probs.max(axis=1) >= confidence
    confident_counts = np.bincount(predicted[confident], minlength=k)
    counts = np.bincount(predicted, minlength=k).astype(np.float64)

    p = (counts + smoothing) / (counts.sum() + smoothing * k)
    ref = _reference_counts(reference, k)
    q = (ref + smoothing) / (ref.sum() + smoothing * k)
    if (q == 0).any() and (p[q == 0] > 0).any():
        raise DataError(
            "KL is infinite: the sample hits a class absent from the reference; use smoothing > 0"
        )
    nonzero = p > 0  # 0 · log(0 / q) = 0 by convention
    kl = float(np.sum(p[nonzero] * np.log(p[nonzero] / q[nonzero])))
    return {
        "classes_hit": int((confident_counts >= min_count).sum()),
        "num_classes": k,
        "confident_fraction": float(confident.mean()),
        "kl": kl,
        "histogram": (counts / n).tolist(),
    }


def stacked_mode_coverage(channel_probs: list[ArrayLike | Tensor]) -> dict[str, int | float]:
    """Modes of Stacked MNIST (Metz et al. 2017; Srivastava et al. 2017, VEEGAN; Lin et al. 2018,
    PacGAN): a MNIST classifier reads each of the three channels; the mode of a sample is its
    triple of predicted digits (1,000 modes). ``modes``: modes with at least one sample;
    ``kl``: KL(mode histogram ‖ uniform over 1,000) in nats (0·log 0 = 0, no smoothing, as those
    papers report it). ``channel_probs``: three (N, 10) probability matrices, R, G, B."""
    if len(channel_probs) != 3:
        raise DataError(
            f"stacked modes need three channels' probabilities, got {len(channel_probs)}"
        )
    digits = [_as_probs(p, "channel probabilities").argmax(axis=1) for p in channel_probs]
    if len({len(d) for d in digits}) != 1:
        raise DataError("the three channels' probabilities must have one row per sample each")
    if any(_as_probs(p, "channel").shape[1] != 10 for p in channel_probs):
        raise DataError("stacked modes need a 10-class (digit) classifier")
    mode = digits[0] * 100 + digits[1] * 10 + digits[2]
    counts = np.bincount(mode, minlength=1000).astype(np.float64)
    p = counts / counts.sum()
    nz = p > 0
    kl = float(np.sum(p[nz] * np.log(p[nz] * 1000)))
    return {"modes": int(nz.sum()), "num_modes": 1000, "kl": kl, "n": int(len(mode))}
