"""ADA's ops (bgc, noise, cutout), its anti-aliased resampling and its controller; DiffAugment's
color policy."""

import math

import pytest
import torch

import gankit.gan.ada as ada_module
from gankit.data.augment import DIFF_AUGMENTS
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError
from gankit.gan.ada import ADA_GROUPS, ADA_OPS, AdaController, ada_augment
from gankit.gan.ada_ops import SYM6, antialiased_warp, bilinear_warp
from gankit.gan.options import validate_gan
from gankit.gan.pipeline import Ada
from gankit.registries import build_config
from gankit.tasks.gan_build import build_pipeline

from conftest import TINY


def images(n=4, c=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, size, size, generator=g) * 2 - 1).requires_grad_(True)


@pytest.mark.parametrize("op", ADA_OPS)
def test_every_op_changes_images_keeps_shape_and_passes_gradients(op):
    x = images()
    out = ada_augment(x, 1.0, torch.Generator().manual_seed(1), ops=(op,))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)  # at p = 1 every sample is transformed (flips: some)
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_diffaugment_color_is_differentiable_and_per_sample():
    x = images()
    out = DIFF_AUGMENTS["color"](x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    same = DIFF_AUGMENTS["color"](torch.zeros(8, 3, 4, 4))  # a grey image stays flat per sample
    assert torch.allclose(same, same[:, :1, :1, :1].expand_as(same), atol=1e-6)
    assert same[:, 0, 0, 0].unique().numel() == 8  # with its own brightness each


def test_p_zero_is_the_identity_and_a_seed_reproduces():
    x = images()
    assert ada_augment(x, 0.0) is x
    a = ada_augment(x, 0.7, torch.Generator().manual_seed(3))
    b = ada_augment(x, 0.7, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    grey = ada_augment(images(c=1), 1.0, torch.Generator().manual_seed(3))
    assert grey.shape == (4, 1, 16, 16)
    with pytest.raises(ConfigError, match="ADA op 'warp' is unknown"):
        ada_augment(x, 0.5, ops=("warp",))


@pytest.mark.parametrize("antialias", [True, False])
def test_xflip_and_quarter_turns_are_exact_permutations_of_pixels(antialias):
    x = images(n=16).detach()
    tol = 0.0 if antialias else 1e-5  # anti-aliased: the blit ops gather whole pixels, bit-exact
    g = torch.Generator()
    flipped = ada_augment(x, 1.0, g.manual_seed(0), ops=("xflip",), antialias=antialias)
    kinds = [
        torch.allclose(o, i, atol=tol, rtol=0) or torch.allclose(o, i.flip(-1), atol=tol, rtol=0)
        for o, i in zip(flipped, x, strict=True)
    ]
    assert all(kinds)
    turned = ada_augment(x, 1.0, g.manual_seed(0), ops=("rotate90",), antialias=antialias)
    for o, i in zip(turned, x, strict=True):
        assert any(torch.allclose(o, torch.rot90(i, k, (1, 2)), atol=tol, rtol=0) for k in range(4))
    shifted = ada_augment(x, 1.0, g.manual_seed(0), ops=("xint",), antialias=antialias)
    centre = shifted[:, :, 4:12, 4:12]  # integer shifts of <= 2 px keep pixel values exactly
    for c, i in zip(centre, x, strict=True):  # every pixel is one of the image's own
        assert (c.flatten()[:, None] - i.flatten()[None]).abs().min(1).values.max() < 1e-5


def test_brightness_shifts_the_mean_and_contrast_keeps_a_centred_mean():
    x = images(n=8).detach()
    bright = ada_augment(x, 1.0, torch.Generator().manual_seed(0), ops=("brightness",))
    shift = (bright - x).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-6)  # one offset a sample
    assert shift[:, 0].abs().min() > 0
    centred = x - x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = ada_augment(centred, 1.0, torch.Generator().manual_seed(0), ops=("contrast",))
    assert torch.allclose(contrast.mean(dim=(1, 2, 3)), torch.zeros(8), atol=1e-6)


def test_the_controller_moves_p_by_the_papers_step_and_clamps():
    ada = AdaController(interval=4, kimg=500)
    step = 64 * 4 / 500_000
    for _ in range(40):
        ada.observe(torch.ones(64), 64)  # D calls every real image real: r_t = 1 > 0.6
    assert ada.p == pytest.approx(10 * step) and ada.rt == 1.0
    for _ in range(200):
        ada.observe(-torch.ones(64), 64)
    assert ada.p == 0.0 and ada.rt == -1.0  # never below 0
    fixed = AdaController(p=0.3, adaptive=False)
    fixed.observe(torch.ones(64), 64)
    assert fixed.p == 0.3 and fixed.rt == 0.0
    with pytest.raises(ConfigError, match="gan.ada_target=1.5"):
        AdaController(target=1.5)


def test_the_controller_state_resumes_exactly():
    a = AdaController(kimg=0.1)
    for _ in range(6):
        a.observe(torch.tensor([1.0, 1.0, -1.0]), 3)
    b = AdaController(kimg=0.1)
    b.state.copy_(a.state)  # what loading the checkpointed buffer does
    for t in (a, b):
        for _ in range(7):
            t.observe(torch.ones(5), 5)
    assert torch.equal(a.state, b.state) and a.p > 0


def test_p_rises_when_a_discriminator_overfits_a_tiny_fixed_set():
    torch.manual_seed(0)
    real = torch.rand(8, 1, 8, 8) * 2 - 1
    d = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(d.parameters(), 1e-2)
    ada = AdaController(kimg=0.01)
    for _ in range(40):
        fake = torch.randn(8, 1, 8, 8)
        r, f = d(ada_augment(real, ada.p)).view(-1), d(ada_augment(fake, ada.p)).view(-1)
        loss = torch.nn.functional.softplus(-r).mean() + torch.nn.functional.softplus(f).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ada.observe(r, 8)
    assert ada.rt > 0.6 and ada.p > 0.1


# --- the reference's anti-aliased resampling, noise, cutout, gan.ada_ops -------------------------


def smooth(size=32, dtype=torch.float32):
    """Three channels of low cosines cos(π·a·i/(S − 1)): smooth, and smooth across the edges too
    when mirrored there (reflect padding), so the borders test the filters, not the padding."""
    i = torch.arange(size, dtype=dtype)
    cos = [torch.cos(math.pi * a * i / (size - 1)) for a in range(4)]
    return torch.stack(
        [
            0.5 * cos[1][:, None] * cos[2][None] + 0.3 * cos[3][None],
            0.6 * cos[2][:, None] - 0.2 * cos[1][None],
            0.4 * cos[1][:, None] * cos[1][None],
        ]
    )[None]


def rotation(k, dtype=torch.float32):
    c, s = round(math.cos(k * math.pi / 2)), round(math.sin(k * math.pi / 2))
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=dtype)[None]


