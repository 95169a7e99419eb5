"""Sampling from trained runs: image grids and individual files."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from gankit.checkpoint import latest_checkpoint, load_checkpoint
from gankit.config import Config, load_config
from gankit.errors import CheckpointError, ConfigError
from gankit.runtime import Runtime


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


def load_run(run_dir: str | Path, device: str = "cpu", checkpoint: str | Path | None = None):
    """Rebuild a run's task from ``config.yaml`` and its newest (or the given) checkpoint.

    Paths are resolved relative to ``run_dir``, so a run directory copied elsewhere still works.
    Returns ``(config, task, step)``.
    """
    from gankit.tasks import TASKS

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a gankit run directory (no config.yaml)")
    cfg: Config = load_config(run_dir / "config.yaml")
    cfg.train.device = device
    cfg.train.compile = False
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    state = load_checkpoint(ckpt)
    if state.get("task") != cfg.task:
        raise CheckpointError(
            f"{ckpt} holds a {state.get('task')!r} model, but {run_dir} is a {cfg.task!r} run"
        )
    task = TASKS[cfg.task](cfg, Runtime.from_config(cfg.train))
    task.load_state_dict(state["task_state"], weights_only=True)
    return cfg, task, state["step"]


def resolve_ema(requested: bool | None, task, run: str | Path) -> bool:
    """The ``--ema`` choice for ``task``: None means "when the run was trained with gan.ema"."""
    has_ema = getattr(task, "ema", None) is not None
    if requested and not has_ema:
        raise ConfigError(f"--ema: {run} was trained without an EMA generator (gan.ema=0)")
    return has_ema if requested is None else requested


def seeded_noise(task, n: int, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """The ``n`` latent codes (on the CPU) that :func:`generate` uses for ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    chunks = [
        task.noise(min(batch_size, n - start), generator=gen).cpu()
        for start in range(0, n, batch_size)
    ]
    return torch.cat(chunks)


@torch.no_grad()
def generate_from(task, z: torch.Tensor, ema: bool = True, batch_size: int = 256) -> torch.Tensor:
    """Images in [-1, 1] (on the CPU) from the latent codes ``z``."""
    return torch.cat([task.sample(chunk, ema=ema).cpu() for chunk in z.split(batch_size)])


@torch.no_grad()
def generate(task, n: int, seed: int = 0, ema: bool = True, batch_size: int = 256) -> torch.Tensor:
    """``n`` images in [-1, 1] (on the CPU) from seeded noise."""
    return generate_from(task, seeded_noise(task, n, seed, batch_size), ema, batch_size)


@torch.no_grad()
def rank_by_discriminator(
    task, images: torch.Tensor, top: int, batch_size: int = 256
) -> torch.Tensor:
    """The ``top`` images the discriminator scores most real, best first.

    Keeping the samples D likes best is the simplest form of discriminator rejection sampling
    (Azadi et al. 2019); it trades diversity for quality, so report it as such.
    """
    D = task.D
    was_training = D.training
    D.eval()
    try:
        scores = torch.cat(
            [D(chunk.to(task.rt.device)).float().cpu() for chunk in images.split(batch_size)]
        )
    finally:
        D.train(was_training)
    order = scores.argsort(descending=True)[:top]
    return images[order]


def save_individual(images: torch.Tensor, folder: str | Path) -> list[Path]:
    """Each image as its own PNG, ``000000.png`` ..."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = folder / f"{i:06d}.png"
        save_image(img.float(), p, normalize=True, value_range=(-1, 1))
        paths.append(p)
    return paths
