"""Decoding every kind of image file a user's folder may hold."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.data.images import fit_image, load_image, scan_images, to_array
from gankit.errors import DataError


def save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    good = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    png = save(good, tmp_path / "good.png")
    jpg = save(good, tmp_path / "good.jpg", quality=90)
    files = {}
    files["zero"] = tmp_path / "zero.png"
    files["zero"].write_bytes(b"")
    files["text"] = tmp_path / "notes.jpg"
    files["text"].write_text("this is not an image")
    files["corrupt"] = tmp_path / "corrupt.png"
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    files["trunc_png"] = tmp_path / "trunc.png"
    files["trunc_png"].write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    files["trunc_jpg"] = tmp_path / "trunc.jpg"
    files["trunc_jpg"].write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    return files


@pytest.mark.parametrize("kind", ["zero", "text", "corrupt", "trunc_png", "trunc_jpg"])
def test_broken_files_raise_one_line_data_error(bad_files, kind):
    with pytest.raises(DataError) as e:
        load_image(bad_files[kind], 3)
    msg = str(e.value)
    assert str(bad_files[kind]) in msg and "\n" not in msg


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    a = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)  # up to 65520
    p = tmp_path / "deep.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode.startswith("I")
    x = to_array(load_image(p, 1))
    assert x.shape == (1, 64, 64) and x.dtype == np.uint8
    assert x.max() == 255 and x.min() == 0  # full range kept, not saturated at 255 everywhere
    assert 100 < x.mean() < 155


def test_cmyk_palette_rgba_grey_convert(tmp_path):
    rgb = Image.new("RGB", (10, 10), (200, 30, 40))
    cmyk = save(rgb.convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    pal = save(rgb.quantize(4), tmp_path / "pal.gif")
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    transparent = save(rgba, tmp_path / "alpha.png")
    grey = save(Image.new("L", (10, 10), 77), tmp_path / "grey.bmp")
    c = to_array(load_image(cmyk, 3))
    assert c.shape == (3, 10, 10) and abs(int(c[0].mean()) - 200) < 12
    assert to_array(load_image(pal, 3))[:, 0, 0].tolist() == [200, 30, 40]
    assert to_array(load_image(transparent, 3)).min() == 255  # composited on white
    assert to_array(load_image(grey, 3))[:, 0, 0].tolist() == [77, 77, 77]
    assert to_array(load_image(cmyk, 1)).shape == (1, 10, 10)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), v) for v in (10, 200)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    assert to_array(load_image(p, 1)).mean() == 10


def test_fit_resize_and_pad():
    img = Image.new("L", (40, 20), 255)
    assert fit_image(img, 16).size == (16, 16)
    digit = Image.new("L", (28, 28), 255)
    padded = to_array(fit_image(digit, 32, "pad"))
    assert padded[0, 0, 0] == 0 and padded[0, 2, 2] == 255 and padded.shape == (1, 32, 32)


def test_scan_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in"):
        scan_images(tmp_path / "empty")
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "nested" / "deeper" / "a.WEBP")
    assert len(scan_images(tmp_path / "nested")) == 1
