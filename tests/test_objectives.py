import math

import pytest
import torch

from gankit.objectives import OBJECTIVES, gradient_penalty

real = torch.tensor([2.0, -1.0, 0.5])
fake = torch.tensor([-3.0, 0.0, 1.0])


def sig(t):
    return 1 / (1 + math.exp(-t))


def mean(xs):
    return sum(xs) / len(xs)


def test_bce_losses_match_formulas():
    d = OBJECTIVES["non-saturating"].d_loss(real, fake)
    want = -mean([math.log(sig(r)) for r in real.tolist()]) - mean(
        [math.log(1 - sig(f)) for f in fake.tolist()]
    )
    assert d.item() == pytest.approx(want, rel=1e-6)
    assert OBJECTIVES["minimax"].g_loss(fake).item() == pytest.approx(
        mean([math.log(1 - sig(f)) for f in fake.tolist()]), rel=1e-6
    )
    assert OBJECTIVES["non-saturating"].g_loss(fake).item() == pytest.approx(
        -mean([math.log(sig(f)) for f in fake.tolist()]), rel=1e-6
    )


def test_label_smoothing_is_one_sided():
    s = 0.1
    d = OBJECTIVES["non-saturating"].d_loss(real, fake, s)
    want = -mean(
        [0.9 * math.log(sig(r)) + 0.1 * math.log(1 - sig(r)) for r in real.tolist()]
    ) - mean([math.log(1 - sig(f)) for f in fake.tolist()])
    assert d.item() == pytest.approx(want, rel=1e-6)


def test_stable_for_huge_logits():
    big = torch.tensor([1e4, -1e4])
    for obj in OBJECTIVES.values():
        assert torch.isfinite(obj.d_loss(big, big)) and torch.isfinite(obj.g_loss(big))


def test_lsgan_wgan_hinge_formulas():
    ls = OBJECTIVES["lsgan"]
    assert ls.d_loss(real, fake).item() == pytest.approx(
        0.5 * mean([(r - 1) ** 2 for r in real.tolist()])
        + 0.5 * mean([f**2 for f in fake.tolist()])
    )
    assert ls.g_loss(fake).item() == pytest.approx(
        0.5 * mean([(f - 1) ** 2 for f in fake.tolist()])
    )
    w = OBJECTIVES["wgan"]
    assert w.d_loss(real, fake).item() == pytest.approx(fake.mean().item() - real.mean().item())
    assert w.clip == 0.01 and OBJECTIVES["wgan-gp"].gp_weight == 10
    h = OBJECTIVES["hinge"]
    assert h.d_loss(real, fake).item() == pytest.approx(
        mean([max(0, 1 - r) for r in real.tolist()]) + mean([max(0, 1 + f) for f in fake.tolist()])
    )


def test_gradient_penalty_of_linear_critic():
    # D(x) = w·x has gradient w everywhere: the penalty is (|w| - 1)^2 exactly.
    w = torch.tensor([3.0, 4.0])
    critic = lambda x: x @ w  # noqa: E731
    gp = gradient_penalty(critic, torch.randn(5, 2), torch.randn(5, 2))
    assert gp.item() == pytest.approx(16.0)
    w.requires_grad_(True)
    gp = gradient_penalty(lambda x: x @ w, torch.randn(5, 2), torch.randn(5, 2))
    gp.backward()  # differentiable w.r.t. the critic's parameters
    assert torch.allclose(w.grad, 2 * (5 - 1) * w.detach() / 5)
