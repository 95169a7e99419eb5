import math

import pytest
import torch

from gankit.gan.objectives import OBJECTIVES, resolve_loss
from gankit.gan.penalties import gradient_penalty, zero_centred_penalty

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
        g = obj.g_loss(big, -big) if obj.relativistic else obj.g_loss(big)
        assert torch.isfinite(obj.d_loss(big, -big)) and torch.isfinite(g)


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
    # losses are only losses; the names bring their papers' penalties
    assert resolve_loss("wgan") == (w, {"clip": 0.01})
    assert resolve_loss("wgan-gp") == (w, {"gp": 10.0})
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


def test_rpgan_pairs_real_and_fake_row_by_row():
    rp = OBJECTIVES["rpgan"]
    softplus = lambda t: math.log1p(math.exp(t))  # noqa: E731
    pairs = list(zip(real.tolist(), fake.tolist(), strict=True))
    assert rp.relativistic and not rp.probability
    assert rp.d_loss(real, fake).item() == pytest.approx(
        mean([softplus(-(r - f)) for r, f in pairs])
    )
    assert rp.g_loss(fake, real).item() == pytest.approx(
        mean([softplus(-(f - r)) for r, f in pairs])
    )
    # only the differences count: shifting every output leaves both losses unchanged
    assert rp.d_loss(real + 7, fake + 7).item() == pytest.approx(rp.d_loss(real, fake).item())


def test_zero_centred_penalty_matches_finite_differences():
    torch.manual_seed(0)
    w1, w2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    critic = lambda x: torch.tanh(x @ w1.T) @ w2  # noqa: E731 (a hand-made non-linear D)
    x = torch.randn(3, 4, dtype=torch.float64)
    h = 1e-6
    expected = 0.0
    for row in x:  # central differences of D at each sample, squared norm, batch mean
        grad = [
            (critic((row + h * e)[None]) - critic((row - h * e)[None])).item() / (2 * h)
            for e in torch.eye(4, dtype=torch.float64)
        ]
        expected += sum(g * g for g in grad) / len(x)
    assert zero_centred_penalty(critic, x).item() == pytest.approx(expected, rel=1e-6)
    w2.requires_grad_(True)  # differentiable w.r.t. D's parameters (a double backward)
    zero_centred_penalty(lambda t: torch.tanh(t @ w1.T) @ w2, x).backward()
    assert w2.grad is not None and w2.grad.abs().sum() > 0
