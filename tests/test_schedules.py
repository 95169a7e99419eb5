import numpy as np
import pytest
import torch

from gankit.engine.schedules import OneCycleScheduler, cycle_breakpoints, linear_decay, one_cycle
from gankit.errors import GankitError

LR, DIV, PCT, MOM_MAX, MOM_MIN = 1.3, 20, 20, 0.95, 0.85


def _expected(total: int) -> tuple[np.ndarray, np.ndarray]:
    """fastai use_clr_beta written independently: piecewise-linear through the breakpoints."""
    half = int(total * 0.8 / 2)  # (100 - pct) / 2 % of the steps, rounded down
    xs = [0, half, 2 * half, total]
    steps = np.arange(total + 1)
    lrs = np.interp(steps, xs, [LR / DIV, LR, LR / DIV, LR / (DIV * 100)])
    moms = np.interp(steps, xs, [MOM_MAX, MOM_MIN, MOM_MAX, MOM_MAX])
    return lrs, moms


@pytest.mark.parametrize("total", [50, 37, 10])
def test_one_cycle_matches_the_formula_at_every_step(total):
    lrs, moms = _expected(total)
    got = np.array([one_cycle(s, total, LR, DIV, PCT, MOM_MAX, MOM_MIN) for s in range(total + 1)])
    np.testing.assert_allclose(got[:, 0], lrs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[:, 1], moms, rtol=1e-12)


def test_one_cycle_endpoints_of_the_darknet_recipe():
    half, anneal = cycle_breakpoints(50, PCT)
    assert (half, anneal) == (20, 40)
    points = [one_cycle(s, 50, LR, DIV, PCT, MOM_MAX, MOM_MIN) for s in (0, 20, 40, 50)]
    np.testing.assert_allclose([p[0] for p in points], [0.065, 1.3, 0.065, 0.00065])
    np.testing.assert_allclose([p[1] for p in points], [0.95, 0.85, 0.95, 0.95])
    # Past the end the schedule holds its final values.
    assert one_cycle(80, 50, LR, DIV, PCT) == pytest.approx((0.00065, 0.95))


def test_one_cycle_rejects_impossible_settings():
    with pytest.raises(GankitError, match="pct"):
        one_cycle(0, 10, 1.0, pct=100)
    with pytest.raises(GankitError, match="warm-up"):
        one_cycle(0, 1, 1.0)
    with pytest.raises(GankitError, match="div"):
        one_cycle(0, 10, 1.0, div=1)


def _sgd(lr=LR):
    params = [torch.nn.Parameter(torch.ones(3))]
    return params, torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)


def _run(opt, sched, params, n):
    seen = []
    for _ in range(n):
        g = opt.param_groups[0]
        seen.append((g["lr"], g["momentum"]))
        params[0].grad = torch.ones(3)
        opt.step()
        sched.step()
    return seen


def test_scheduler_sets_lr_and_momentum_every_step():
    total = 30
    params, opt = _sgd()
    sched = OneCycleScheduler(opt, total, div=DIV, pct=PCT, mom_max=MOM_MAX, mom_min=MOM_MIN)
    seen = np.array(_run(opt, sched, params, total))
    lrs, moms = _expected(total)
    np.testing.assert_allclose(seen[:, 0], lrs[:total])
    np.testing.assert_allclose(seen[:, 1], moms[:total])
    assert sched.get_last_lr() == pytest.approx([lrs[total]])


def test_scheduler_cycles_adam_beta1_and_keeps_beta2():
    params = [torch.nn.Parameter(torch.ones(2))]
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))
    sched = OneCycleScheduler(opt, 20, lr=0.01)
    assert opt.param_groups[0]["betas"] == (0.95, 0.99)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 / 20)
    for _ in range(8):  # the peak is at step floor(20 * 0.8 / 2) = 8
        params[0].grad = torch.ones(2)
        opt.step()
        sched.step()
    assert opt.param_groups[0]["betas"] == pytest.approx((0.85, 0.99))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_scheduler_resume_from_state_dict_reproduces_the_sequence():
    total, cut = 25, 11
    params, opt = _sgd()
    sched = OneCycleScheduler(opt, total)
    full = _run(opt, sched, params, total)

    params, opt = _sgd()
    sched = OneCycleScheduler(opt, total)
    first = _run(opt, sched, params, cut)
    state = sched.state_dict()
    # A fresh optimiser at a different lr: loading the scheduler alone must put lr and momentum back.
    params2, opt2 = _sgd(lr=LR)
    opt2.param_groups[0]["momentum"] = 0.0
    sched2 = OneCycleScheduler(opt2, total)
    sched2.load_state_dict(state)
    rest = _run(opt2, sched2, params2, total - cut)
    np.testing.assert_allclose(np.array(first + rest), np.array(full))


def test_scheduler_per_group_lrs_and_validation():
    a, b = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}], momentum=0.9)
    OneCycleScheduler(opt, 10, div=10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.01])
    with pytest.raises(GankitError, match="per group|one lr per group"):
        OneCycleScheduler(opt, 10, lr=[1.0])
    rms_free = torch.optim.Adagrad([torch.nn.Parameter(torch.ones(1))])
    with pytest.raises(GankitError, match="cycle_momentum=False"):
        OneCycleScheduler(rms_free, 10)
    OneCycleScheduler(rms_free, 10, cycle_momentum=False)


def test_linear_decay_is_constant_then_linear_to_zero():
    got = [linear_decay(s, 10, 4) for s in range(12)]
    np.testing.assert_allclose(got, np.interp(np.arange(12), [0, 4, 10], [1, 1, 0]))
    with pytest.raises(GankitError, match="start_decay"):
        linear_decay(0, 10, 10)
