"""Stacked MNIST: the data source (three digits as R, G, B, 1,000 modes) and its mode metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.config.sections import DataConfig
from gankit.data.sources import _builtin_mnist, load_source
from gankit.data.stacked import stacked_mnist
from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics.modes import stacked_mode_coverage
from gankit.registries import build_config


def test_each_channel_is_a_real_digit_and_the_label_names_all_three():
    x, y = _builtin_mnist()
    images, labels = stacked_mnist(x, y, 500, seed=3)
    assert images.shape == (500, 3, 28, 28) and images.dtype == torch.uint8
    for i in (0, 123, 499):
        for c, digit in enumerate((labels[i] // 100, labels[i] // 10 % 10, labels[i] % 10)):
            match = (x[:, 0] == images[i, c]).flatten(1).all(1)
            assert match.any() and int(y[match][0]) == int(digit)
    again, _ = stacked_mnist(x, y, 500, seed=3)
    assert torch.equal(images, again)
    assert not torch.equal(images, stacked_mnist(x, y, 500, seed=4)[0])
    assert (
        len(torch.unique(stacked_mnist(x, y, 20_000)[1])) > 990
    )  # nearly every one of 1,000 modes


def test_the_source_reads_at_the_run_size_with_1000_classes():
    data = load_source(DataConfig(source="stacked-mnist:64", image_size=32, channels=3, fit="pad"))
    assert data.images.shape == (64, 3, 32, 32) and len(data.classes) == 1000
    cfg = build_config("r3gan-small", ["data.source=stacked-mnist:100", "data.channels=3"])
    assert cfg.data.source == "stacked-mnist:100"
    with pytest.raises(DataError, match="stacked-mnist:N with N >= 1"):
        load_source(DataConfig(source="stacked-mnist:x", image_size=32, channels=3))
    with pytest.raises(ConfigError, match="stacked-mnist\\[:N\\]"):
        build_config("r3gan-small", ["data.source=stacked"])


def test_stacked_modes_and_kl_against_hand_values():
    eye = np.eye(10)
    k = np.arange(1000)
    every = [eye[k // 100], eye[k // 10 % 10], eye[k % 10]]
    assert stacked_mode_coverage(every) == {"modes": 1000, "num_modes": 1000, "kl": 0.0, "n": 1000}
    half = [eye[np.repeat([1, 2], 50)], eye[np.zeros(100, int)], eye[np.zeros(100, int)]]
    out = stacked_mode_coverage(half)
    assert out["modes"] == 2 and out["kl"] == pytest.approx(np.log(500))  # two modes, 1/2 each
    with pytest.raises(DataError, match="three channels"):
        stacked_mode_coverage(every[:2])
