"""The runs an explorer shows: each loaded once, or kept as the one-line reason it could not be.

A :class:`Slot` answers what the page needs to know about a run (what it can do: sample, walk,
mix styles, translate, project) and its training curves and health events from
``metrics.jsonl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankit.engine.health import read_rows
from gankit.errors import GankitError, first_line
from gankit.inference.loading import LoadedRun, load_run
from gankit.inference.roles import Exportable, Generative, Translator, WSpaceModel, label_classes
from gankit.inference.wspace import mapped_generator


@dataclass
class Slot:
    """One run of the explorer: loaded (``run``), or not (``error``, one line)."""

    index: int
    path: Path
    run: LoadedRun | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.path.resolve().name or str(self.path)

    @property
    def model(self) -> Any:
        if self.run is None:
            raise GankitError(f"{self.name} could not be loaded: {self.error}")
        return self.run.model

    def has_w(self) -> bool:
        """Whether the run's generator has a W space (style mixing, W projection)."""
        m = self.model
        return isinstance(m, WSpaceModel) and m.w_generator() is not None

    def info(self) -> dict[str, Any]:
        """What the page shows and offers for this run."""
        out: dict[str, Any] = {"index": self.index, "name": self.name, "path": str(self.path)}
        if self.run is None:
            return {**out, "error": self.error}
        m, cfg = self.run.model, self.run.cfg
        generative = isinstance(m, Generative)
        w = generative and self.has_w()
        return {
            **out,
            "task": cfg.task,
            "step": self.run.step,
            "image_size": cfg.data.image_size,
            "channels": cfg.data.channels,
            "generative": generative,
            "has_ema": bool(generative and m.has_ema),
            "classes": list(label_classes(m) or ()),
            "w_space": w,
            "num_ws": mapped_generator(m).num_ws if w else 0,
            "translator": isinstance(m, Translator),
            "projectable": w or isinstance(m, Exportable),
        }


def load_slots(paths: list[str | Path], device: str = "cpu") -> list[Slot]:
    """Load every run once; a run that fails keeps its one-line reason instead of a model."""
    slots = []
    for i, p in enumerate(paths):
        slot = Slot(i, Path(p))
        try:
            slot.run = load_run(p, device)
        except GankitError as e:
            slot.error = first_line(e)
        except Exception as e:  # a damaged checkpoint can fail anywhere in torch
            slot.error = f"{type(e).__name__}: {first_line(e)}"
        slots.append(slot)
    return slots


_NOT_CURVES = {"step", "time", "event"}


def curves(run_dir: Path, max_points: int = 400) -> dict[str, Any]:
    """Training curves (every numeric key of ``metrics.jsonl``, thinned to ``max_points`` each)
    and its events (health warnings, config changes), for the page's charts."""
    series: dict[str, list[tuple[int, float]]] = {}
    events = []
    for row in read_rows(run_dir / "metrics.jsonl"):
        step = row.get("step")
        if not isinstance(step, int):
            continue
        if "event" in row:
            if row["event"] != "start":
                events.append({"step": step, "event": str(row["event"]), **_message(row)})
            continue
        for key, value in row.items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if key not in _NOT_CURVES and ok and math.isfinite(value):
                series.setdefault(key, []).append((step, float(value)))
    thinned = {k: v[:: max(1, math.ceil(len(v) / max_points))] for k, v in series.items()}
    return {"series": thinned, "events": events[-200:]}


def _message(row: dict) -> dict[str, str]:
    text = row.get("message")
    if isinstance(text, str):
        return {"message": first_line(text, 300)}
    rest = {k: v for k, v in row.items() if k not in ("step", "event")}
    return {"message": first_line(str(rest), 300)} if rest else {}