def test_the_sym6_taps_are_an_orthogonal_wavelet_filter_with_six_vanishing_moments():
    f = torch.tensor(SYM6, dtype=torch.float64)
    assert f.sum() == pytest.approx(math.sqrt(2), abs=1e-12)
    assert f.square().sum() == pytest.approx(1, abs=1e-11)  # the published taps' precision
    for k in range(1, 6):  # orthogonal to its shifts by 2k: up then down is the identity
        assert (f[: -2 * k] * f[2 * k :]).sum().abs() < 1e-11
    high = f.flip(0) * (-1) ** torch.arange(12)  # the quadrature mirror (high-pass) filter
    n = torch.arange(12, dtype=torch.float64)
    for k in range(6):
        assert (high * n**k).sum().abs() < 1e-7 * 12**k


@pytest.mark.parametrize("size", [8, 32])
def test_the_antialiased_identity_returns_the_image(size):
    # Up and down through sym6 is exact in exact arithmetic (the filter is orthogonal to its even
    # shifts, and the identity samples the 2x grid on its own points): float64 shows ~1e-13, the
    # rest is float32 rounding of the sample positions and the 24 filter taps. Measured: 2.4e-7
    # on the smooth image, 3.8e-6 on uniform noise.
    eye = torch.eye(3)[None]
    x = smooth(size)
    assert (antialiased_warp(x, eye) - x).abs().max() < 1e-6
    noise = images(n=2, size=size).detach()
    assert (antialiased_warp(noise, eye.expand(2, 3, 3)) - noise).abs().max() < 1e-5
    x64 = smooth(size, torch.float64)
    assert (antialiased_warp(x64, eye.double()) - x64).abs().max() < 1e-10


