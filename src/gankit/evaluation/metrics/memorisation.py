"""Does the generator copy its training set? Nearest-neighbour tests in feature space.

**Copy flagging.** For each generated sample, d_gen is the distance to its nearest training
image; for each *held-out* real image (never trained on), d_ref is the same distance. Held-out
images are, by construction, novel samples of the data distribution, so d_ref shows how close a
genuinely new image comes to the training set. A generated sample is flagged as a copy when

    d_gen < factor · quantile_alpha(d_ref)            (defaults: alpha = 0.01, factor = 0.5)

Why these defaults: with factor 1 the rule is a one-sided test at level alpha, flagging 1 % of
samples that are exactly as novel as real data. But the closest 1 % of real novel images are often
near-duplicates themselves (on MNIST, plain 1s), and GANs sample such typical regions more densely
than the data does, which shrinks d_gen without any copying. Demanding twice the closeness of that
1 % reserves the flag for near-copies (a training image plus noise, compression or a small shift)
and makes the expected rate for novel samples well below alpha. Measured on MNIST pixels in
[0, 1] (10,000 training and 1,000 held-out test images, see tests/test_memorisation.py): d_ref's
1st percentile is 1.46 and its median 4.96, so the threshold is 0.73; training images plus
Gaussian pixel noise of sigma 0.02 (5 grey levels, distance 0.42) are all flagged, with sigma 0.05
(distance 1.04) none are, and no held-out image is. Use factor = 1 for the calibrated level-alpha
test. Report the fraction flagged with a grid of the closest pairs: a person should look at them.

**C_T** (Meehan, Chaudhuri and Dasgupta 2020, "A non-parametric test to detect data-copying in
generative models", AISTATS): partition space into k-means cells of the training set; in each cell
compare the generated and the held-out samples' distances to the nearest training sample *of
that cell* with a Mann-Whitney U test, z-scored under the null,
Z_U = (U - mn/2) / sqrt(mn(m + n + 1)/12), U counting pairs where the generated distance is the
larger; C_T is the average of Z_U over cells weighted by each cell's share of held-out samples.
C_T << 0 means copying (generated samples closer to training than real novel ones), ≈ 0 neither
copying nor under-fitting, >> 0 under-fitting. Cells with fewer than ``min_count`` generated or
held-out samples are left out (the paper's Π_τ), as the normal approximation needs ~20 per side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.cluster.vq import kmeans2, vq
from scipy.stats import mannwhitneyu
from torch import Tensor

from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics.prdc import DEFAULT_MAX_ELEMENTS, nearest_neighbours, to_tensor


@dataclass
class MemorisationResult:
    """Per-sample nearest-training distances and the copies they reveal.

    ``closest_pairs`` is (top_k, 2): rows of (generated index, training index), closest first.
    """

    threshold: float
    flagged: np.ndarray
    gen_distances: np.ndarray
    gen_nearest: np.ndarray
    ref_distances: np.ndarray
    closest_pairs: np.ndarray

    @property
    def fraction_flagged(self) -> float:
        """Fraction of generated samples flagged as copies."""
        return float(self.flagged.mean())

    def summary(self) -> dict[str, float]:
        """Scalars for metrics.jsonl."""
        return {
            "memorised_fraction": self.fraction_flagged,
            "copy_threshold": self.threshold,
            "gen_nn_median": float(np.median(self.gen_distances)),
            "ref_nn_median": float(np.median(self.ref_distances)),
        }


def _validated(
    generated: ArrayLike | Tensor,
    train: ArrayLike | Tensor,
    heldout: ArrayLike | Tensor,
    device: str | torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor]:
    g = to_tensor(generated, "generated features", device, dtype)
    t = to_tensor(train, "training features", device, dtype)
    h = to_tensor(heldout, "held-out features", device, dtype)
    if not g.shape[1] == t.shape[1] == h.shape[1]:
        raise DataError(
            f"memorisation: feature dimensions differ (generated {g.shape[1]}, training "
            f"{t.shape[1]}, held-out {h.shape[1]}): use one extractor for all three"
        )
    return g, t, h


def compute_memorisation(
    generated: ArrayLike | Tensor,
    train: ArrayLike | Tensor,
    heldout: ArrayLike | Tensor,
    *,
    alpha: float = 0.01,
    factor: float = 0.5,
    top_k: int = 16,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> MemorisationResult:
    """Flag generated samples closer to a training sample than ``factor · quantile_alpha(d_ref)``.

    ``generated``, ``train`` and ``heldout`` are feature matrices from one extractor (or raw
    pixels flattened to (N, D)); ``heldout`` must be real images that were not trained on.
    """
    if not 0.0 < alpha < 1.0 or factor <= 0 or top_k < 0:
        raise ConfigError(
            f"memorisation: need 0 < alpha < 1, factor > 0, top_k >= 0; got {alpha}, {factor}, {top_k}"
        )
    g, t, h = _validated(generated, train, heldout, device, dtype)
    d_gen, nearest = nearest_neighbours(g, t, max_elements=max_elements)
    d_ref, _ = nearest_neighbours(h, t, max_elements=max_elements)
    d_gen, nearest, d_ref = d_gen.cpu().numpy(), nearest.cpu().numpy(), d_ref.cpu().numpy()
    threshold = float(factor * np.quantile(d_ref, alpha))
    order = np.argsort(d_gen, kind="stable")[:top_k]
    return MemorisationResult(
        threshold=threshold,
        flagged=d_gen < threshold,
        gen_distances=d_gen,
        gen_nearest=nearest,
        ref_distances=d_ref,
        closest_pairs=np.stack([order, nearest[order]], axis=1),
    )


def _z_mann_whitney(gen_d: np.ndarray, ref_d: np.ndarray) -> float:
    """Z-scored U of generated vs held-out distances (negative: generated closer to training)."""
    m, n = len(gen_d), len(ref_d)
    u = mannwhitneyu(gen_d, ref_d, alternative="two-sided").statistic  # U of the first sample
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))


def copying_statistic(
    generated: ArrayLike | Tensor,
    train: ArrayLike | Tensor,
    heldout: ArrayLike | Tensor,
    *,
    num_cells: int = 20,
    min_count: int = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> dict[str, float | int | list[float | None]]:
    """Meehan et al. 2020's C_T: ``{"c_t", "cells_used", "cell_z"}`` (Z_U per cell, None if unused).

    Cells are k-means (scipy ``kmeans2``, k-means++ start, ``seed``) of the training features.
    """
    if num_cells < 1 or min_count < 1:
        raise ConfigError(
            f"C_T: need num_cells >= 1 and min_count >= 1, got {num_cells}, {min_count}"
        )
    g, t, h = _validated(generated, train, heldout, device, torch.float64)
    t_np = t.cpu().numpy()
    # seed= (not the newer rng=) works on every scipy that pyproject allows (>= 1.10).
    centroids, train_cells = kmeans2(t_np, num_cells, minit="++", seed=np.random.default_rng(seed))
    gen_cells, _ = vq(g.cpu().numpy(), centroids)
    ref_cells, _ = vq(h.cpu().numpy(), centroids)

    z = np.full(num_cells, np.nan)
    weights = np.zeros(num_cells)
    for c in range(num_cells):
        in_g, in_h, in_t = gen_cells == c, ref_cells == c, train_cells == c
        if in_g.sum() < min_count or in_h.sum() < min_count or not in_t.any():
            continue
        cell_train = t[torch.from_numpy(in_t).to(t.device)]
        d_g, _ = nearest_neighbours(
            g[torch.from_numpy(in_g).to(g.device)], cell_train, max_elements=max_elements
        )
        d_h, _ = nearest_neighbours(
            h[torch.from_numpy(in_h).to(h.device)], cell_train, max_elements=max_elements
        )
        z[c] = _z_mann_whitney(d_g.cpu().numpy(), d_h.cpu().numpy())
        weights[c] = in_h.mean()  # P_n(cell): the cell's share of held-out samples
    used = weights > 0
    if not used.any():
        raise DataError(
            f"C_T: no k-means cell has {min_count} generated and held-out samples: use fewer "
            f"cells (num_cells={num_cells}) or more samples"
        )
    c_t = float(np.sum(weights[used] * z[used]) / np.sum(weights[used]))
    # None rather than NaN for unused cells: NaN is not valid JSON for metrics.jsonl.
    cell_z = [float(v) if u else None for v, u in zip(z, used, strict=True)]
    return {"c_t": c_t, "cells_used": int(used.sum()), "cell_z": cell_z}
