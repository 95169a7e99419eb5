"""The images to evaluate: samples of a GAN run, translations of a translation run, or a folder.

All come back as uint8 (N, C, S, S) with the data settings (size, channels, fit) that say how
reference images must be brought to match them; a generator's [-1, 1] output is mapped by
:func:`to_uint8`, ``round(127.5 x + 127.5)`` (see :mod:`gankit.evaluation.evaluate` for the whole
protocol).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from gankit.config import DataConfig
from gankit.data.images import scan_images
from gankit.data.sources import load_source
from gankit.errors import CheckpointError, ConfigError, DataError


def to_uint8(images: Tensor) -> Tensor:
    """Generator output in [-1, 1] -> uint8, rounding to the nearest grey level."""
    return (images.detach().float().cpu().clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8)


@dataclass
class Samples:
    """Images to evaluate and where they came from."""

    images: Tensor
    """uint8 (N, C, S, S)."""
    origin: str
    step: int | None
    data: DataConfig
    """Size, channels, fit (and, for a run, the training source and root) of the images."""
    is_run: bool
    ema: bool = False
    """Whether the samples came from the EMA generator."""


def generate_samples(
    run: str | Path,
    n: int,
    *,
    ema: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
) -> Samples:
    """``n`` uint8 samples from a GAN run's newest (or the given) checkpoint.

    ``ema``: None samples the EMA generator when the run has one (as its previews do).
    """
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative
    from gankit.inference.sampling import generate, resolve_ema

    run = Path(run)
    if not run.is_dir():
        raise CheckpointError(
            f"{run} does not exist: give a GAN run directory or a folder of images"
        )
    loaded = load_role(run, Generative, device=device, checkpoint=checkpoint)
    ema = resolve_ema(ema, loaded.model, run)
    images = to_uint8(generate(loaded.model, n, seed=seed, ema=ema))
    return Samples(images, str(run), loaded.step, loaded.cfg.data, is_run=True, ema=ema)


def translated_samples(
    run: str | Path,
    n: int,
    direction: str | None = None,
    *,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    batch_size: int = 64,
) -> Samples:
    """Up to ``n`` test images of a translation run's source domain, translated, as uint8.

    ``direction`` defaults to AtoB, or to the one direction of a one-sided run.
    """
    from gankit.data.stream import to_unit
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Translator
    from gankit.registries import task_class

    loaded = load_role(run, Translator, device=device, checkpoint=checkpoint)
    model = loaded.model
    direction = direction or ("AtoB" if "AtoB" in model.directions else model.directions[0])
    model.generator(direction)  # a direction the run does not have fails before any work
    inputs = task_class(loaded.cfg.task).test_inputs(loaded.cfg, direction)[:n]
    out = [
        to_uint8(model.translate(to_unit(chunk), direction)) for chunk in inputs.split(batch_size)
    ]
    data = dataclasses.replace(loaded.cfg.data, source=f"{run} ({direction})")
    return Samples(torch.cat(out), str(run), loaded.step, data, is_run=True)


def folder_config(folder: str | Path, n: int, *, fit: str = "resize") -> DataConfig:
    """The data settings that read up to ``n`` images of a folder at its first image's size
    and channels (sorted names)."""
    files = scan_images(
        folder, label="gankit evaluate:", hint="give a GAN run directory or a folder of images"
    )
    try:
        with Image.open(files[0]) as first:
            size, mode = min(first.size), first.mode
    except OSError as e:
        raise DataError(f"{files[0]}: not an image file that PIL can read ({e})") from None
    channels = 1 if mode in ("1", "L", "LA", "I", "I;16", "F") else 3
    return DataConfig(
        source=f"folder:{folder}",
        image_size=size,
        channels=channels,
        fit=fit,
        limit=n,
        in_memory="yes",
        workers=2 if min(n, len(files)) > 2000 else 0,  # worker start-up outweighs small folders
    )


def folder_samples(
    folder: str | Path, n: int, *, fit: str = "resize", progress: bool = True
) -> Samples:
    """Up to ``n`` images of a folder (sorted names), at the first image's size and channels."""
    dcfg = folder_config(folder, n, fit=fit)
    data = load_source(dcfg, progress=progress)
    return Samples(data.images, str(folder), None, dcfg, is_run=False)  # type: ignore[arg-type]


def load_samples(
    path: str | Path,
    n: int,
    *,
    ema: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    fit: str | None = None,
    progress: bool = True,
    direction: str | None = None,
) -> Samples:
    """A GAN run directory (it has ``config.yaml``), a translation run (its source domain's test
    images, translated in ``direction``), or a folder of images."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p} does not exist: give a GAN run directory or a folder of images")
    if (p / "config.yaml").is_file():
        from gankit.inference.roles import Translator
        from gankit.registries import load_config, task_class

        if Translator in task_class(load_config(p / "config.yaml").task).roles:
            if ema:
                raise ConfigError(f"--ema: {p} is a translation run; it has no EMA generator")
            return translated_samples(p, n, direction, device=device, checkpoint=checkpoint)
        return generate_samples(p, n, ema=ema, seed=seed, device=device, checkpoint=checkpoint)
    if ema or checkpoint:
        raise ConfigError(f"--ema and --checkpoint need a run directory; {p} has no config.yaml")
    return folder_samples(p, n, fit=fit or "resize", progress=progress)
