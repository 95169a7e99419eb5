"""Atomic checkpoints and safe loading.

A checkpoint is one ``torch.save`` file holding plain containers of tensors and numbers, written
to a temporary file in the same folder, flushed to disk and renamed over the target, so a crash or
Ctrl-C never leaves a half-written checkpoint. Loading uses ``weights_only=True``: a checkpoint
cannot run code.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch

from gankit.errors import CheckpointError

FORMAT = 2
"""2: named parts (gankit 0.2); 1: one task_state dict (gankit 0.1), no longer read."""
_STEP_FILE = re.compile(r"step-(\d+)\.pt$")
BEST_FILE = "best.pt"
"""The best-scoring checkpoint (``eval.every``); never pruned, never taken for resuming."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically, readable as the umask allows (like any new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 whatever the umask
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, or raise a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        kind = type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a gankit checkpoint ({kind}); "
            "use an earlier one from the same checkpoints/ folder"
        ) from None
    if isinstance(state, dict) and state.get("format") == 1:
        raise CheckpointError(
            f"{path} was written by gankit 0.1 (checkpoint format 1): this version reads format "
            f"{FORMAT}; sample or resume it with gankit 0.1, or train again"
        )
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gankit checkpoint (format {FORMAT} expected)")
    return state


def list_checkpoints(folder: str | Path) -> list[Path]:
    """``step-*.pt`` files in ``folder``, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.search(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest checkpoint of a run directory, or a CheckpointError saying what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise CheckpointError(
            f"{run_dir} has no checkpoints/step-*.pt: was the run stopped before its first checkpoint?"
        )
    return found[-1]


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints."""
    for p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)


def best_checkpoint(run_dir: str | Path) -> Path:
    """Where a run keeps its best-scoring checkpoint: ``RUN/checkpoints/best.pt``."""
    return Path(run_dir) / "checkpoints" / BEST_FILE


def read_best(run_dir: str | Path) -> dict | None:
    """The ``{"key", "value", "step"}`` record saved in ``best.pt``, or None if there is none."""
    path = best_checkpoint(run_dir)
    if not path.is_file():
        return None
    best = load_checkpoint(path).get("best")
    return best if isinstance(best, dict) else None
