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


def _sides(net, x):
    """The side of the feature map after each (transposed) convolution of a DCGAN net."""
    sides = []
    for m in net.main:
        x = m(x)
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            sides.append(x.shape[-1])
    return sides


def test_dcgan_stage_order_is_an_option_and_d_mirrors_it():
    g = DCGANGenerator(144, nz=8, ngf=4, channels=3, stages=(2, 2, 3, 3))
    d = DCGANDiscriminator(144, ndf=4, channels=3, stages=(2, 2, 3, 3))
    with torch.no_grad():
        assert _sides(g, torch.randn(2, 8, 1, 1)) == [4, 8, 16, 48, 144]
        assert _sides(d, torch.randn(2, 3, 144, 144)) == [48, 16, 8, 4, 1]
    kernels = [m.kernel_size[0] for m in g.main if isinstance(m, torch.nn.ConvTranspose2d)]
    assert kernels == [4, 4, 4, 5, 5]  # the x3 stages: kernel 5, stride 3, padding 1
    # no stages: the x3 stages at the lowest resolutions, exactly the nets built before the option
    with torch.no_grad():
        assert _sides(DCGANGenerator(144, 8, 4, 3), torch.randn(2, 8, 1, 1)) == [4, 12, 36, 72, 144]
    assert repr(DCGANGenerator(96, 8, 4, 3)) == repr(
        DCGANGenerator(96, 8, 4, 3, stages=(3, 2, 2, 2))
    )
    assert repr(DCGANDiscriminator(96, 4, 3)) == repr(
        DCGANDiscriminator(96, 4, 3, stages=(3, 2, 2, 2))
    )


def test_dcgan_stages_that_do_not_reach_the_image_size_fail_in_one_line():
    from gankit.registries import build_config

    cfg = build_config("misaka-144", ["nets.G.stages=3,3,2,2", "nets.D.stages=[3, 3, 2, 2]"])
    assert cfg.nets["G"].stages == cfg.nets["D"].stages == (3, 3, 2, 2)
    for key, bad in (("G", "2,3,3"), ("G", "2,2,3,4"), ("D", "[]"), ("D", "2,2,2,2,2")):
        with pytest.raises(
            ConfigError, match=rf"nets.{key}.stages=.*2 or 3.* = 36, e.g. 3,3,2,2"
        ) as e:
            build_config("misaka-144", [f"nets.{key}.stages={bad}"])
        assert "\n" not in str(e.value)


def test_misaka_144_is_the_notes_network():
    """4→8→16→48→144 with the two stride-3 stages (kernel 5, padding 1) at the top of G, D
    mirrored; ngf = ndf = 32, nz 40. (Before 2026-12-06 the recipe had them at the bottom:
    G 1,223,104 and D 1,063,296 parameters.)"""
    from gankit.registries import build_config

    cfg = build_config("misaka-144")
    g = build_net("generator", cfg.nets["G"], 144, 3)
    d = build_net("discriminator", cfg.nets["D"], 144, 3)
    assert count_parameters(g) == 873_760
    assert count_parameters(d) == 713_952
    with torch.no_grad():
        assert _sides(g, torch.randn(2, 40, 1, 1)) == [4, 8, 16, 48, 144]
        assert _sides(d, torch.randn(2, 3, 144, 144)) == [48, 16, 8, 4, 1]
    # without stages: gankit's default order, the recipe's nets until then, count for count
    cfg = build_config("misaka-144", ["nets.G.stages=null", "nets.D.stages=null"])
    assert count_parameters(build_net("generator", cfg.nets["G"], 144, 3)) == 1_223_104
    assert count_parameters(build_net("discriminator", cfg.nets["D"], 144, 3)) == 1_063_296


def test_unsupported_size_names_nearest():
    with pytest.raises(ConfigError, match="nearest: 96 or 108"):
        check_image_size(100)
    with pytest.raises(ConfigError, match="24 or 32"):
        check_image_size(28)


def test_init_is_normal_002():
    g = build_net("generator", DCGANGeneratorOptions(arch="dcgan", ngf=64), 64, 3)
    w = g.main[3].weight  # the second transposed conv: 512*256*16 values
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001


def test_init_reaches_spectral_norm_weights():
    # a bug until 2026-12-03: spectral norm's raw weight was never initialised (N(0, 0.02) went
    # to a recomputed copy), so norm=spectral discriminators kept PyTorch's default init
    from gankit.nets.dcgan import DCGANDiscriminatorOptions

    opts = DCGANDiscriminatorOptions(arch="dcgan", ndf=64, norm="spectral", init="normal02")
    d = build_net("discriminator", opts, 64, 3)
    raw = d.main[2].parametrizations.weight.original  # the second conv: 128*64*16 values
    assert abs(raw.std().item() - 0.02) < 0.001 and abs(raw.mean().item()) < 0.001


