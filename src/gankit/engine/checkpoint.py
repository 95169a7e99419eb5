"""Atomic checkpoints and safe loading.

A checkpoint is one ``torch.save`` file holding plain containers of tensors and numbers, written
to a temporary file in the same folder, flushed to disk and renamed over the target, so a crash or
Ctrl-C never leaves a half-written checkpoint. Loading uses ``weights_only=True``: a checkpoint
cannot run code.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import torch

from gankit.errors import CheckpointError, first_line

log = logging.getLogger("gankit")

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


_ORPHAN = re.compile(r"^\..+\.pt\..+\.tmp$")  # save_checkpoint's temporary files


def remove_orphans(folder: Path) -> int:
    """Delete the temporary files of checkpoint writes that a killed process left behind."""
    n = 0
    if folder.is_dir():
        for p in folder.iterdir():
            if _ORPHAN.match(p.name):
                p.unlink(missing_ok=True)
                n += 1
    return n


def latest_or_none(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def choose_checkpoint(run_dir: Path, name: str | None) -> Path:
    """``--checkpoint``: a file name in ``checkpoints/``, a step number or a path; default newest."""
    if name is None:
        return latest_checkpoint(run_dir)
    folder = run_dir / "checkpoints"
    candidates = [Path(name), folder / name]
    if name.isdigit():
        candidates.append(folder / f"step-{int(name):06d}.pt")
    for c in candidates:
        if c.is_file() and c.name != "best.pt":
            return c
    have = ", ".join(p.name for p in list_checkpoints(folder)) or "none"
    raise CheckpointError(f"--checkpoint {name}: no such checkpoint in {folder} (have: {have})")


def read_resume_checkpoint(run_dir: Path, ckpt: Path, device: torch.device) -> dict:
    """Load the checkpoint to resume from; a broken one names the one before it."""
    try:
        return load_checkpoint(ckpt, device)
    except CheckpointError as e:
        earlier = [p for p in list_checkpoints(run_dir / "checkpoints") if p.name < ckpt.name]
        if not earlier:
            raise
        raise CheckpointError(
            f"{e}: resume from the one before it with "
            f"gankit train --resume {run_dir} --checkpoint {earlier[-1].name}"
        ) from None


def supersede_later(folder: Path, ckpt: Path) -> None:
    """Move step checkpoints newer than ``ckpt`` aside, so that the resumed run's are the newest."""
    later = [p for p in list_checkpoints(folder) if p.name > ckpt.name]
    if not later:
        return
    dest = folder / f"superseded-{time.strftime('%Y%m%d-%H%M%S')}"
    dest.mkdir(exist_ok=True)
    for p in later:
        os.replace(p, dest / p.name)
    log.info("moved %d later checkpoint(s) to %s", len(later), dest)


def state_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) checkpoint state: about the size of its file."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(state_bytes(v) for v in obj)
    return 0


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def check_room(folder: Path, state: dict) -> None:
    """Start-up check: ``folder`` is writable and has room for two checkpoints of ``state``."""
    need = 2 * state_bytes(state) + 2**20
    try:
        probe_write(folder)
    except OSError as e:
        raise CheckpointError(
            f"{folder} is not writable ({e.strerror or e}): fix its permissions or train into "
            "another --out"
        ) from None
    free = shutil.disk_usage(folder).free
    if free < need:
        raise CheckpointError(
            f"{folder}: {_mb(free)} free, but two checkpoints of this model need about "
            f"{_mb(need)}: free some space or train into another --out"
        )


def write_failed(path: Path, state: dict, error: BaseException) -> CheckpointError:
    """The one-line error for a checkpoint that could not be written (the previous one is kept)."""
    free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
    oserror = isinstance(error, OSError) and error.strerror
    reason = error.strerror if oserror else first_line(error, 120)
    prev = latest_or_none(path.parent)
    kept = f"; {prev.name} is kept" if prev else ""
    return CheckpointError(
        f"could not write {path} ({reason}): about {_mb(state_bytes(state))} needed, "
        f"{_mb(free)} free{kept}; free space or fix permissions, then gankit train --resume "
        f"{path.parent.parent}"
    )


def probe_write(folder: Path) -> None:
    """Create and remove an empty file: raises OSError where writing is not possible."""
    probe = folder / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
