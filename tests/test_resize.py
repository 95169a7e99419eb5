"""The resizers in front of the FID Inception (gankit.evaluation.metrics.resize) against the
implementations they reproduce: Pillow itself, clean-fid's ``make_resizer`` and torch-fidelity's
TF1 bilinear port, to 1e-3 on 0-255 values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.errors import ConfigError
from gankit.evaluation.metrics.inception import inception_preprocess
from gankit.evaluation.metrics.resize import (
    DEFAULT_RESIZER,
    RESIZERS,
    check_resizer,
    resize_images,
    resize_matrix,
)

SIZES = [(28, 28), (32, 32), (17, 23), (64, 64), (256, 256), (300, 300), (512, 400)]
TOLERANCE = 1e-3  # the bound, on 0-255 values


def images(h: int, w: int, n: int = 2, channels: int = 3, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, channels, h, w), dtype=np.uint8))


def pil_resize(x: torch.Tensor, kind: int) -> np.ndarray:
    """Pillow's resize of every channel as a float32 'F' image (what clean-fid runs)."""
    out = np.empty((*x.shape[:2], 299, 299), np.float32)
    for i, image in enumerate(x.numpy()):
        for c, channel in enumerate(image):
            f = Image.fromarray(channel.astype(np.float32), mode="F")
            out[i, c] = np.asarray(f.resize((299, 299), resample=kind))
    return out


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_clean_and_pil_bilinear_equal_pillow(h: int, w: int) -> None:
    x = images(h, w)
    bicubic = pil_resize(x, Image.BICUBIC).clip(0, 255)
    assert np.abs(resize_images(x, "clean").numpy() - bicubic).max() <= TOLERANCE
    bilinear = pil_resize(x, Image.BILINEAR)
    assert np.abs(resize_images(x, "pil-bilinear").numpy() - bilinear).max() <= TOLERANCE


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_clean_equals_clean_fid(h: int, w: int) -> None:
    resize = pytest.importorskip("cleanfid.resize")
    fn = resize.make_resizer("PIL", False, "bicubic", (299, 299))  # clean-fid's "clean" mode
    x = images(h, w)
    theirs = np.stack([fn(image.transpose(1, 2, 0)).transpose(2, 0, 1) for image in x.numpy()])
    assert np.abs(resize_images(x, "clean").numpy() - theirs).max() <= TOLERANCE
    legacy = resize.make_resizer("PyTorch", False, "bilinear", (299, 299))  # its legacy_pytorch
    theirs = np.stack([legacy(image.transpose(1, 2, 0)).transpose(2, 0, 1) for image in x.numpy()])
    assert np.abs(resize_images(x, "legacy-pytorch").numpy() - theirs).max() <= TOLERANCE


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_legacy_tensorflow_equals_torch_fidelity(h: int, w: int) -> None:
    tf = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")
    x = images(h, w)
    theirs = tf.interpolate_bilinear_2d_like_tensorflow1x(
        x.float(), size=(299, 299), align_corners=False
    )
    assert (resize_images(x, "legacy-tensorflow") - theirs).abs().max().item() <= TOLERANCE


def test_tf1_bilinear_is_the_formula_by_hand() -> None:
    # 2 -> 4 pixels: source coordinates d * 2/4 = 0, 0.5, 1, 1.5; hi is clamped to the last pixel.
    m = resize_matrix("legacy-tensorflow", 2, 4).numpy()
    assert np.allclose(m, [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
    # torch's half-pixel bilinear reads (d + 0.5) * 2/4 - 0.5 = -0.25 (clamped), 0.25, 0.75, 1.25
    x = torch.tensor([[[[0.0, 100.0]]]])
    assert resize_images(x.expand(1, 1, 2, 2) * 1, "legacy-tensorflow", 4)[0, 0, 0].tolist() == [
        0.0,
        50.0,
        100.0,
        100.0,
    ]
    half = F.interpolate(x.expand(1, 1, 2, 2), size=(4, 4), mode="bilinear", align_corners=False)
    assert half[0, 0, 0].tolist() == [0.0, 25.0, 75.0, 100.0]


def test_legacy_pytorch_is_torch_interpolate_exactly() -> None:
    x = images(28, 28)
    expected = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.equal(resize_images(x, "legacy-pytorch"), expected)


def test_every_resizer_keeps_range_and_is_identity_at_299() -> None:
    edge = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    edge[..., 8:] = 255  # a hard edge: bicubic overshoots there before the clip
    at299 = images(299, 299, n=1)
    for name in RESIZERS:
        out = resize_images(edge, name)
        assert out.shape == (1, 1, 299, 299) and out.dtype == torch.float32
        slack = 0.0 if name == "clean" else 1e-3  # clean clips; the others round in float32
        assert out.min() >= -slack and out.max() <= 255 + slack, name
        assert torch.equal(resize_images(at299, name), at299.float()), name


def test_grey_images_are_resized_once_and_repeated() -> None:
    grey = images(28, 28, channels=1)
    for name in RESIZERS:
        x = inception_preprocess(grey, name)
        rgb = inception_preprocess(grey.expand(-1, 3, -1, -1), name)
        assert x.shape == (2, 3, 299, 299) and torch.allclose(x, rgb, atol=1e-6), name


def test_names_and_default() -> None:
    assert DEFAULT_RESIZER == "legacy-tensorflow"
    assert check_resizer("clean") == "clean"
    with pytest.raises(ConfigError, match="did you mean clean") as info:
        check_resizer("clen")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not a matrix"):
        resize_matrix("legacy-pytorch", 28, 299)


def test_resize_runs_on_the_images_device_in_float32() -> None:
    x = images(28, 28).to(torch.float64)
    for name in RESIZERS:
        assert resize_images(x, name).dtype == torch.float32
