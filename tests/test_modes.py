"""Mode coverage: a one-class generator hits few classes, a balanced one hits all with KL ≈ 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gankit.errors import DataError
from gankit.evaluation.metrics import METRICS
from gankit.evaluation.metrics.modes import class_probabilities, compute_mode_coverage


def confident_probs(classes: np.ndarray, k: int = 10, seed: int = 0) -> np.ndarray:
    """Softmax outputs of a classifier that is sure (> 0.9) of the given classes."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(classes), k))
    logits[np.arange(len(classes)), classes] += 10.0
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_one_class_generator_hits_at_most_two() -> None:
    # 1000 samples of class 3, with 0.6 % confidently misclassified (a good MNIST CNN's error rate).
    classes = np.full(1000, 3)
    classes[:6] = [0, 1, 5, 7, 7, 9]
    labels = np.arange(10_000) % 10
    out = compute_mode_coverage(confident_probs(classes), labels)
    assert out["classes_hit"] <= 2
    assert out["kl"] > 0.8 * math.log(10)
    assert out["histogram"][3] == pytest.approx(0.994)


def test_balanced_generator_hits_all_with_zero_kl() -> None:
    probs = confident_probs(np.arange(1000) % 10)
    for reference in (np.arange(500) % 10, None, confident_probs(np.arange(300) % 10, seed=1)):
        out = compute_mode_coverage(probs, reference)
        assert out["classes_hit"] == 10 == out["num_classes"]
        assert abs(out["kl"]) < 1e-12
        assert out["confident_fraction"] == 1.0
    assert METRICS["modes"] is compute_mode_coverage


def test_min_count_and_confidence_decide_hits() -> None:
    classes = np.array([0] * 999 + [1])
    probs = confident_probs(classes)
    assert compute_mode_coverage(probs)["classes_hit"] == 1  # default min_count = 10
    assert compute_mode_coverage(probs, min_count=1)["classes_hit"] == 2
    unsure = np.full((100, 10), 0.1)
    assert compute_mode_coverage(unsure, min_count=1)["classes_hit"] == 0


def test_smoothing_keeps_kl_finite_for_classes_missing_in_the_reference() -> None:
    probs = confident_probs(np.arange(100) % 10)
    reference = np.zeros(50, dtype=int)  # the real set only has class 0
    assert math.isfinite(compute_mode_coverage(probs, reference)["kl"])
    with pytest.raises(DataError, match="infinite"):
        compute_mode_coverage(probs, reference, smoothing=0.0)


def test_class_probabilities_from_a_classifier() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 10), nn.Dropout(0.5))
    net.train()
    images = torch.randint(0, 256, (7, 1, 4, 4), dtype=torch.uint8)
    probs = class_probabilities(net, images, lambda x: x.float() / 255, batch_size=3)
    assert probs.shape == (7, 10)
    assert torch.allclose(probs.sum(1), torch.ones(7))
    assert net.training  # restored; dropout was off during prediction (eval mode)
    again = class_probabilities(net, images, lambda x: x.float() / 255)
    assert torch.allclose(probs, again)
