"""The run directory: its name, its one log, its metrics file, and who may write it.

A run directory holds everything a run produced (``config.yaml``, ``metrics.jsonl``,
``changes.jsonl``, ``tb/``, ``samples/``, ``checkpoints/``, ``run.log``); every command reads or
writes run directories. These helpers are the loop's bookkeeping, apart from its steps.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import torch

from gankit.engine.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from gankit.engine.locks import describe
from gankit.errors import CheckpointError, ConfigError, first_line

log = logging.getLogger("gankit")


def new_run_dir(recipe: str, base: str | Path = "runs") -> Path:
    """``runs/<recipe>-<YYYYmmdd-HHMMSS>``, made unique with a suffix if needed."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{recipe}-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = Path(base) / f"{recipe}-{stamp}-{k}"
    return path


class StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def setup_logging(run_dir: Path) -> logging.Handler:
    # Scraped file names may not be valid UTF-8: write them escaped rather than fail.
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


class NullMetrics:
    """What a process that is not rank 0 writes: nothing (one writer per run directory)."""

    def write(self, step: int, values: dict[str, float]) -> None:
        return None

    def event(self, step: int, record: dict) -> None:
        return None

    def close(self) -> None:
        return None


class MetricsWriter:
    """One JSON object per logged step in ``metrics.jsonl``, mirrored to TensorBoard."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        """``purge_step``: a resumed run's step; TensorBoard drops what was logged after it."""
        self.file = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        from torch.utils.tensorboard import SummaryWriter

        purge = None if purge_step is None else purge_step + 1
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge)

    def write(self, step: int, values: dict[str, float]) -> None:
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if k != "time":
                self.tb.add_scalar(k, v, step)

    def event(self, step: int, record: dict) -> None:
        """A non-scalar row, such as a training-health event (JSONL only)."""
        self.file.write(json.dumps({"step": step, **record}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        self.tb.close()


class RunExistsError(ConfigError):
    """``gankit train --out DIR`` into a directory that already holds a run."""


def refuse_existing_run(run_dir: Path) -> None:
    """A RunExistsError if ``run_dir`` already holds a run (its config, checkpoints or metrics)."""
    held = [n for n in ("config.yaml", "metrics.jsonl") if (run_dir / n).exists()]
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()):
        held.append("checkpoints/")
    if held:
        raise RunExistsError(
            f"{run_dir} already holds a run ({', '.join(held)}): continue it with "
            f"`gankit train --resume {run_dir}`, or train into a new --out directory"
        )


def record_events(run_dir: Path, metrics: MetricsWriter, step: int, events: list[dict]) -> None:
    """Resume and fine-tuning events: metrics.jsonl rows, run.log lines, ``changes.jsonl``."""
    for record in events:
        metrics.event(step, record)
        log.info("step %d: %s", step, json.dumps(record))
        if record["event"] == "config_change":
            with open(run_dir / "changes.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **record}) + "\n")


LOCK_NAME = ".gankit.lock"
"""Held by the training process for its whole life (see :mod:`gankit.engine.locks`)."""
_ORPHAN = re.compile(r"^\..+\.pt\..+\.tmp$")  # save_checkpoint's temporary files


def _probe_write(folder: Path) -> None:
    """Create and remove an empty file: raises OSError where writing is not possible."""
    probe = folder / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and parents), or a one-line ConfigError saying why it cannot be."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file: give a directory for the run")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _probe_write(run_dir)
    except OSError as e:
        raise ConfigError(
            f"--out {run_dir}: cannot write there ({e.strerror or e}); choose another directory"
        ) from None


def run_busy(run_dir: Path, holder: dict) -> str:
    """The message for a second writer of ``run_dir``."""
    pid = holder.get("pid")
    stop = f" or stop it (kill {pid})" if pid else ""
    return f"{run_dir} is being trained by {describe(holder)}: wait for it to finish{stop}"


def report_stale(run_dir: Path, holder: dict) -> None:
    msg = (
        f"the previous training of {run_dir} ({describe(holder)}) ended without releasing its "
        "lock (killed, or its machine stopped); this process has taken over"
    )
    log.warning(msg)
    from tqdm import tqdm

    tqdm.write(f"warning: {msg}")


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


def _rewrite_rows(path: Path, keep) -> None:
    if not path.is_file():
        return
    lines = path.read_bytes().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn or garbled line
        if isinstance(row, dict) and keep(row):
            kept.append(line if line.endswith(b"\n") else line + b"\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)


def trim_history(run_dir: Path, step: int) -> None:
    """Drop rows logged after ``step`` (the checkpoint resumed from), so that a resumed run's
    metrics equal an uninterrupted one's; resume events of that step are recorded afresh."""

    def keep(row: dict) -> bool:
        s = row.get("step", 0)
        if s == step and row.get("event") in ("config_change", "init_from"):
            return False
        return not (isinstance(s, int | float) and s > step)

    _rewrite_rows(run_dir / "metrics.jsonl", keep)
    _rewrite_rows(run_dir / "changes.jsonl", keep)


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
        _probe_write(folder)
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
