"""The stabilisers against their definitions: VBN, unrolling, minibatch layers, matching, noise."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from gankit.errors import ConfigError
from gankit.gan.stabilisers import (
    MinibatchDiscrimination,
    MinibatchStdDev,
    VirtualBatchNorm,
    VirtualBatchNormNet,
    feature_matching_loss,
    instance_noise,
    instance_noise_std,
    penultimate,
    unrolled_parameters,
)
from gankit.gan.stabilisers.vbn import convert_batchnorm


def _mlp(norm: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), norm, nn.Tanh(), nn.Linear(8, 2))


def test_virtual_batch_norm_output_of_a_sample_ignores_the_rest_of_its_batch():
    ref = torch.randn(16, 4)
    net = VirtualBatchNormNet(_mlp(VirtualBatchNorm(8)), ref)
    a = torch.randn(5, 4)
    b = torch.cat([a[:1], torch.randn(7, 4) * 3 + 1])
    torch.testing.assert_close(net(a)[0], net(b)[0])
    torch.testing.assert_close(net(a[:1])[0], net(a)[0])
    # Plain batch norm (training mode) fails the same check: the test can tell them apart.
    bn = _mlp(nn.BatchNorm1d(8))
    assert not torch.allclose(bn(a)[0], bn(b)[0], atol=1e-4)


def test_virtual_batch_norm_on_images_and_its_reference_is_a_saved_buffer():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    vnet = VirtualBatchNormNet(convert_batchnorm(net), torch.randn(6, 3, 5, 5))
    x = torch.randn(3, 3, 5, 5)
    y = torch.cat([x[:1], torch.randn(2, 3, 5, 5)])
    torch.testing.assert_close(vnet(x)[0], vnet(y)[0])
    assert "reference" in vnet.state_dict()
    # Against the definition: one sample joined with the reference, per channel over positions.
    h_ref, h = net[0](vnet.reference), net[0](x[:1])
    joined = torch.cat([h_ref, h])
    mean = joined.mean((0, 2, 3), keepdim=True)
    var = joined.var((0, 2, 3), unbiased=False, keepdim=True)
    expect = F.relu((h - mean) / (var + 1e-5).sqrt())
    torch.testing.assert_close(vnet(x[:1]), expect, atol=1e-5, rtol=1e-4)


def _pair():
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))
    return G, D


def _d_loss(D, params, real, fake):
    d = functional_call(D, params, (torch.cat([real, fake]),))
    return F.softplus(-d[: len(real)]).mean() + F.softplus(d[len(real) :]).mean()


def test_unrolling_zero_steps_gives_the_plain_generator_gradient():
    G, D = _pair()
    opt = torch.optim.Adam(D.parameters(), lr=0.1)
    z, real = torch.randn(8, 3), torch.randn(8, 2)
    plain = torch.autograd.grad(F.softplus(-D(G(z))).mean(), list(G.parameters()))
    params = unrolled_parameters(D, lambda p, i: _d_loss(D, p, real, G(z)), 0, opt)
    unrolled = torch.autograd.grad(
        F.softplus(-functional_call(D, params, (G(z),))).mean(), list(G.parameters())
    )
    for a, b in zip(plain, unrolled, strict=True):
        torch.testing.assert_close(a, b)


def test_the_generator_gradient_flows_through_the_unrolled_steps():
    """Autograd through two SGD look-ahead steps equals a finite difference of the surrogate loss,
    and differs from the first-order gradient that treats D_k as a constant."""
    G, D = _pair()
    G.double(), D.double()
    opt = torch.optim.SGD(D.parameters(), lr=0.5)
    z, real = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)

    def surrogate() -> torch.Tensor:
        params = unrolled_parameters(D, lambda p, i: _d_loss(D, p, real, G(z)), 2, opt)
        return F.softplus(-functional_call(D, params, (G(z),))).mean()

    w = G[0].weight
    (grad,) = torch.autograd.grad(surrogate(), [w])
    h = 1e-6
    values = []
    for shift in (h, -2 * h, h):
        with torch.no_grad():
            w[0, 0] += shift
        values.append(surrogate().item())
    up, down = values[0], values[1]
    assert grad[0, 0].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)
    params = {
        k: v.detach()
        for k, v in unrolled_parameters(D, lambda p, i: _d_loss(D, p, real, G(z)), 2, opt).items()
    }
    (first_order,) = torch.autograd.grad(
        F.softplus(-functional_call(D, params, (G(z),))).mean(), [w]
    )
    assert not torch.allclose(first_order, grad, rtol=1e-3)


def test_an_unrolled_adam_step_is_the_step_adam_takes():
    G, D = _pair()
    opt = torch.optim.Adam(D.parameters(), lr=0.01, betas=(0.5, 0.999))
    z, real = torch.randn(8, 3), torch.randn(8, 2)
    for _ in range(3):  # some optimizer state first
        opt.zero_grad()
        _d_loss(D, dict(D.named_parameters()), real, G(z).detach()).backward()
        opt.step()
    params = unrolled_parameters(D, lambda p, i: _d_loss(D, p, real, G(z).detach()), 1, opt)
    twin = copy.deepcopy(D)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=0.01, betas=(0.5, 0.999))
    twin_opt.load_state_dict(opt.state_dict())
    twin_opt.zero_grad()
    _d_loss(twin, dict(twin.named_parameters()), real, G(z).detach()).backward()
    twin_opt.step()
    for name, p in twin.named_parameters():
        torch.testing.assert_close(params[name], p, atol=1e-6, rtol=1e-5)
    # D itself has not moved.
    for (name, p), (_, q) in zip(D.named_parameters(), twin.named_parameters(), strict=True):
        assert not torch.equal(p, q), name


def test_unrolling_refuses_optimizers_it_cannot_differentiate():
    _, D = _pair()
    with pytest.raises(ConfigError, match="Adam and SGD"):
        unrolled_parameters(
            D, lambda p, i: p["0.bias"].sum(), 1, torch.optim.RMSprop(D.parameters())
        )
    with pytest.raises(ConfigError, match="momentum"):
        unrolled_parameters(
            D, lambda p, i: p["0.bias"].sum(), 1, torch.optim.SGD(D.parameters(), 0.1, momentum=0.9)
        )


def test_minibatch_discrimination_sees_identical_batches():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(6, kernels=10, kernel_dim=3)
    same = torch.randn(1, 6).repeat(8, 1)
    diverse = torch.randn(8, 6) * 3
    o_same, o_div = mbd(same)[:, 6:], mbd(diverse)[:, 6:]
    assert mbd(same).shape == (8, 16)
    torch.testing.assert_close(mbd(same)[:, :6], same)
    # every other sample is at L1 distance 0: o = N - 1 for each kernel, self-pair excluded
    torch.testing.assert_close(o_same, torch.full((8, 10), 7.0))
    assert (o_div < o_same).all()
    # against the definition for one sample and one kernel
    m = (diverse @ mbd.T).view(8, 10, 3)
    c = torch.exp(-(m[0, 4] - m[1:, 4]).abs().sum(-1)).sum()
    torch.testing.assert_close(o_div[0, 4], c)


def test_minibatch_stddev_layer():
    layer = MinibatchStdDev(group_size=4)
    same = torch.ones(8, 3, 4, 4)
    out = layer(same)
    assert out.shape == (8, 4, 4, 4)
    assert out[:, 3].abs().max() < 1e-3
    x = torch.randn(8, 3, 4, 4)
    out = layer(x)
    # group k holds samples k, k+2, k+4, k+6 (a (4, 2, ...) view); its std averaged
    group0 = x[[0, 2, 4, 6]].std(0, unbiased=False).mean()
    torch.testing.assert_close(out[0, 3, 0, 0], group0, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[6, 3], out[0, 3])
    assert layer(torch.randn(6, 5)).shape == (6, 6)  # 6 % 4 != 0: one group of all


def test_feature_matching_and_penultimate_features():
    _, D = _pair()
    x = torch.randn(5, 2)
    out, feats = penultimate(D, x)
    assert feats.shape == (5, 16) and out.shape == (5,)
    torch.testing.assert_close(D[2](feats).flatten(), out)
    a, b = torch.randn(10, 4), torch.randn(10, 4)
    torch.testing.assert_close(feature_matching_loss(a, a), torch.tensor(0.0))
    torch.testing.assert_close(feature_matching_loss(a, b), ((a.mean(0) - b.mean(0)) ** 2).sum())


def test_instance_noise_is_annealed_to_zero():
    assert instance_noise_std(0.2, 0, 100) == pytest.approx(0.2)
    assert instance_noise_std(0.2, 50, 100) == pytest.approx(0.1)
    assert instance_noise_std(0.2, 100, 100) == 0.0
    x = torch.zeros(2000, 2)
    assert instance_noise(x, 0.0) is x
    assert instance_noise(x, 0.5, torch.Generator().manual_seed(0)).std().item() == pytest.approx(
        0.5, rel=0.05
    )


@pytest.mark.parametrize(
    "switches",
    [
        ["gan.feature_matching=true", "gan.instance_noise=0.1"],
        ["gan.minibatch=4"],
        ["gan.mbstd=true", "gan.conditional=projection", "data.source=builtin:mnist"],
        ["gan.vbn=true"],
        ["gan.feature_matching=true", "gan.conditional=acgan", "data.source=builtin:mnist"],
    ],
)
def test_the_image_gan_trains_with_each_stabiliser(switches, tmp_path):
    from gankit.cli import main
    from gankit.inference.loading import load_run

    from conftest import TINY

    out = tmp_path / "run"
    assert main(["train", "dcgan-mnist", *TINY, *switches, "train.steps=2", "--out", str(out)]) == 0
    model = load_run(out).model
    z = model.noise(4)
    images = model.sample(z)
    assert images.shape == (4, 1, 16, 16) and torch.isfinite(images).all()
    if "gan.vbn=true" in switches:
        # virtual batch norm: a sample's image does not depend on the rest of its batch
        torch.testing.assert_close(model.sample(z[:1])[0], images[0])
        assert isinstance(model.G, VirtualBatchNormNet)
        assert model.G.reference.abs().sum() > 0  # the reference batch came back from the run
        assert (
            main(["export", str(out), "--out", str(tmp_path / "g.onnx"), "--format", "onnx"]) == 2
        )
        assert not (tmp_path / "g.onnx").exists()  # refused in one line: use gankit sample


def test_stabiliser_settings_that_cannot_work_are_refused(tmp_path, capsys):
    from gankit.cli import main

    from conftest import TINY

    mlp = [
        o
        for o in TINY
        if not o.startswith(("nets.G.ngf", "nets.D.ndf", "nets.G.arch", "nets.D.arch"))
    ]
    cases = [
        ([*TINY, "gan.minibatch=4", "gan.mbstd=true"], "one of gan.minibatch and gan.mbstd"),
        ([*mlp, "gan.vbn=true", "nets.G.arch=mlp", "nets.D.arch=mlp"], "has no BatchNorm layer"),
        ([*TINY, "gan.vbn=true", "gan.conditional=concat"], "unconditional"),
    ]
    for argv, message in cases:
        assert (
            main(["train", "dcgan-mnist", *argv, "train.steps=1", "--out", str(tmp_path / "x")])
            == 2
        )
        assert message in capsys.readouterr().err


def test_last_layer_of_a_spectrally_normalised_net_is_its_conv_not_the_norms_holder():
    """Bug: with nets.D.norm=spectral (parametrizations), last_layer found the ParametrizationList
    holding the raw weight, whose forward hook sees no inputs (cgan-cifar10 crashed)."""
    from torch.nn.utils.parametrizations import spectral_norm

    from gankit.gan.stabilisers.matching import last_layer, penultimate

    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), spectral_norm(nn.Conv2d(4, 1, 3, bias=False))
    )
    assert last_layer(net) is net[2]
    out, feats = penultimate(net, torch.zeros(2, 1, 7, 7), last_layer(net))
    assert feats.shape == (2, 4, 5, 5) and out.shape == (2, 1, 3, 3)
