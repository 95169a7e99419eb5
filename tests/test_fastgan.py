"""FastGAN nets (Liu et al. 2021): shapes, skip-layer excitation, reconstruction, a short run."""

from __future__ import annotations

import pytest
import torch

from gankit.errors import ConfigError
from gankit.inference.roles import ReconstructingDiscriminator
from gankit.nets import NETS, build_net, count_parameters
from gankit.nets.fastgan import (
    FastGANDiscriminatorOptions,
    FastGANGeneratorOptions,
    SkipLayerExcitation,
    build_discriminator,
    build_generator,
    check,
    sle_pairs,
)


def nets(size: int, channels: int, width: int = 8, nz: int = 16, **d_extra):
    g_opts = FastGANGeneratorOptions(arch="fastgan", nz=nz, ngf=width)
    d_opts = FastGANDiscriminatorOptions(arch="fastgan", ndf=width, **d_extra)
    return build_generator(g_opts, size, channels), build_discriminator(d_opts, size, channels)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range(size, channels):
    torch.manual_seed(0)
    g, d = nets(size, channels)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, channels, size, size)
    assert x.abs().max() <= 1
    assert g(torch.randn(2, 16, 1, 1)).shape == x.shape
    assert d(x).shape == (2,)
    assert isinstance(d, ReconstructingDiscriminator)


def test_registry_builds_both():
    g = build_net("generator", FastGANGeneratorOptions(arch="fastgan", nz=8, ngf=4), 32, 3)
    d = build_net("discriminator", FastGANDiscriminatorOptions(arch="fastgan", ndf=4), 32, 3)
    assert d(g(torch.randn(2, 8))).shape == (2,)
    assert NETS["generator"]["fastgan"].check is check


def test_sle_gate_in_unit_interval_and_channelwise():
    torch.manual_seed(0)
    sle = SkipLayerExcitation(6, 5)
    low, high = torch.randn(2, 6, 8, 8), torch.randn(2, 5, 32, 32)
    gate = sle.gate(low)
    assert gate.shape == (2, 5, 1, 1)
    assert ((gate > 0) & (gate < 1)).all()
    conv4, conv1 = sle.main[1], sle.main[3]
    pooled = torch.nn.functional.adaptive_avg_pool2d(low, 4)
    manual = torch.sigmoid(conv1(torch.nn.functional.silu(conv4(pooled))))
    torch.testing.assert_close(gate, manual)
    torch.testing.assert_close(sle(low, high), high * manual.expand_as(high))


def test_sle_pairs():
    assert sle_pairs(256) == [(4, 64), (8, 128), (16, 256)]
    assert sle_pairs(64) == [(4, 64)]
    assert sle_pairs(32) == [(4, 32)]


@pytest.mark.parametrize("size, recon", [(32, 128), (64, 16)])
def test_reconstruction_loss_backprops_to_decoders_and_body(size, recon):
    torch.manual_seed(0)
    _, d = nets(size, 3, recon_size=recon)
    x = torch.rand(2, 3, size, size) * 2 - 1
    loss = d.reconstruction_loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    for part in (d.decode_whole, d.decode_part, d.body[0], d.body[-1]):
        grads = [p.grad for p in part.parameters()]
        assert all(gr is not None for gr in grads) and any(gr.abs().sum() > 0 for gr in grads)
    logits, loss2 = d(x, reconstruct=True)
    assert logits.shape == (2,) and torch.isfinite(loss2)


def test_trains_a_few_steps_at_256():
    torch.manual_seed(0)
    g, d = nets(256, 3, width=16, nz=32)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(2, 3, 256, 256) * 2 - 1
    before = [p.detach().clone() for p in g.parameters()]
    for _ in range(3):
        fake = g(torch.randn(2, 32))
        logits_real, recon = d(real, reconstruct=True)
        loss_d = (
            torch.relu(1 - logits_real).mean() + torch.relu(1 + d(fake.detach())).mean() + recon
        )
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = -d(fake).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters(), strict=True))


def test_default_parameter_counts_at_256():
    g, d = nets(256, 3, width=64, nz=256)
    assert 5e6 <= count_parameters(g) <= 60e6
    assert 2e6 <= count_parameters(d) <= 30e6
    # the counts in gankit.nets.fastgan's docstring
    assert (count_parameters(g), count_parameters(d)) == (24_037_600, 7_252_432)


@pytest.mark.parametrize("size", [16, 48])
def test_check_rejects_unsupported_sizes(size):
    with pytest.raises(ConfigError, match=rf"data.image_size={size} .*nets\.G"):
        check(FastGANGeneratorOptions(arch="fastgan"), size, 3)
    with pytest.raises(ConfigError, match=rf"data.image_size={size} .*nets\.D"):
        check(FastGANDiscriminatorOptions(arch="fastgan"), size, 3)


def test_check_rejects_bad_widths_and_recon_size():
    with pytest.raises(ConfigError, match="nets.G.ngf"):
        check(FastGANGeneratorOptions(arch="fastgan", ngf=0), 64, 3)
    with pytest.raises(ConfigError, match="nets.D.recon_size"):
        check(FastGANDiscriminatorOptions(arch="fastgan", recon_size=100), 64, 3)


@pytest.mark.parametrize("wrapper", ["gan.conditional=projection", "gan.mbstd=true"])
def test_a_d_wrapper_that_would_drop_the_reconstruction_is_refused(tmp_path, capsys, wrapper):
    from gankit.cli import main

    from conftest import TINY

    argv = [
        "train",
        "dcgan-mnist",
        *TINY,
        "data.source=builtin:mnist",
        "data.image_size=32",
        "nets.G.arch=fastgan",
        "nets.D.arch=fastgan",
        "nets.G.ngf=4",
        "nets.D.ndf=4",
        wrapper,
        "train.steps=1",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{wrapper.split('=')[0]}" in err and "nets.D.arch=fastgan" in err
    assert "Traceback" not in err
