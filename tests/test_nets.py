import pytest
import torch

from gankit.errors import ConfigError
from gankit.nets import NETS, build_net, check_image_size, count_parameters, stage_factors
from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator, DCGANGeneratorOptions
from gankit.nets.mlp import MLPDiscriminatorOptions, MLPGeneratorOptions


def test_dcgan64_matches_pytorch_examples_parameter_counts():
    assert count_parameters(DCGANGenerator(64, nz=100, ngf=64, channels=3)) == 3_576_704
    assert count_parameters(DCGANDiscriminator(64, ndf=64, channels=3)) == 2_765_568


@pytest.mark.parametrize("size", [16, 24, 32, 48, 64, 96, 128, 144, 192])
@pytest.mark.parametrize("upsample", ["deconv", "nearest"])
def test_every_supported_size_round_trips(size, upsample):
    g = DCGANGenerator(size, nz=8, ngf=4, channels=3, upsample=upsample, n_extra_layers=1)
    d = DCGANDiscriminator(size, ndf=4, channels=3, n_extra_layers=1, norm="spectral")
    x = g(torch.randn(2, 8))
    assert x.shape == (2, 3, size, size)
    assert x.abs().max() <= 1
    assert d(x).shape == (2,)


def test_stage_factors():
    assert stage_factors(64) == [2, 2, 2, 2]
    assert stage_factors(144) == [3, 3, 2, 2]
    assert stage_factors(96) == [3, 2, 2, 2]
    assert stage_factors(100) is None and stage_factors(28) is None


def test_unsupported_size_names_nearest():
    with pytest.raises(ConfigError, match="nearest: 96 or 108"):
        check_image_size(100)
    with pytest.raises(ConfigError, match="24 or 32"):
        check_image_size(28)


def test_init_is_normal_002():
    g = build_net("generator", DCGANGeneratorOptions(arch="dcgan", ngf=64), 64, 3)
    w = g.main[3].weight  # the second transposed conv: 512*256*16 values
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001


def test_mlp_pair_cs231n_sizes():
    g = build_net("generator", MLPGeneratorOptions(arch="mlp", nz=96), 28, 1)
    d = build_net("discriminator", MLPDiscriminatorOptions(arch="mlp"), 28, 1)
    assert count_parameters(d) == 267_009
    assert count_parameters(g) == 1_952_528
    assert g(torch.rand(3, 96)).shape == (3, 1, 28, 28)
    assert d(torch.zeros(3, 1, 28, 28)).shape == (3,)


def test_every_registered_network_builds_from_its_default_options():
    """Adding a network is one file plus one registry line: every entry must build and run."""
    for kind, archs in NETS.items():
        for arch, entry in archs.items():
            opts = entry.options(arch=arch)
            size = 28 if arch == "mnist-dc" else 32
            if entry.check is not None:
                entry.check(opts, size, 1)
            extra = {"num_classes": 3} if kind == "classifier" else {}
            net = build_net(kind, opts, size, 1, **extra).eval()
            x = torch.randn(2, opts.nz) if kind == "generator" else torch.randn(2, 1, size, size)
            y = net(x)
            want = {"generator": (2, 1, size, size), "discriminator": (2,), "classifier": (2, 3)}
            assert y.shape == want[kind], (kind, arch)


def test_unknown_arch_names_the_key_and_choices():
    from gankit.nets import entry

    with pytest.raises(
        ConfigError, match=r"nets.G.arch='resnet' is not allowed: choose one of dcgan"
    ):
        entry("generator", "resnet", "nets.G.arch")