def test_mlp_pair_cs231n_sizes():
    g = build_net("generator", MLPGeneratorOptions(arch="mlp", nz=96), 28, 1)
    d = build_net("discriminator", MLPDiscriminatorOptions(arch="mlp"), 28, 1)
    assert count_parameters(d) == 267_009
    assert count_parameters(g) == 1_952_528
    assert g(torch.rand(3, 96)).shape == (3, 1, 28, 28)
    assert d(torch.zeros(3, 1, 28, 28)).shape == (3,)


SIZES = {"mnist-dc": 28, "unet_128": 128, "unet_64": 64, "unet_256": 256}


def test_every_registered_network_builds_from_its_default_options():
    """Adding a network is one file plus one registry line: every entry must build and run."""
    for kind, archs in NETS.items():
        for arch, entry in archs.items():
            opts = entry.options(arch=arch)
            for width in ("ngf", "ndf"):  # narrow, so that a CPU runs every forward in seconds
                if hasattr(opts, width) and kind in ("translator", "patch_discriminator"):
                    setattr(opts, width, 4)
            size = SIZES.get(arch, 32)
            if entry.check is not None:
                entry.check(opts, size, 1)
            extra = {"num_classes": 3} if kind == "classifier" else {}
            net = build_net(kind, opts, size, 1, **extra).eval()
            x = torch.randn(2, opts.nz) if kind == "generator" else torch.randn(2, 1, size, size)
            with torch.no_grad():
                y = net(x)
            want = {
                "generator": (2, 1, size, size),
                "discriminator": (2,),
                "classifier": (2, 3),
                "translator": (2, 1, size, size),
            }
            if kind == "patch_discriminator":
                assert y.shape[:2] == (2, 1), (kind, arch)
            else:
                assert y.shape == want[kind], (kind, arch)


@pytest.mark.parametrize(
    "arch, norm, channels, params",
    [
        ("resnet_9blocks", "instance", 3, 11_378_179),
        ("resnet_9blocks", "batch", 3, 11_383_427),
        ("resnet_6blocks", "instance", 3, 7_837_699),
        ("unet_256", "batch", 3, 54_413_955),
        ("unet_256", "instance", 3, 54_409_603),
        ("unet_128", "batch", 3, 41_828_995),
        ("basic", "instance", 3, 2_764_737),
        ("basic", "batch", 6, 2_768_705),
    ],
)
def test_translation_nets_match_the_reference_parameter_counts(arch, norm, channels, params):
    """pytorch-CycleGAN-and-pix2pix's define_G/define_D at ngf = ndf = 64 (parameter counts of the reference classes, instantiated)."""
    kind = "patch_discriminator" if arch == "basic" else "translator"
    opts = NETS[kind][arch].options(arch=arch, norm=norm)
    assert count_parameters(build_net(kind, opts, 256, channels)) == params


def test_patchgan_scores_30x30_patches_of_a_256_image_and_instance_norm_has_no_state():
    from gankit.nets.patchgan import PatchOptions

    d = build_net("patch_discriminator", PatchOptions(arch="basic", ndf=8), 256, 3)
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert not any("running" in k for k in d.state_dict())  # affine=False, no running stats


def test_translators_keep_any_size_they_support():
    from gankit.nets.resnet import ResnetOptions

    g = build_net("translator", ResnetOptions(arch="resnet_6blocks", ngf=4), 64, 3).eval()
    for h, w in ((36, 52), (64, 40)):
        with torch.no_grad():
            assert g(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)
    with pytest.raises(ConfigError, match="multiple of 256"):
        NETS["translator"]["unet_256"].check(
            NETS["translator"]["unet_256"].options(arch="unet_256"), 200, 3
        )


def test_unknown_arch_names_the_key_and_choices():
    from gankit.nets import entry

    with pytest.raises(
        ConfigError, match=r"nets.G.arch='resnet' is not allowed: choose one of dcgan"
    ):
        entry("generator", "resnet", "nets.G.arch")


def test_resnet_padding_type_is_the_references():
    """--padding_type of pytorch-CycleGAN-and-pix2pix's ResnetBlock: reflect (default),
    replicate, or zero (the conv's own padding, no padding layer); same shapes and parameters."""
    from gankit.nets.resnet import ResnetGenerator

    nets = {p: ResnetGenerator(3, 3, 4, 2, padding=p) for p in ("reflect", "replicate", "zero")}
    counts = {p: sum(t.numel() for t in n.parameters()) for p, n in nets.items()}
    assert len(set(counts.values())) == 1
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert all(n(x).shape == (1, 3, 16, 16) for n in nets.values())
    block = nets["zero"].model[10].block
    assert not any(
        isinstance(m, torch.nn.ReflectionPad2d | torch.nn.ReplicationPad2d) for m in block
    )
    assert block[0].padding == (1, 1)  # conv_block[0] is the conv, as in the reference
    assert isinstance(nets["replicate"].model[10].block[0], torch.nn.ReplicationPad2d)
    from gankit.registries import build_config

    cfg = build_config("cyclegan-mnistm", ["nets.G_A.padding_type=zero", "data.root=x"])
    assert cfg.nets["G_A"].padding_type == "zero"