def test_quarter_turns_through_the_antialiased_path_match_rot90():
    # sym6 is not symmetric: its residual (non-linear) phase and bilinear sampling between the 2x
    # samples leave a small error where the map reverses an axis. Measured on the 32 px smooth
    # image: 1.1e-3, 1.2e-3, 5.3e-4 for k = 1, 2, 3 (2.4e-4 at 64 px). Placing the grids at the
    # filter's centre of mass keeps the turn about the image centre: the reference's placement
    # errs by 1.8e-2 here, a plain half-sample one by 7.4e-2.
    x = smooth(32)
    for k in (1, 2, 3):
        assert (antialiased_warp(x, rotation(k)) - torch.rot90(x, k, (2, 3))).abs().max() < 2e-3
    dot = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    dot[0, 0, 10, 12] = 1
    turned = antialiased_warp(dot, rotation(1, torch.float64))[0, 0]
    rows, cols = torch.meshgrid(*[torch.arange(32.0, dtype=torch.float64)] * 2, indexing="ij")
    assert turned.sum() == pytest.approx(1)
    assert (turned * rows).sum() == pytest.approx(19, abs=1e-6)  # where rot90 puts the pixel
    assert (turned * cols).sum() == pytest.approx(10, abs=1e-6)


def test_antialiasing_removes_the_alias_a_single_bilinear_sample_makes():
    i = torch.arange(32)
    board = (((i[:, None] + i[None]) % 2) * 1.6 - 0.8).float()[None, None]  # at Nyquist
    shrink = torch.diag(torch.tensor([1.5, 1.5, 1.0]))[None]  # zoom out by 1.5
    assert bilinear_warp(board, shrink).std() > 0.2  # measured 0.24: a coarse false pattern
    assert antialiased_warp(board, shrink).std() < 0.02  # measured 0.006: filtered out


def test_gradients_flow_through_the_antialiased_path():
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[0.8, -0.3, 0.1], [0.35, 0.9, -0.05], [0, 0, 1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: antialiased_warp(t, m[None]), (x,))
    y = images(n=8)
    out = ada_augment(y, 1.0, torch.Generator().manual_seed(0), ops=("blit", "geom"))
    out.square().sum().backward()
    assert torch.isfinite(y.grad).all() and (y.grad.abs().sum(dim=(1, 2, 3)) > 0).all()


def test_p_zero_is_the_identity_for_every_op_and_path():
    x = images()
    for antialias in (True, False):
        assert ada_augment(x, 0.0, ops=tuple(ADA_GROUPS), antialias=antialias) is x
        assert ada_augment(x, 0.0, ops=ADA_OPS, antialias=antialias) is x
    ada = Ada(AdaController(p=0.0), lambda t: t, ops=tuple(ADA_GROUPS))
    assert ada(x) is x


def test_cutout_zeroes_a_square_of_half_the_side_and_leaves_the_rest():
    size, n = 16, 256
    x = torch.rand(n, 3, size, size) * 0.5 + 0.5  # no zeros of its own
    out = ada_augment(x, 0.5, torch.Generator().manual_seed(0), ops=("cutout",))
    hit = 0
    for o, i in zip(out, x, strict=True):
        zero = o == 0
        assert torch.equal(o[~zero], i[~zero])  # the rest untouched
        if not zero.any():
            continue
        hit += 1
        assert torch.equal(zero, zero[:1].expand_as(zero))  # every channel
        rows, cols = zero[0].any(dim=1), zero[0].any(dim=0)
        assert torch.equal(zero[0], rows[:, None] & cols[None])  # a rectangle
        for run in (rows, cols):
            where = run.nonzero().flatten()
            assert where[-1] - where[0] + 1 == len(where)  # contiguous
            at_edge = where[0] == 0 or where[-1] == size - 1
            # half the side, unless the image's edge clips it (its centre is inside: >= a quarter)
            assert len(where) == size // 2 or (at_edge and size // 4 <= len(where) <= size // 2)
    assert 0.4 * n < hit < 0.6 * n  # probability p = 0.5


