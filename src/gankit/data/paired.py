"""Paired images for pix2pix: one uint8 tensor of (N, 2·C, S, S), A's channels then B's.

Two layouts, as in pytorch-CycleGAN-and-pix2pix (Isola et al. 2017):

- ``aligned:PATH`` — each file holds A and B side by side (A on the left), width = 2 × height,
  as the reference's facades/maps/cityscapes folders;
- ``paired:PATH_A,PATH_B`` — two folders whose files match by name (without the extension).

Keeping the pair in one tensor means the ordinary streams crop and flip A and B together (the same
random offsets and flips for both halves), and a task splits the channels. Each half is fitted to
the square size on its own (``data.fit``), so a 512×256 facade gives two 256×256 halves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gankit.config import DataConfig
from gankit.data.images import fit_image, load_image, scan_images, to_array
from gankit.errors import DataError


def pair_files(source: str) -> list[tuple[Path, Path | None]]:
    """The (A, B) files of a paired source; B is None for aligned files (both halves in A)."""
    kind, _, rest = source.partition(":")
    if kind == "aligned":
        return [(f, None) for f in _scan(Path(rest), "data.source=aligned:")]
    if kind == "paired":
        a_dir, sep, b_dir = rest.partition(",")
        if not sep or not a_dir or not b_dir:
            raise DataError(
                f"data.source={source!r}: write paired:FOLDER_A,FOLDER_B (two folders whose "
                "files match by name)"
            )
        a = {f.stem: f for f in _scan(Path(a_dir), "domain A folder")}
        b = {f.stem: f for f in _scan(Path(b_dir), "domain B folder")}
        missing = sorted(a.keys() - b.keys())
        if missing:
            raise DataError(
                f"{a[missing[0]]} has no partner named {missing[0]}.* in {b_dir} "
                f"({len(missing)} of {len(a)} files unmatched): paired folders must hold the same "
                "file names"
            )
        return [(a[k], b[k]) for k in sorted(a)]
    raise DataError(f"data.source={source!r} is not paired: use aligned:PATH or paired:A,B")


def _scan(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{what} {folder} does not exist or is not a folder")
    files = scan_images(folder)
    if not files:
        raise DataError(f"{what} {folder} holds no images (.png, .jpg, ...)")
    return files


def split_aligned(img: Image.Image, path: Path) -> tuple[Image.Image, Image.Image]:
    """The A (left) and B (right) halves of a side-by-side image; its width must be 2 × height."""
    w, h = img.size
    if w != 2 * h:
        raise DataError(
            f"{path} is {w}×{h}: an aligned image holds A and B side by side, width = 2 × height "
            "(for two folders of matching names use data.source=paired:A,B)"
        )
    return img.crop((0, 0, h, h)), img.crop((h, 0, w, h))


def load_pair(a: Path, b: Path | None, size: int, channels: int, fit: str) -> np.ndarray:
    """One pair as a uint8 (2·channels, size, size) array."""
    if b is None:
        left, right = split_aligned(load_image(a, channels), a)
    else:
        left, right = load_image(a, channels), load_image(b, channels)
    halves = [to_array(fit_image(im, size, fit)) for im in (left, right)]
    return np.concatenate(halves, 0)


def load_paired(cfg: DataConfig, progress: bool = True) -> torch.Tensor:
    """Every pair of ``cfg.source`` in memory, at ``load_size`` (or ``image_size``)."""
    pairs = pair_files(cfg.source)
    if cfg.limit:
        pairs = pairs[: cfg.limit]
    size = cfg.load_size or cfg.image_size
    out = np.empty((len(pairs), 2 * cfg.channels, size, size), np.uint8)
    bar = tqdm(pairs, desc="decoding pairs", unit="pair", disable=not progress, leave=False)
    for i, (a, b) in enumerate(bar):
        out[i] = load_pair(a, b, size, cfg.channels, cfg.fit)
    return torch.from_numpy(out)
