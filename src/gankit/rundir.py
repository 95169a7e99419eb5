"""The run directory: its name, its one log, its metrics file, and who may write it.

A run directory holds everything a run produced (``config.yaml``, ``metrics.jsonl``,
``changes.jsonl``, ``tb/``, ``samples/``, ``checkpoints/``, ``run.log``); every command reads or
writes run directories. These helpers are the loop's bookkeeping, apart from its steps.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import datetime
from pathlib import Path

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
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


class MetricsWriter:
    """One JSON object per logged step in ``metrics.jsonl``, mirrored to TensorBoard."""

    def __init__(self, run_dir: Path):
        self.file = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tb"))

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
