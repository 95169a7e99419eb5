"""A run's metrics file: one JSON object per logged step in ``metrics.jsonl`` (mirrored to
TensorBoard), event rows, and trimming the history of a resumed run."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("gankit")


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


def record_events(run_dir: Path, metrics: MetricsWriter, step: int, events: list[dict]) -> None:
    """Resume and fine-tuning events: metrics.jsonl rows, run.log lines, ``changes.jsonl``."""
    for record in events:
        metrics.event(step, record)
        log.info("step %d: %s", step, json.dumps(record))
        if record["event"] == "config_change":
            with open(run_dir / "changes.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **record}) + "\n")


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
