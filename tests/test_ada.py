"""ADA's bgc ops and its controller; DiffAugment's color policy."""

import pytest
import torch

from gankit.data.augment import DIFF_AUGMENTS
from gankit.errors import ConfigError
from gankit.gan.ada import ADA_OPS, AdaController, ada_augment


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


def test_xflip_and_quarter_turns_are_exact_permutations_of_pixels():
    x = images(n=16).detach()
    flipped = ada_augment(x, 1.0, torch.Generator().manual_seed(0), ops=("xflip",))
    kinds = [
        torch.allclose(o, i, atol=1e-5) or torch.allclose(o, i.flip(-1), atol=1e-5)
        for o, i in zip(flipped, x, strict=True)
    ]
    assert all(kinds)
    turned = ada_augment(x, 1.0, torch.Generator().manual_seed(0), ops=("rotate90",))
    for o, i in zip(turned, x, strict=True):
        assert any(torch.allclose(o, torch.rot90(i, k, (1, 2)), atol=1e-5) for k in range(4))
    shifted = ada_augment(x, 1.0, torch.Generator().manual_seed(0), ops=("xint",))
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
