"""Decoding image files into uint8 arrays with a fixed number of channels.

PIL does the decoding; this module only decides how the many modes PIL can return (palette, 16-bit,
CMYK, with or without alpha) become 1- or 3-channel 8-bit pixels, and turns every way a file can be
broken into one :class:`~gankit.errors.DataError` with the file's name in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from gankit.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

# A truncated file must be an error, never a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def scan_images(
    root: str | os.PathLike,
    *,
    label: str = "data folder",
    hint: str = "check the path in data.source",
) -> list[Path]:
    """All files under ``root`` (recursively) whose extension is an image extension, sorted.

    ``label`` and ``hint`` word the error for a missing or non-folder ``root`` after the option
    that named it (``data.source`` by default; e.g. ``faces: SRC`` for a command's argument).
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(f"{label} {root} {what}: {hint}")
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not files:
        raise DataError(
            f"no images in {root}: put .jpg/.png/.webp/.bmp/.gif files there (sub-folders are searched)"
        )
    return files


def to_8bit(img: Image.Image) -> Image.Image:
    """Map 16- and 32-bit single-channel images to 8-bit 'L' by scaling their full range."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        return Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return img


def convert_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL image to 'L' (channels=1) or 'RGB' (channels=3).

    Transparent pixels are composited on white, the usual background of drawings and sprites.
    """
    img = to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def load_image(path: str | os.PathLike, channels: int = 3) -> Image.Image:
    """Decode ``path`` fully into an 'L' or 'RGB' PIL image; raise DataError if it is unreadable.

    Animated files give their first frame.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as img:
            img.seek(0)
            img.load()
            return convert_mode(img, channels)
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file that PIL can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: unreadable or truncated image ({e})") from None


def fit_image(img: Image.Image, size: int, fit: str = "resize") -> Image.Image:
    """Make a square ``size``×``size`` image.

    ``fit="resize"``: scale the shorter side to ``size`` (bicubic, antialiased), centre-crop.
    ``fit="pad"``: no scaling; centre-pad with black (or centre-crop) to ``size`` — for MNIST-like
    28×28 digits that a network wants at 32×32.
    """
    w, h = img.size
    if fit == "pad":
        canvas = Image.new(img.mode, (size, size), 0)
        canvas.paste(img, ((size - w) // 2, (size - h) // 2))
        return canvas
    scale = size / min(w, h)
    if (w, h) != (size, size):
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return img


def to_array(img: Image.Image) -> np.ndarray:
    """PIL image → uint8 array of shape (C, H, W)."""
    a = np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy needs one
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def iter_decoded(
    files: list[Path], size: int, channels: int, fit: str
) -> Iterator[tuple[Path, np.ndarray | DataError]]:
    """Decode each file to a (C, size, size) uint8 array, yielding the error for bad files."""
    for f in files:
        try:
            yield f, to_array(fit_image(load_image(f, channels), size, fit))
        except DataError as e:
            yield f, e
