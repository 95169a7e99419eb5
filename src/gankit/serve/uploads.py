"""Uploaded images are untrusted: size-, type- and pixel-checked before anything decodes them.

An upload arrives as the raw request body (the page posts the file itself, no multipart form).
The checks, in the order they run:

1. the body's length (``Content-Length`` before reading, and again while reading) is at most
   :data:`MAX_UPLOAD_BYTES` (413);
2. PIL recognises it as one of :data:`FORMATS` from its header alone (415 otherwise, e.g. for a
   text or zip file);
3. the width × height its header declares is at most :data:`MAX_PIXELS` (413), checked before a
   single pixel is decompressed, so a decompression bomb (a tiny file declaring a huge image)
   never reaches the decoder; PIL's own bomb check stays on as a second line;
4. it decodes completely (400 for a truncated or corrupt file).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncIterator

from PIL import Image, UnidentifiedImageError

from gankit.data.images import convert_mode
from gankit.errors import GankitError

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
"""The largest upload accepted: 16 MiB."""
MAX_PIXELS = 16 * 1024 * 1024
"""The most pixels an uploaded image may declare: 16 megapixels (4096 × 4096)."""
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
"""The formats PIL may try: photographs and drawings, no container formats (TIFF, ICO...)."""


class RequestError(GankitError):
    """A request the explorer refuses, with the HTTP status to answer with (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_length(header: str | None) -> None:
    """Refuse a declared ``Content-Length`` over the limit before reading the body."""
    if header is None:
        return
    try:
        n = int(header)
    except ValueError:
        raise RequestError(400, "bad Content-Length header") from None
    if n > MAX_UPLOAD_BYTES:
        raise RequestError(413, _too_big(n))


def _too_big(n: int) -> str:
    return f"upload of {n / 2**20:.1f} MiB refused: the limit is {MAX_UPLOAD_BYTES // 2**20} MiB"


async def read_capped(chunks: AsyncIterator[bytes]) -> bytes:
    """The body from ``chunks``, refused (413) as soon as it passes :data:`MAX_UPLOAD_BYTES`."""
    parts, total = [], 0
    async for chunk in chunks:
        total += len(chunk)
        if total > MAX_UPLOAD_BYTES:
            raise RequestError(413, _too_big(total))
        parts.append(chunk)
    return b"".join(parts)


def _too_many_pixels(w: int, h: int) -> RequestError:
    return RequestError(
        413,
        f"image of {w}×{h} = {w * h / 1e6:.0f} megapixels refused: the limit is "
        f"{MAX_PIXELS / 1e6:.0f} megapixels; shrink it first",
    )


def _open(data: bytes) -> Image.Image:
    """PIL's image of ``data``, its header read and nothing decoded yet."""
    try:
        with warnings.catch_warnings():  # the size is checked below, with our own limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError:
        raise RequestError(415, "not an image: upload a PNG, JPEG, WebP, BMP or GIF file") from None
    except Image.DecompressionBombError:
        raise RequestError(
            413, f"the image declares far more than {MAX_PIXELS / 1e6:.0f} megapixels: refused"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise RequestError(400, "unreadable image header: the file is corrupt") from None


def decode_upload(data: bytes, channels: int) -> Image.Image:
    """The uploaded image as a fully decoded 'L' (``channels`` 1) or 'RGB' image, or a
    :class:`RequestError` in one line."""
    if not data:
        raise RequestError(400, "empty upload: choose an image file (PNG, JPEG, WebP, BMP or GIF)")
    with _open(data) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise _too_many_pixels(w, h)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.seek(0)
                img.load()
            return convert_mode(img, channels)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as e:  # fmt: skip
            raise RequestError(400, f"unreadable or truncated image ({type(e).__name__})") from None
