"""The run directory: its name, its creation, its one log, and who may write it.

A run directory holds everything a run produced (``config.yaml``, ``metrics.jsonl``,
``changes.jsonl``, ``tb/``, ``samples/``, ``checkpoints/``, ``run.log``); every command reads or
writes run directories. Its metrics file is :mod:`gankit.engine.metrics_log`, its checkpoints
:mod:`gankit.engine.checkpoint`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from gankit.engine.checkpoint import probe_write
from gankit.engine.locks import describe
from gankit.errors import ConfigError

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


def setup_logging(run_dir: Path) -> logging.Handler:
    # Scraped file names may not be valid UTF-8: write them escaped rather than fail.
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


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


LOCK_NAME = ".gankit.lock"
"""Held by the training process for its whole life (see :mod:`gankit.engine.locks`)."""


def make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and parents), or a one-line ConfigError saying why it cannot be."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file: give a directory for the run")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe_write(run_dir)
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
