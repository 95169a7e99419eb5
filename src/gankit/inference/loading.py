"""Loading a trained run for the commands: only the networks, on the device asked for, in fp32.

``sample``, ``evaluate``, ``interpolate``, ``arithmetic``, ``evaluate-classifier`` and classifier
features read a run directory through :func:`load_run`. It builds no optimizer, data stream or
training runtime: the run's ``train.device``, ``train.autocast`` and ``train.compile`` do not
matter, so a run trained on a GPU in fp16 samples on a CPU. The model it returns implements the
task's roles (:mod:`gankit.inference.roles`); :func:`load_role` also checks that the run has the one a
command needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankit.config import Config
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.runtime import resolve_device
from gankit.errors import CheckpointError, ConfigError, first_line
from gankit.registries import load_config, task_class

__all__ = ["LoadedRun", "load_role", "load_run"]

_ROLE_WORDS = {
    "Generative": "it has no generator to sample from",
    "Critic": "it has no discriminator to rank with",
    "Classifier": "give a classifier run (task: classifier or ssgan)",
    "Translator": "it does not translate images",
    "Exportable": "gankit export writes the generator of a GAN run (task gan); this one has "
    "none it can write (translate with gankit translate; a classifier stays in its run)",
    "ConditionalGenerative": "its generator takes no class labels",
}


@dataclass
class LoadedRun:
    """A run's config, the step of the checkpoint read, and its model."""

    path: Path
    cfg: Config
    step: int
    model: Any


def load_run(
    run_dir: str | Path, device: str = "cpu", checkpoint: str | Path | None = None
) -> LoadedRun:
    """A run's networks from its newest (or the given) checkpoint, for inference.

    Paths are resolved relative to ``run_dir``, so a run directory copied elsewhere still works.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a gankit run directory (no config.yaml)")
    return _load(run_dir, load_config(run_dir / "config.yaml"), device, checkpoint)


def load_role(
    run_dir: str | Path,
    role: type,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
) -> LoadedRun:
    """:func:`load_run`, refused with a one-line ConfigError unless the run's task has ``role``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        return load_run(run_dir, device, checkpoint)  # which says what is missing
    cfg = load_config(run_dir / "config.yaml")
    if role not in task_class(cfg.task).roles:
        why = _ROLE_WORDS.get(role.__name__, f"it has no {role.__name__}")
        raise ConfigError(f"{run_dir} is a {cfg.task} run: {why}")
    return _load(run_dir, cfg, device, checkpoint)


def _load(run_dir: Path, cfg: Config, device: str, checkpoint: str | Path | None) -> LoadedRun:
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    dev = resolve_device(device)
    state = load_checkpoint(ckpt, dev)
    if state.get("task") != cfg.task:
        raise CheckpointError(
            f"{ckpt} holds a {state.get('task')!r} model, but {run_dir} is a {cfg.task!r} run"
        )
    try:
        model = task_class(cfg.task).load_model(cfg, state["parts"], dev)
    except (KeyError, RuntimeError, ValueError) as e:
        first = first_line(e)
        raise CheckpointError(
            f"{ckpt} does not match {run_dir / 'config.yaml'} ({type(e).__name__}: {first})"
        ) from None
    return LoadedRun(run_dir, cfg, state["step"], model)
