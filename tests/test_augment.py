import pytest
import torch
import torch.nn.functional as F

from gankit.data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize, pad_crop, random_flip
from gankit.errors import GankitError


def _batch(n=16, c=3, h=8, w=10, dtype=torch.uint8):
    # Distinct values everywhere so that a crop identifies its offset uniquely.
    x = torch.arange(n * c * h * w).reshape(n, c, h, w)
    return (x % 251).to(dtype) if dtype == torch.uint8 else x.to(dtype)


def _offset_of(crop, padded, h, w):
    """Every (dy, dx) at which ``crop`` is a window of ``padded``."""
    ph, pw = padded.shape[-2:]
    return [
        (dy, dx)
        for dy in range(ph - h + 1)
        for dx in range(pw - w + 1)
        if torch.equal(crop, padded[:, dy : dy + h, dx : dx + w])
    ]


@pytest.mark.parametrize(
    "mode,torch_mode", [("reflect", "reflect"), ("replicate", "replicate"), ("zeros", "constant")]
)
def test_pad_crop_windows_are_sub_windows_of_the_padded_image(mode, torch_mode):
    x = _batch(dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    out = pad_crop(x, pad=3, mode=mode, generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = F.pad(x, (3, 3, 3, 3), mode=torch_mode)
    offsets = []
    for i in range(x.shape[0]):
        found = _offset_of(out[i], padded[i], 8, 10)
        assert found, f"sample {i} is not a window of its padded image"
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # independent per sample, not one offset for the batch


def test_pad_crop_uint8_matches_float_reflect():
    x = _batch()
    a = pad_crop(x, pad=4, generator=torch.Generator().manual_seed(3))
    b = pad_crop(x.float(), pad=4, generator=torch.Generator().manual_seed(3))
    assert a.dtype == torch.uint8
    assert torch.equal(a.float(), b)


def test_pad_crop_is_deterministic_given_a_generator():
    x = _batch()
    a = pad_crop(x, generator=torch.Generator().manual_seed(7))
    b = pad_crop(x, generator=torch.Generator().manual_seed(7))
    c = pad_crop(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pad_crop_offsets_cover_the_whole_range_uniformly():
    pad, n = 2, 2000
    # A single-channel "coordinate" image: the crop's top-left pixel reveals the offset directly
    # when the padding is zeros and the image holds 1 + row * W + col.
    h = w = 8
    base = (1 + torch.arange(h * w)).reshape(1, 1, h, w).float().expand(n, 1, h, w)
    out = pad_crop(base, pad=pad, mode="zeros", generator=torch.Generator().manual_seed(1))
    # The centre pixel of the crop is image pixel (h/2 + dy - pad, w/2 + dx - pad).
    v = out[:, 0, h // 2, w // 2].long() - 1
    dy, dx = v // w - h // 2 + pad, v % w - w // 2 + pad
    for d in (dy, dx):
        counts = torch.bincount(d, minlength=2 * pad + 1)
        assert counts.numel() == 2 * pad + 1 and (counts > 0).all()
        # 400 expected per value; a biased sampler (e.g. never pad or 0) would fail this.
        assert (counts - n / (2 * pad + 1)).abs().max() < 100


def test_pad_crop_zero_pad_and_validation():
    x = _batch()
    assert torch.equal(pad_crop(x, pad=0), x)
    with pytest.raises(GankitError, match="pad"):
        pad_crop(x, pad=8)  # reflect needs pad < side
    with pytest.raises(GankitError, match="mode"):
        pad_crop(x, mode="circular")
    with pytest.raises(GankitError, match="N, C, H, W"):
        pad_crop(x[0])


def test_random_flip_flips_exactly_the_chosen_samples():
    x = _batch(n=64)
    out = random_flip(x, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, s.flip(-1)) for o, s in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, s) for o, s in zip(out, x, strict=True)])
    assert (flipped ^ kept).all()  # each sample is either flipped or untouched
    assert 16 < flipped.sum() < 48
    assert torch.equal(random_flip(x, p=0.0), x)
    assert torch.equal(random_flip(x, p=1.0), x.flip(-1))
    again = random_flip(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_normalize_uint8_and_float_agree():
    x = _batch(n=2)
    a = normalize(x)
    b = normalize(x.float() / 255)
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(a, (x.float() / 255 - mean) / std)
    grey = normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), (0.5,), (0.5,))
    assert torch.all(grey == 1.0)
    with pytest.raises(GankitError, match="channels"):
        normalize(x, (0.5,), (0.5,))


def test_diff_augment_is_differentiable_and_changes_images():
    from gankit.data.augment import cutout, diff_augment

    torch.manual_seed(0)
    x = torch.randn(6, 1, 16, 16, requires_grad=True)
    y = diff_augment(x, ["translation", "cutout"])
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()
    assert x.grad is not None and (x.grad == 0).any() and (x.grad != 0).any()
    holes = (cutout(torch.ones(4, 1, 8, 8)) == 0).flatten(1).sum(1)
    assert holes.tolist() == [16, 16, 16, 16]  # one 4x4 square per sample
    assert torch.equal(diff_augment(x, []), x)
