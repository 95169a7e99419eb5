import math

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.engine.lr_find import LRFindResult, lr_find, plot_lr_find
from gankit.errors import GankitError


def _bowl_step(curvature: float, w0: float = 3.0):
    """One SGD step on f(w) = curvature/2 * w^2 from a fixed w0, returning the loss after it.

    Loss(lr) = f(w0) * (1 - lr * curvature)^2: minimal (zero) at lr = 1/curvature, and growing
    without bound past the stability limit 2/curvature.
    """

    def step(lr: float) -> float:
        w = torch.tensor(w0, requires_grad=True)
        (0.5 * curvature * w**2).backward()
        with torch.no_grad():
            w -= lr * w.grad
        return float(0.5 * curvature * w.detach() ** 2) + 1e-3

    return step


def test_minimum_is_within_a_factor_two_of_the_true_optimum():
    curvature = 40.0  # best lr 0.025
    res = lr_find(_bowl_step(curvature), lr_min=1e-5, lr_max=10, num=120, beta=0.5)
    assert 1 / curvature / 2 < res.min_lr < 1 / curvature * 2
    assert res.diverged and len(res.lrs) < 120
    assert res.suggestion <= res.min_lr


def test_lrs_are_an_exponential_sweep_and_smoothing_is_bias_corrected():
    seen = []

    def step(lr):
        seen.append(lr)
        return 5.0

    res = lr_find(step, lr_min=1e-4, lr_max=1e-1, num=4)
    np.testing.assert_allclose(seen, [1e-4, 1e-3, 1e-2, 1e-1])
    assert res.lrs == seen
    # With bias correction a constant loss stays constant from the first step (no ramp from 0).
    np.testing.assert_allclose(res.losses, [5.0] * 4)
    assert not res.diverged


def test_stops_when_the_smoothed_loss_explodes():
    calls = []

    def step(lr):
        calls.append(lr)
        return 1.0 if lr < 1e-2 else 1e3

    res = lr_find(step, lr_min=1e-6, lr_max=1.0, num=61, beta=0.9)
    assert res.diverged
    assert len(calls) == len(res.lrs) < 61
    assert res.losses[-1] > 4.0 * min(res.losses)
    assert max(res.losses[:-1]) <= 4.0 * min(res.losses)
    assert calls[-1] < 0.1  # stopped within a few steps of the blow-up at 1e-2


def test_stops_on_nan():
    res = lr_find(lambda lr: math.nan if lr > 2e-3 else 1.0, lr_min=1e-5, lr_max=1, num=11)
    assert res.diverged and math.isinf(res.losses[-1])
    # Half-decade steps: 1e-5 ... 1e-3 are fine, the 6th lr (10**-2.5) gives the NaN.
    assert len(res.lrs) == 6 and res.lrs[-2] < 2e-3 < res.lrs[-1]


def test_suggestion_is_the_steepest_descent():
    # A smooth step in log10(lr) centred on 1e-3: steepest there, flat minimum near 1e-1.
    def loss(lr):
        return 2.0 - math.tanh(2 * (math.log10(lr) + 3)) + 0.01 * (math.log10(lr) + 1) ** 2

    res = lr_find(loss, lr_min=1e-6, lr_max=1.0, num=61, beta=0.0)
    assert res.suggestion == pytest.approx(1e-3, rel=0.2)
    assert 1e-2 < res.min_lr <= 1.0


def test_rejects_bad_arguments():
    with pytest.raises(GankitError, match="lr_min"):
        lr_find(lambda lr: 1.0, lr_min=1.0, lr_max=0.1)
    with pytest.raises(GankitError, match="beta"):
        lr_find(lambda lr: 1.0, beta=1.0)


def test_plot_writes_a_valid_png(tmp_path):
    res = lr_find(_bowl_step(40.0), lr_min=1e-5, lr_max=10, num=80, beta=0.7)
    path = plot_lr_find(res, tmp_path / "sub" / "lr_find.png")
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (800, 500)
        pixels = np.asarray(img.convert("RGB"))
    # The curve (blue) and the suggestion marker (red) were drawn.
    assert ((pixels == (31, 119, 180)).all(-1)).sum() > 100
    assert ((pixels == (214, 39, 40)).all(-1)).sum() > 10


def test_plot_refuses_an_empty_curve(tmp_path):
    res = LRFindResult([1e-3], [1.0], [1.0], 1e-3, 1e-3, False)
    with pytest.raises(GankitError, match="nothing to plot"):
        plot_lr_find(res, tmp_path / "x.png")
