"""Sampling: image grids, individual files, seeded noise and ranking, over a Generative.

Pure helpers: they take a :class:`~gankit.inference.roles.Generative` (or :class:`~gankit.inference.roles.Critic`)
and know nothing of tasks or run directories (see :mod:`gankit.inference.loading` for loading a run).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import save_image

from gankit.errors import ConfigError
from gankit.inference.roles import Critic, Generative, label_classes


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save images in [-1, 1] as one PNG grid (about square), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = images.shape[0]
    nrow = nrow or max(1, int(round(n**0.5)))
    save_image(
        images.detach().float().cpu(),
        path,
        nrow=nrow,
        normalize=True,
        value_range=(-1, 1),
        padding=2,
    )
    return path


def save_preview(rows: dict[str, torch.Tensor], path: str | Path) -> Path:
    """A task's named preview rows as one PNG: a square grid for one row, else one row each."""
    if len(rows) == 1:
        return save_grid(next(iter(rows.values())), path)
    n = min(len(r) for r in rows.values())
    return save_grid(torch.cat([r[:n].detach().float().cpu() for r in rows.values()]), path, nrow=n)


def resolve_ema(requested: bool | None, model: Generative, run: str | Path) -> bool:
    """The ``--ema`` choice: None means "when the run was trained with gan.ema"."""
    if requested and not model.has_ema:
        raise ConfigError(f"--ema: {run} was trained without an EMA generator (gan.ema=0)")
    return model.has_ema if requested is None else requested


def seeded_noise(
    model: Generative,
    n: int,
    seed: int = 0,
    batch_size: int = 256,
    noise_std: float = 1.0,
    truncation: float | None = None,
    noise_mean: float = 0.0,
) -> torch.Tensor:
    """The ``n`` latent codes (on the CPU) that :func:`generate` uses for ``seed``.

    ``truncation`` T redraws every component with ``|z| > T`` until it falls inside (the
    truncation trick, Brock et al. 2019, sec. 3.1), trading variety for typical samples;
    ``noise_std`` S then scales the codes (``gankit sample --noise-std``: the seed notes' sampling
    at a smaller noise scale, a cruder form of the same trade). Both keep ``seed``'s codes
    otherwise unchanged, so a grid at T or S shows the same samples as at full variety.
    ``noise_mean`` M then shifts every component (``--noise-mean``, the seed notes' ``gen_mean``
    beside ``gen_std``): codes ``M + S·z``.
    """
    if noise_std <= 0:
        raise ConfigError(f"--noise-std {noise_std:g} must be positive (1 = the trained noise)")
    if truncation is not None and truncation <= 0:
        raise ConfigError(f"--truncation {truncation:g} must be positive, e.g. 0.7")
    gen = torch.Generator().manual_seed(seed)
    chunks = [
        model.noise(min(batch_size, n - start), generator=gen).cpu()
        for start in range(0, n, batch_size)
    ]
    z = torch.cat(chunks)
    if truncation is not None:
        for _ in range(1000):
            outside = z.abs() > truncation
            if not outside.any():
                break
            redraw = model.noise(len(z), generator=gen).cpu()
            z = torch.where(outside, redraw, z)
        else:
            raise ConfigError(f"--truncation {truncation:g} is too small for this noise: raise it")
    return z * noise_std + noise_mean if noise_mean else z * noise_std


@torch.no_grad()
def generate_from(
    model: Generative,
    z: torch.Tensor,
    ema: bool = True,
    batch_size: int = 256,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images in [-1, 1] (on the CPU) from the latent codes ``z`` (and class ``labels``).

    A conditional generator without ``labels`` draws every class in turn over all of ``z``
    (labels 0, 1, ..., K-1, 0, ...), not afresh in every chunk of ``batch_size``.
    """
    if labels is None and label_classes(model):
        labels = model.default_labels(len(z)).cpu()
    if labels is None:
        return torch.cat([model.sample(chunk, ema=ema).cpu() for chunk in z.split(batch_size)])
    return torch.cat(
        [
            model.sample(chunk, labels=y, ema=ema).cpu()
            for chunk, y in zip(z.split(batch_size), labels.split(batch_size), strict=True)
        ]
    )


@torch.no_grad()
def generate(
    model: Generative,
    n: int,
    seed: int = 0,
    ema: bool = True,
    batch_size: int = 256,
    labels: torch.Tensor | None = None,
    noise_std: float = 1.0,
    truncation: float | None = None,
    noise_mean: float = 0.0,
) -> torch.Tensor:
    """``n`` images in [-1, 1] (on the CPU) from seeded noise (see :func:`seeded_noise`)."""
    z = seeded_noise(model, n, seed, batch_size, noise_std, truncation, noise_mean)
    return generate_from(model, z, ema, batch_size, labels)


def class_index(model: Generative, name: str) -> int:
    """The label of ``--class NAME``: a class name of the run or an index into its classes."""
    classes = label_classes(model)
    if not classes:
        raise ConfigError("--class: this run is unconditional (train with gan.conditional=...)")
    if name in classes:
        return list(classes).index(name)
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    shown = ", ".join(classes[:12]) + (" ..." if len(classes) > 12 else "")
    raise ConfigError(
        f"--class {name!r}: choose a class of this run ({shown}) or an index 0..{len(classes) - 1}"
    )


@torch.no_grad()
def rank_by_discriminator(
    critic: Critic, images: torch.Tensor, top: int, batch_size: int = 256
) -> torch.Tensor:
    """The ``top`` images the discriminator scores most real, best first.

    Keeping the samples D likes best is the simplest form of discriminator rejection sampling
    (Azadi et al. 2019); it trades diversity for quality, so report it as such.
    """
    scores = torch.cat([critic.discriminate(chunk) for chunk in images.split(batch_size)])
    order = scores.argsort(descending=True)[:top]
    return images[order]


def save_individual(images: torch.Tensor, folder: str | Path) -> list[Path]:
    """Each image (in [-1, 1]) as its own PNG, ``000000.png`` ...: one-channel images as grey
    PNGs, as the training data was (torchvision's writer would expand them to RGB), with the
    same rounding as :func:`torchvision.utils.save_image`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    u8 = images.float().clamp(-1, 1).add(1).div(2).mul(255).add(0.5).clamp(0, 255)
    u8 = u8.to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
    paths = []
    for i, arr in enumerate(u8):
        p = folder / f"{i:06d}.png"
        img = Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr)
        img.save(p)
        paths.append(p)
    return paths