def test_noise_has_the_references_std():
    n = 4096
    zeros = torch.zeros(n, 3, 8, 8)
    out = ada_augment(zeros, 1.0, torch.Generator().manual_seed(0), ops=("noise",))
    assert out.std() == pytest.approx(0.1, rel=0.03)  # E[σ²] = 0.1²
    per_sample = out.flatten(1).std(dim=1)
    assert per_sample.mean() == pytest.approx(0.1 * math.sqrt(2 / math.pi), rel=0.03)  # E|N|
    half = ada_augment(zeros, 0.5, torch.Generator().manual_seed(0), ops=("noise",))
    untouched = (half.flatten(1) == 0).all(dim=1).float().mean()
    assert 0.45 < untouched < 0.55


@pytest.mark.parametrize(
    "groups", [["blit"], ["geom"], ["color"], ["noise"], ["cutout"], ["cutout", "geom", "blit"]]
)
def test_only_the_listed_ops_run(monkeypatch, groups):
    ran: list[str] = []

    def spy(name, record=None):
        fn = getattr(ada_module, name)

        def wrapped(*args, **kwargs):
            ran.append(record(args) if record else name)
            return fn(*args, **kwargs)

        monkeypatch.setattr(ada_module, name, wrapped)

    spy("_geometric_op", lambda args: args[0])  # the op's own name
    for name in ("blit", "antialiased_warp", "_colour", "cutout_mask"):
        spy(name)
    normal_like = ada_module._Draws.normal_like
    monkeypatch.setattr(
        ada_module._Draws, "normal_like", lambda self: ran.append("noise") or normal_like(self)
    )
    ada_augment(images(n=8), 1.0, torch.Generator().manual_seed(0), ops=groups)
    ops = [
        op
        for g in ("blit", "geom", "color", "noise", "cutout")
        if g in groups
        for op in ADA_GROUPS[g]
    ]
    expected = [op for op in ops if op in ada_module.GEOMETRIC]  # in the pipeline's order
    expected += ["blit"] if "blit" in groups else []
    expected += ["antialiased_warp"] if "geom" in groups else []
    expected += ["_colour"] if "color" in groups else []
    expected += ["noise"] if "noise" in groups else []
    expected += ["cutout_mask"] if "cutout" in groups else []
    assert ran == expected


def _cfg(*over):
    return build_config("dcgan-mnist", [*TINY, "gan.ada=fixed", "gan.ada_p=0.2", *over])


def test_gan_ada_ops_and_antialias_reach_the_transform_and_bad_names_fail_in_one_line():
    default = _cfg()
    validate_gan(default)
    (ada,) = build_pipeline(default, Runtime(torch.device("cpu"))).transforms
    assert ada.ops == ada_module.expand_ops(["blit", "geom", "color"]) and ada.antialias
    r3gan = _cfg("gan.ada_ops=blit,geom,color,cutout", "gan.ada_antialias=false")
    validate_gan(r3gan)
    (ada,) = build_pipeline(r3gan, Runtime(torch.device("cpu"))).transforms
    assert ada.ops[-1] == "cutout" and "noise" not in ada.ops and not ada.antialias
    assert set(ada.buffers) == {"ada"}  # the checkpointed state is the controller's, as before
    with pytest.raises(ConfigError) as err:
        validate_gan(_cfg("gan.ada_ops=blit,warp"))
    assert str(err.value) == (
        "gan.ada_ops: 'warp' is unknown: choose from blit, geom, color, noise, cutout"
    )
