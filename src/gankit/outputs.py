"""Checking where a command writes, before it does any work: one-line errors, never tracebacks."""

from __future__ import annotations

import os
from pathlib import Path

from gankit.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def output_dir(path: str | Path, option: str) -> Path:
    """Create the folder ``path`` (``option`` names the flag that gave it) or explain why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file: give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot create it ({e.strerror or e})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {path}: the folder is not writable")
    return path


def output_file(path: str | Path, option: str, suffixes: tuple[str, ...]) -> Path:
    """Check a file to write: an allowed suffix, not a folder, a parent that can be made."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{option} {path} is a folder: give a file name such as {path / ('out' + suffixes[0])}"
        )
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: use a file name ending in {', '.join(suffixes)}")
    output_dir(path.parent, option)
    return path
