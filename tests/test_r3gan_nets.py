"""R3GAN nets (Huang et al. 2024): the reference's parameter counts, the fix-up init, the
[1, 3, 3, 1] resampling, shapes, the CPU demonstration config and the one-line checks."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.config.values import apply_values, parse_overrides
from gankit.errors import ConfigError
from gankit.nets import count_parameters
from gankit.nets.r3gan import (
    R3GANConditionalDiscriminator,
    R3GANConditionalGenerator,
    R3GANDiscriminator,
    R3GANDiscriminatorOptions,
    R3GANGenerator,
    R3GANGeneratorOptions,
    Resample,
    ResidualBlock,
    build_conditional_discriminator,
    build_conditional_generator,
    build_discriminator,
    build_generator,
    check,
    resampling_filter,
)

CPU = (128, 128, 64, 32)


def options(widths=CPU, blocks: int = 2, group_width: int = 16):
    g = R3GANGeneratorOptions(arch="r3gan", widths=widths, blocks=blocks, group_width=group_width)
    d = R3GANDiscriminatorOptions(
        arch="r3gan", widths=widths, blocks=blocks, group_width=group_width
    )
    return g, d


def nets(widths=CPU, size=32, channels=3, num_classes=0, **kwargs):
    g_opts, d_opts = options(widths, **kwargs)
    if num_classes:
        return (
            build_conditional_generator(g_opts, size, channels, num_classes),
            build_conditional_discriminator(d_opts, size, channels, num_classes),
        )
    return build_generator(g_opts, size, channels), build_discriminator(d_opts, size, channels)


@pytest.mark.parametrize(
    "widths, size, group_width, num_classes, g_params, d_params",
    [
        ((768,) * 4, 32, 16, 0, 20_732_160, 20_683_776),  # CIFAR-10
        ((768,) * 4, 32, 16, 10, 20_781_952, 21_280_512),  # CIFAR-10, conditional
        ((768,) * 4 + (384,), 64, 16, 0, 22_429_824, 22_381_440),  # FFHQ-64
        ((768,) * 4 + (384, 192, 96), 256, 16, 0, 23_057_952, 23_009_568),  # FFHQ-256
        ((1536,) * 4, 32, 32, 1000, 82_914_304, 86_548_992),  # ImageNet-32
        ((1536,) * 5, 64, 32, 1000, 103_570_432, 107_205_120),  # ImageNet-64
    ],
)
def test_parameter_counts_equal_the_reference(
    widths, size, group_width, num_classes, g_params, d_params
):
    with torch.device("meta"):  # shapes only: no memory for 100M parameters
        g, d = nets(widths, size, 3, num_classes, group_width=group_width)
    assert count_parameters(g) == g_params
    assert count_parameters(d) == d_params


@pytest.mark.parametrize(
    "channels, g_params, d_params", [(3, 274_912, 266_848), (1, 274_848, 266_784)]
)
def test_cpu_config_builds_and_trains_a_step(channels, g_params, d_params):
    g, d = nets(CPU, 32, channels, blocks=1)
    assert (count_parameters(g), count_parameters(d)) == (g_params, d_params)
    z = torch.randn(8, 64)
    images = g(z)
    assert images.shape == (8, channels, 32, 32)
    logits = d(images)
    assert logits.shape == (8,)
    logits.sum().backward()
    grads = [p.grad for p in (*g.parameters(), *d.parameters())]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)


def test_conditional_shapes_and_labels_matter():
    torch.manual_seed(0)
    g, d = nets((32, 32, 16), 16, 1, num_classes=5, blocks=1)
    assert isinstance(g, R3GANConditionalGenerator)
    assert isinstance(d, R3GANConditionalDiscriminator)
    z, y = torch.randn(4, 64), torch.tensor([0, 1, 2, 4])
    images = g(z, y)
    assert images.shape == (4, 1, 16, 16)
    assert not torch.equal(images, g(z, torch.tensor([3, 3, 3, 3])))
    logits, aux = d(images, y)
    assert logits.shape == (4,) and aux is None  # gankit's label-taking D: (logits, aux)
    assert d.features(images).shape == (4, 32)  # φ(x) has the 4×4 stage's width
    assert not hasattr(d, "logit")  # no separate unconditional logit


def test_fresh_residual_branches_are_exactly_zero():
    torch.manual_seed(0)
    g, d = nets(CPU, 32, 3)
    seen = []

    def identity(block, inputs, output):
        seen.append(torch.equal(output, inputs[0]))
        assert not block.branch(inputs[0]).any()

    for net in (g, d):
        for m in net.modules():
            if isinstance(m, ResidualBlock):
                m.register_forward_hook(identity)
    d(g(torch.randn(2, 64)))
    assert len(seen) == 2 * 2 * len(CPU) and all(seen)


def test_fixup_init_gains():
    torch.manual_seed(0)
    g = R3GANGenerator(CPU, blocks=2)
    block = g.stages[0][0]
    depth = (2 * len(CPU)) ** -0.25  # L = 8 blocks in G: L^(-1/4) = 0.595, the page's figure
    assert depth == pytest.approx(0.595, abs=1e-3)
    gain = math.sqrt(2 / 1.04) * depth  # times LeakyReLU 0.2's gain: 0.825
    first, grouped, last = block.branch[0], block.branch[2], block.branch[4]
    assert first.weight.std().item() == pytest.approx(gain / math.sqrt(128), rel=0.03)
    assert grouped.weight.std().item() == pytest.approx(gain / math.sqrt(16 * 9), rel=0.03)
    assert grouped.groups == 256 // 16
    assert not last.weight.any()
    assert all(not m.bias.any() for m in block.branch if hasattr(m, "bias") and m.bias is not None)
    assert all(getattr(m, "bias", None) is None for m in g.modules() if hasattr(m, "weight"))
    d = R3GANConditionalDiscriminator((64, 32), 10, blocks=1)
    assert d.embed.weight.std().item() == pytest.approx(1 / math.sqrt(64 * 10), rel=0.1)
    assert d.spatial.weight.std().item() == pytest.approx(1 / 4, rel=0.1)


def test_resampling_filter_and_constant_images():
    f = resampling_filter()
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    assert torch.allclose(f, torch.outer(k, k) / 64)
    assert f.sum().item() == pytest.approx(1.0)
    up, down = Resample(up=True), Resample(up=False)
    assert not list(up.parameters()) and "filter" not in up.state_dict()
    x = torch.full((2, 3, 8, 8), 0.7)
    big = up(x)
    assert big.shape == (2, 3, 16, 16)
    assert torch.allclose(big[..., 1:-1, 1:-1], torch.full_like(big[..., 1:-1, 1:-1], 0.7))
    small = down(torch.full((2, 3, 16, 16), 0.7))
    assert small.shape == (2, 3, 8, 8)
    assert torch.allclose(small[..., 1:-1, 1:-1], torch.full((2, 3, 6, 6), 0.7))


@pytest.mark.parametrize("size, widths", [(8, (16, 16)), (64, (32, 32, 16, 16, 16))])
def test_shapes_follow_the_number_of_widths(size, widths):
    g, d = nets(widths, size, 3, blocks=1)
    assert g(torch.randn(3, 64)).shape == (3, 3, size, size)
    assert d(torch.randn(3, 3, size, size)).shape == (3,)


def test_outputs_are_unbounded_no_tanh():
    g = R3GANGenerator((16, 16), channels=1, blocks=1)
    assert not any(isinstance(m, torch.nn.Tanh) for m in g.modules())


def test_widths_from_the_command_line():
    for raw in ("nets.G.widths=128,128,64,32", "nets.G.widths=[128,128,64,32]"):
        opts = R3GANGeneratorOptions(arch="r3gan")
        apply_values(opts, parse_overrides([raw])["nets"]["G"], "nets.G.")
        assert opts.widths == CPU
    opts = R3GANDiscriminatorOptions(arch="r3gan")
    with pytest.raises(ConfigError, match=r"^nets\.D\.widths='x' has the wrong type"):
        apply_values(opts, {"widths": "64,x"}, "nets.D.")
    assert "init" not in vars(R3GANGeneratorOptions())  # R3GAN's own init, not normal02


@pytest.mark.parametrize(
    "role, change, size, message",
    [
        (
            "G",
            {},
            64,
            r"nets\.G\.widths has 4 stages, which build 32×32 images; "
            r"data\.image_size is 64: give 5 widths",
        ),
        ("D", {}, 48, r"nets\.D\.widths has 4 stages.*data\.image_size is 48: r3gan builds"),
        (
            "G",
            {"widths": (128, 100)},
            8,
            r"nets\.G\.widths=128,100: 100×nets\.G\.expansion=2 "
            r"is not a multiple of nets\.G\.group_width=16",
        ),
        ("D", {"group_width": 0}, 32, r"nets\.D\.group_width=0 must be positive"),
        ("G", {"nz": 0}, 32, r"nets\.G\.nz=0 must be positive"),
        ("D", {"widths": ()}, 4, r"nets\.D\.widths= must be positive"),
    ],
)
def test_check_errors_are_one_line_naming_the_option(role, change, size, message):
    g_opts, d_opts = options()
    opts = g_opts if role == "G" else d_opts
    for key, value in change.items():
        setattr(opts, key, value)
    with pytest.raises(ConfigError, match=message) as err:
        check(opts, size, 3)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        (build_generator if role == "G" else build_discriminator)(opts, size, 3)


def test_discriminator_reverses_the_widths():
    d = R3GANDiscriminator((64, 32, 16), channels=3, blocks=1)
    assert d.from_image.out_channels == 16
    assert d.spatial.in_channels == 64
