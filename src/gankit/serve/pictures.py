"""The explorer's pictures, as PNG (or GIF/MP4) bytes, from the same functions as the commands.

A sample grid is drawn exactly as ``gankit sample`` draws it (:func:`sample_images` makes the
same calls with the same arguments, and the grid is written by the same
:func:`~gankit.inference.sampling.save_grid`), so a seed shows the same pixels on the page as
in the command's PNG. Walks go between two seeds' codes (slerp or lerp in z; a straight line in W
for a StyleGAN2 run, as ``gankit interpolate``); style mixing is ``gankit style-mix``'s grid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gankit.data.images import to_array
from gankit.data.stream import to_unit
from gankit.errors import ConfigError
from gankit.inference.latent import INTERPOLATIONS, lerp, walk_frames, write_video
from gankit.inference.projection_files import to_png
from gankit.inference.roles import Translator, WSpaceModel
from gankit.inference.sampling import generate, generate_from, save_grid, seeded_noise
from gankit.inference.wspace import generate_w, style_mix, synthesize, w_codes


@dataclass
class SampleSettings:
    """The sample grid's settings, named as ``gankit sample``'s options."""

    seed: int = 0
    n: int = 16
    truncation: float | None = None
    noise_std: float = 1.0
    label: int | None = None
    ema: bool = True


def _labels(label: int | None, n: int) -> Tensor | None:
    return None if label is None else torch.full((n,), label, dtype=torch.long)


def sample_images(model: object, s: SampleSettings) -> Tensor:
    """The images of ``gankit sample RUN --seed --n --truncation --noise-std --class``: truncation
    in W for a run with a W space, else in z (the same branches as the command)."""
    w_space = isinstance(model, WSpaceModel) and model.w_generator() is not None
    if s.truncation is not None and w_space:
        if s.noise_std != 1:
            raise ConfigError("truncation truncates this run's W space: leave noise std at 1")
        return generate_w(model, s.n, s.seed, s.truncation, None, _labels(s.label, s.n), s.ema)
    return generate(
        model, s.n, seed=s.seed, ema=s.ema, labels=_labels(s.label, s.n),  # type: ignore[arg-type]
        noise_std=s.noise_std, truncation=s.truncation,
    )  # fmt: skip


def grid_png(images: Tensor, tmp: Path, nrow: int | None = None) -> bytes:
    """The PNG bytes :func:`save_grid` writes for ``images`` (through a file in ``tmp``)."""
    path = tmp / f"grid-{uuid.uuid4().hex}.png"
    try:
        save_grid(images, path, nrow=nrow)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def walk_images(
    model: object, a: int, b: int, t: Tensor, label: int | None = None, ema: bool = True,
    mode: str = "slerp",
) -> Tensor:  # fmt: skip
    """Images along the walk from seed ``a``'s code to seed ``b``'s at fractions ``t`` (T,)."""
    if mode not in INTERPOLATIONS:
        raise ConfigError(f"mode {mode!r}: choose slerp or lerp")
    z = torch.cat([seeded_noise(model, 1, a), seeded_noise(model, 1, b)])  # type: ignore[arg-type]
    if isinstance(model, WSpaceModel) and model.w_generator(ema) is not None:
        ws = w_codes(model, z, _labels(label, 2), ema=ema)
        path = lerp(ws[:1].flatten(1), ws[1:].flatten(1), t)[0]
        return synthesize(model, path.reshape(len(t), *ws.shape[1:]), ema)
    codes = INTERPOLATIONS[mode](z[:1], z[1:], t)[0]
    return generate_from(model, codes, ema=ema, labels=_labels(label, len(t)))  # type: ignore[arg-type]


def walk_video(
    model: object, a: int, b: int, steps: int, tmp: Path, suffix: str, label: int | None = None,
    ema: bool = True, mode: str = "slerp",
) -> bytes:  # fmt: skip
    """The walk as a looping GIF or MP4 (``suffix``), as ``gankit interpolate --gif/--mp4``."""
    images = walk_images(model, a, b, torch.linspace(0, 1, steps), label, ema, mode)
    path = tmp / f"walk-{uuid.uuid4().hex}{suffix}"
    try:
        write_video(walk_frames(images, 1, steps), path)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def style_mix_png(
    model: object, rows: list[int], cols: list[int], layers: str, psi: float, tmp: Path,
    label: int | None = None, ema: bool = True,
) -> bytes:  # fmt: skip
    """``gankit style-mix``'s grid as PNG bytes."""
    images, width = style_mix(model, rows, cols, layers, psi, label, ema)
    return grid_png(images, tmp, nrow=width)


def translate_png(model: object, image, direction: str) -> bytes:
    """One decoded image (PIL) translated by a translation run, as PNG bytes of its size."""
    if not isinstance(model, Translator):
        raise ConfigError(
            "this run does not translate images (a cyclegan, pix2pix or cut run does)"
        )
    x = to_unit(torch.from_numpy(to_array(image)))[None]
    return to_png(model.translate(x, direction))
