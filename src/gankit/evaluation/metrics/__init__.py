"""Evaluation metrics: one file per metric, one registry line each (as in stylegan2-ada's metrics/).

Metrics work on feature matrices (N, D) from one extractor in :mod:`gankit.evaluation.metrics.features`
(the FID Inception, or a gankit classifier through ``ModuleFeatures``), except mode coverage,
which takes class probabilities. Each registry function returns a dict of JSON-ready values.

==============  ==========================================  =========================================
name            call                                        returns
==============  ==========================================  =========================================
fid             ``(real, fake)``                            ``fid`` (Heusel et al. 2017; lower better)
kid             ``(real, fake, num_subsets=100,             ``kid``, ``kid_std`` (Bińkowski et al.
                subset_size=1000, seed=0)``                 2018; unbiased, ≈ 0 for equal sets)
prdc            ``(real, fake, k_pr=3, k_dc=5)``            ``precision``, ``recall`` (Kynkäänniemi
                                                            et al. 2019), ``density``, ``coverage``
                                                            (Naeem et al. 2020)
modes           ``(fake_probs, reference=None,              ``classes_hit``, ``num_classes``,
                confidence=0.9)``                           ``kl``, ``histogram``,
                                                            ``confident_fraction``
memorisation    ``(generated, train, heldout,               ``memorised_fraction``,
                alpha=0.01, factor=0.5)``                   ``copy_threshold``, medians of the
                                                            nearest-training distances
copying         ``(generated, train, heldout,               ``c_t`` (Meehan et al. 2020; << 0 means
                num_cells=20)``                             copying), ``cells_used``, ``cell_z``
is              ``(features, head_weight, splits=10,        ``is``, ``is_std`` (Salimans et al. 2016;
                shuffle_seed=None)``                        higher better; the full Inception's head)
fdinf           ``(real, fake, num_points=15, seed=0)``     ``fd_inf``, ``fid_at_n`` (Chong & Forsyth
                                                            2020; FID extrapolated to N = infinity)
==============  ==========================================  =========================================

``real`` of ``fid`` and ``fdinf`` may also be statistics ``(mu, sigma)``; both take ``ddof`` (the
covariance divisor, 1 by default, 0 for stylegan2-ada's protocol).

For the per-sample distances and the closest (sample, training) pairs behind ``memorisation``
call :func:`gankit.evaluation.metrics.memorisation.compute_memorisation` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gankit.evaluation.metrics.fd_infinity import fd_infinity
from gankit.evaluation.metrics.fid import (
    compute_fid,
    feature_stats,
    fid_from_features,
    frechet_distance,
)
from gankit.evaluation.metrics.inception_score import compute_is
from gankit.evaluation.metrics.kid import compute_kid
from gankit.evaluation.metrics.memorisation import (
    MemorisationResult,
    compute_memorisation,
    copying_statistic,
)
from gankit.evaluation.metrics.modes import (
    class_probabilities,
    compute_mode_coverage,
    stacked_mode_coverage,
)
from gankit.evaluation.metrics.prdc import compute_prdc


def memorisation_summary(
    generated: Any, train: Any, heldout: Any, **options: Any
) -> dict[str, float]:
    """Registry entry: the scalar summary of :func:`compute_memorisation`."""
    return compute_memorisation(generated, train, heldout, **options).summary()


METRICS: dict[str, Callable[..., dict[str, Any]]] = {
    "fid": compute_fid,
    "kid": compute_kid,
    "prdc": compute_prdc,
    "modes": compute_mode_coverage,
    "memorisation": memorisation_summary,
    "copying": copying_statistic,
    "is": compute_is,
    "fdinf": fd_infinity,
}

__all__ = [
    "METRICS",
    "MemorisationResult",
    "class_probabilities",
    "compute_fid",
    "compute_is",
    "fd_infinity",
    "compute_kid",
    "compute_memorisation",
    "compute_mode_coverage",
    "stacked_mode_coverage",
    "compute_prdc",
    "copying_statistic",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "memorisation_summary",
]
