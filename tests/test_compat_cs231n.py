"""The cs231n GAN assignment's API (gankit.compat.cs231n), its nets and its three recipes."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from gankit.compat import cs231n
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.errors import ConfigError
from gankit.gan.options import GanOptions
from gankit.nets import build_net, count_parameters
from gankit.nets.mnist_dc import (
    MnistDCDiscriminator,
    MnistDCDiscriminatorOptions,
    MnistDCGenerator,
    MnistDCGeneratorOptions,
)
from gankit.registries import build_config

RECIPES = ["cs231n-gan", "cs231n-lsgan", "cs231n-dcgan"]


# --- the course's own layer lists, to check that the wrappers start from the same weights ------


def course_discriminator() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256),
        nn.LeakyReLU(0.01),
        nn.Linear(256, 256),
        nn.LeakyReLU(0.01),
        nn.Linear(256, 1),
    )


def course_generator(noise_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(noise_dim, 1024),
        nn.ReLU(),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, 784),
        nn.Tanh(),
    )


def course_dc_classifier() -> nn.Sequential:
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 32, 5, 1),
        nn.LeakyReLU(0.01),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 5, 1),
        nn.LeakyReLU(0.01),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 64, 4 * 4 * 64),
        nn.LeakyReLU(0.01),
        nn.Linear(4 * 4 * 64, 1),
    )


def course_dc_generator(noise_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(noise_dim, 1024),
        nn.ReLU(),
        nn.BatchNorm1d(1024),
        nn.Linear(1024, 7 * 7 * 128),
        nn.ReLU(),
        nn.BatchNorm1d(7 * 7 * 128),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, 2, 1),
        nn.ReLU(),
        nn.BatchNorm2d(64),
        nn.ConvTranspose2d(64, 1, 4, 2, 1),
        nn.Tanh(),
        nn.Flatten(),
    )


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    pa, pb = list(a.parameters()), list(b.parameters())
    return len(pa) == len(pb) and all(torch.equal(x, y) for x, y in zip(pa, pb, strict=True))


# --- networks --------------------------------------------------------------------------------


def test_parameter_counts_match_the_course():
    assert cs231n.count_params(cs231n.discriminator()) == 267_009
    assert cs231n.count_params(cs231n.generator(4)) == 1_858_320
    assert cs231n.count_params(cs231n.generator()) == 1_952_528
    assert cs231n.count_params(cs231n.build_dc_classifier(128)) == 1_102_721
    assert cs231n.count_params(cs231n.build_dc_generator(4)) == 6_580_801
    assert count_parameters(MnistDCDiscriminator()) == 1_102_721


def test_course_shapes():
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    for d in (cs231n.discriminator(), cs231n.build_dc_classifier(5)):
        assert d(x).shape == (5, 1)
        assert torch.equal(d(x), d(x.view(5, 784)))  # the course feeds both layouts
    z = cs231n.sample_noise(5, cs231n.NOISE_DIM)
    for g in (cs231n.generator(), cs231n.build_dc_generator()):
        img = g(z)
        assert img.shape == (5, 784) and img.abs().max() <= 1


def test_gankit_nets_shapes():
    d, g = MnistDCDiscriminator(), MnistDCGenerator(nz=8)
    img = g(torch.rand(3, 8))
    assert img.shape == (3, 1, 28, 28)
    assert d(img).shape == (3,)


@pytest.mark.parametrize(
    ("ours", "course"),
    [
        (lambda: cs231n.discriminator(seed=7), course_discriminator),
        (lambda: cs231n.generator(4, seed=7), lambda: course_generator(4)),
    ],
)
def test_seeded_nets_start_from_the_course_weights(ours, course):
    net = ours()  # seeds the global RNG itself, as the course's builders do
    torch.manual_seed(7)
    assert same_weights(net, course())


def test_dc_nets_with_initialize_weights_match_the_course():
    torch.manual_seed(3)
    d, g = cs231n.build_dc_classifier(8), cs231n.build_dc_generator()
    d.apply(cs231n.initialize_weights)
    g.apply(cs231n.initialize_weights)
    torch.manual_seed(3)
    d_ref, g_ref = course_dc_classifier(), course_dc_generator(96)
    d_ref.apply(cs231n.initialize_weights)
    g_ref.apply(cs231n.initialize_weights)
    assert same_weights(d, d_ref) and same_weights(g, g_ref)
    z = cs231n.sample_noise(8, 96, seed=0)
    assert torch.allclose(g(z), g_ref(z)) and torch.allclose(d(g(z)), d_ref(g_ref(z)))


def test_mnist_dc_registered_and_28_only():
    g_opts = MnistDCGeneratorOptions(arch="mnist-dc", nz=96)
    d_opts = MnistDCDiscriminatorOptions(arch="mnist-dc")
    assert build_net("generator", g_opts, 28, 1)(torch.rand(2, 96)).shape == (2, 1, 28, 28)
    assert count_parameters(build_net("discriminator", d_opts, 28, 1)) == 1_102_721
    for kind, opts in (("generator", g_opts), ("discriminator", d_opts)):
        with pytest.raises(ConfigError, match="image_size=32 is not supported by mnist-dc") as e:
            build_net(kind, opts, 32, 1)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="image_size=32 is not supported by mnist-dc"):
        build_config("cs231n-dcgan", ["data.image_size=32"])


# --- noise and optimizer ---------------------------------------------------------------------


def test_sample_noise_range_and_seeding():
    z = cs231n.sample_noise(1000, 4)
    assert z.shape == (1000, 4) and z.min() >= -1 and z.max() < 1
    assert z.min() < -0.9 and z.max() > 0.9
    assert torch.equal(cs231n.sample_noise(3, 4, seed=231), cs231n.sample_noise(3, 4, seed=231))
    torch.manual_seed(231)  # the course's check seeds the global RNG itself
    assert torch.equal(torch.rand(3, 4) * 2 - 1, cs231n.sample_noise(3, 4, seed=231))


def test_get_optimizer_hyper_parameters():
    opt = cs231n.get_optimizer(cs231n.discriminator())
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["lr"] == 1e-3 and tuple(group["betas"]) == (0.5, 0.999)


# --- losses against the formulas, in plain NumPy ---------------------------------------------


def np_bce(x: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))))


@pytest.fixture
def logits():
    rng = np.random.default_rng(231)
    return rng.normal(0, 2, (10, 1)), rng.normal(0, 2, (10, 1))


def expected(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    ones, zeros = np.ones_like(real), np.zeros_like(real)
    return {
        "d": np_bce(real, ones) + np_bce(fake, zeros),
        "g": np_bce(fake, ones),
        "ls_d": 0.5 * float(np.mean((real - 1) ** 2)) + 0.5 * float(np.mean(fake**2)),
        "ls_g": 0.5 * float(np.mean((fake - 1) ** 2)),
    }


def ours(real, fake) -> dict:
    return {
        "d": cs231n.discriminator_loss(real, fake),
        "g": cs231n.generator_loss(fake),
        "ls_d": cs231n.ls_discriminator_loss(real, fake),
        "ls_g": cs231n.ls_generator_loss(fake),
    }


def rel_error(a: float, b: float) -> float:
    return abs(a - b) / max(1e-8, abs(a) + abs(b))  # the course's rel_error


def test_losses_on_arrays_return_floats_equal_to_the_formulas(logits):
    real, fake = logits
    want = expected(real, fake)
    for name, value in ours(real, fake).items():
        assert type(value) is float
        assert rel_error(value, want[name]) < 1e-6, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_on_tensors_of_either_shape(logits, dtype):
    real, fake = (torch.tensor(a, dtype=dtype) for a in logits)
    want = expected(*logits)
    column, flat = ours(real, fake), ours(real.view(-1), fake.view(-1))
    for name in want:
        assert isinstance(column[name], torch.Tensor) and column[name].dim() == 0
        assert torch.equal(column[name], flat[name])
        assert rel_error(column[name].item(), want[name]) < 1e-6, name


def test_bce_loss(logits):
    x, _ = logits
    t = (np.arange(10) % 2).reshape(10, 1).astype(np.float64)
    assert rel_error(cs231n.bce_loss(x, t), np_bce(x, t)) < 1e-6
    got = cs231n.bce_loss(torch.tensor(x), torch.tensor(t).view(-1))
    assert rel_error(got.item(), np_bce(x, t)) < 1e-6
    big = np.array([1000.0, -1000.0])  # stable: no overflow in exp
    assert math.isclose(cs231n.bce_loss(big, np.array([0.0, 1.0])), 1000.0)


# --- recipes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "arch", "loss", "epochs"), [
    ("cs231n-gan", "mlp", "non-saturating", 10),
    ("cs231n-lsgan", "mlp", "lsgan", 10),
    ("cs231n-dcgan", "mnist-dc", "non-saturating", 5),
])  # fmt: skip
def test_recipes_are_the_course_settings(name, arch, loss, epochs):
    cfg = build_config(name)
    assert (cfg.nets["G"].arch, cfg.nets["D"].arch) == (arch, arch)
    assert (cfg.section(GanOptions).loss, cfg.train.epochs) == (loss, epochs)
    assert (cfg.data.image_size, cfg.data.channels, cfg.data.limit) == (28, 1, 50_000)
    assert (cfg.nets["G"].nz, cfg.section(GanOptions).noise, cfg.train.batch_size) == (
        96,
        "uniform",
        128,
    )
    for opt in cfg.optim.values():
        assert (opt.name, opt.lr, opt.betas) == ("adam", 1e-3, (0.5, 0.999))
    assert cfg.description and "\n" not in cfg.description


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_two_steps(name, tmp_path):
    overrides = [
        "train.epochs=null",
        "train.steps=2",
        "train.batch_size=32",
        "train.n_preview=4",
        "train.progress=false",
        "train.device=cpu",
        "data.limit=256",
    ]
    run = train(build_config(name, overrides), tmp_path / "run")
    assert load_checkpoint(latest_checkpoint(run))["step"] == 2
    assert (run / "samples" / "step-000002.png").is_file()
