"""Export an LSUN lmdb to a folder of image files, bytes unchanged.

A folder is what the rest of gankit (and every image viewer) reads; keeping the original encoding
means no second JPEG compression. Files are named after their keys.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from gankit.data.lmdb_source import LmdbImages, key_text
from gankit.errors import DataError

SUFFIXES = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
}


@dataclass
class ExportResult:
    """Files written and the keys skipped because their value is no image gankit reads."""

    dst: Path
    written: int = 0
    skipped: list[str] = field(default_factory=list)


def safe_key_name(key: bytes) -> str:
    """A file stem from an lmdb key: path separators and other odd characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key_text(key)).lstrip(".-")[:200]
    return name or key.hex()[:64] or "empty"


def _sniff_format(data: bytes) -> str | None:
    # Only the header is parsed: the export keeps the bytes and needs just the right suffix.
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def export_lmdb(
    lmdb_path: str | os.PathLike,
    dst: str | os.PathLike,
    limit: int | None = None,
    progress: bool = True,
) -> ExportResult:
    """Write the first ``limit`` (default all) entries of ``lmdb_path`` as files into ``dst``."""
    if limit is not None and limit < 1:
        raise DataError(f"--limit {limit}: give a positive number of images")
    source = LmdbImages(lmdb_path)
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{dst} is a file: lsun-export needs a folder to write images into")
    dst.mkdir(parents=True, exist_ok=True)
    result = ExportResult(dst)
    used: set[str] = set()
    total = len(source) if limit is None else min(limit, len(source))
    for key, data in tqdm(source.items(limit), total=total, unit="img", disable=not progress):
        fmt = _sniff_format(data)
        if fmt not in SUFFIXES:
            result.skipped.append(key_text(key))
            continue
        stem = safe_key_name(key)
        name, k = stem + SUFFIXES[fmt], 0
        # Two keys may sanitise to one name ("a/b", "a_b"): suffix instead of overwriting.
        while name.lower() in used:
            k += 1
            name = f"{stem}_{k}{SUFFIXES[fmt]}"
        used.add(name.lower())
        _write_atomic(dst / name, data)
        result.written += 1
    return result


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gankit-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"cannot write {path} ({e}): check free space and permissions") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
