"""File names for downloaded images: a harmless name from the URL, a suffix from the format.

Used by :mod:`gankit.data.prep.download_fetch` once a file has been fetched and decoded.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

# PIL format -> suffixes that may keep their name; the first one is used when we must pick.
FORMAT_SUFFIXES = {
    "JPEG": (".jpg", ".jpeg"),
    "MPO": (".jpg", ".jpeg"),  # camera JPEGs with extra frames; the first frame is plain JPEG
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
}
WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


def safe_name_from_url(url: str) -> str:
    """A harmless file name from the last path segment of ``url``.

    Percent-escapes are decoded first so that ``..%2F..%2Fx.png`` cannot smuggle a path; only the
    last segment survives, limited to ``[A-Za-z0-9._-]``, without leading dots.
    """
    segment = re.split(r"[/\\]", unquote(urlsplit(url).path))[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", segment).lstrip(".-_").rstrip(". ")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem[:100] or "image"
    if stem.lower() in WINDOWS_RESERVED:
        stem = "_" + stem
    return f"{stem}.{ext[:10]}" if ext else stem


def name_for_format(name: str, fmt: str) -> str:
    """Keep ``name`` if its suffix matches the decoded format, else give it the format's suffix."""
    base, dot, ext = name.rpartition(".")
    suffix = f".{ext.lower()}" if dot else ""
    if suffix in FORMAT_SUFFIXES[fmt]:
        return name
    # A stray suffix like ".php" is kept in the stem (as "_php") so names stay distinct.
    stem = f"{base}_{ext}" if dot else name
    return stem + FORMAT_SUFFIXES[fmt][0]
