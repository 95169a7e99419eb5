"""Training health: warnings, with advice, when a GAN run goes wrong in a recognisable way.

The loop feeds a :class:`HealthMonitor` every logged row of scalars, every preview grid and every
non-finite value. It watches for four failures:

- ``d_winning``: the discriminator separates real from generated images almost perfectly,
  mean D(x) > ``health.d_win_real`` and mean D(G(z)) < ``health.d_win_fake``, for
  ``health.d_win_steps`` logged steps in a row. The generator's gradient then vanishes (Goodfellow
  et al. 2014, section 3; Arjovsky & Bottou 2017). Only for losses whose D outputs are
  probabilities; a WGAN critic's outputs are unbounded scores.
- ``d_weak``: the discriminator cannot tell real from generated images at all, D(x) and D(G(z))
  both within ``health.d_weak_margin`` of 0.5 (its loss flat at chance) for ``health.d_weak_steps``
  logged steps in a row: G is then trained against noise rather than a critic (the seed notes'
  "balancing G and D": D learns too slowly, or G is updated too often).
- ``collapse``: the diversity of the fixed-noise previews, the mean pairwise RMS distance between
  the preview images, falls below ``health.collapse_fraction`` of its early value (the maximum over
  the first ``health.collapse_warmup`` previews). Different noise giving near-identical images is
  mode collapse (Salimans et al. 2016; Arjovsky & Bottou 2017).
- ``non_finite``: a loss became NaN or infinite (the loop then stops with TrainingError).

Each event becomes a row ``{"step", "event", "message"}`` in ``metrics.jsonl`` and a line in
``run.log``; the first of each kind is also printed, with the config changes to try. The preview
diversity itself is logged as ``preview_diversity``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

log = logging.getLogger("gankit")

EVENTS = {
    "d_winning": "the discriminator is winning",
    "d_weak": "the discriminator is too weak",
    "collapse": "the previews are collapsing",
    "non_finite": "a value became non-finite",
}
"""Event name -> headline, as shown in warnings and in the report."""


class MetricsSink(Protocol):
    def write(self, step: int, values: dict[str, float]) -> None: ...
    def event(self, step: int, record: dict) -> None: ...


def preview_diversity(images: torch.Tensor) -> float | None:
    """Mean pairwise RMS distance between images (0 = all identical; None for fewer than two).

    Per-pixel RMS rather than plain L2, so the value does not grow with the image size: images in
    [-1, 1] give values in [0, 2].
    """
    if images.shape[0] < 2:
        return None
    flat = images.detach().float().cpu().flatten(1)
    return (torch.pdist(flat) / flat.shape[1] ** 0.5).mean().item()


class HealthMonitor:
    """Watches a run's logged scalars and previews; see the module docstring.

    ``metrics`` receives diversity values (``write``) and event rows (``event``). ``probabilities``
    says whether ``d_real``/``d_fake`` are probabilities; ``advice`` maps event names to text.
    """

    def __init__(
        self,
        cfg,
        metrics: MetricsSink,
        probabilities: bool = False,
        advice: dict[str, str] | None = None,
    ):
        self.cfg, self.metrics = cfg, metrics
        self.probabilities = probabilities
        self.advice = advice or {}
        self.win_streak = self.weak_streak = 0
        self.diversities: list[float] = []
        self.active: set[str] = set()  # conditions that hold now; an event fires when one starts
        self.warned: set[str] = set()  # kinds already printed to the terminal

    # --- the checks ----------------------------------------------------------------------------

    def observe_row(self, step: int, row: dict[str, float], emit: bool = True) -> None:
        """A logged row of scalars: the D-winning check."""
        if not (self.cfg.enabled and self.probabilities) or not {"d_real", "d_fake"} <= set(row):
            return
        c = self.cfg
        winning = row["d_real"] > c.d_win_real and row["d_fake"] < c.d_win_fake
        self.win_streak = self.win_streak + 1 if winning else 0
        if self.win_streak >= c.d_win_steps:
            self._fire(
                "d_winning",
                step,
                f"D(x) > {c.d_win_real:g} and D(G(z)) < {c.d_win_fake:g} for {self.win_streak} "
                f"logged steps (now D(x) {row['d_real']:.3f}, D(G(z)) {row['d_fake']:.3g})",
                emit,
            )
        else:
            self.active.discard("d_winning")
        self._check_weak(step, row, emit)

    def _check_weak(self, step: int, row: dict[str, float], emit: bool) -> None:
        c = self.cfg
        weak = (
            abs(row["d_real"] - 0.5) < c.d_weak_margin
            and abs(row["d_fake"] - 0.5) < c.d_weak_margin
        )
        self.weak_streak = self.weak_streak + 1 if weak else 0
        if self.weak_streak >= c.d_weak_steps:
            self._fire(
                "d_weak",
                step,
                f"D(x) and D(G(z)) within {c.d_weak_margin:g} of 0.5 for {self.weak_streak} "
                f"logged steps (now {row['d_real']:.3f} and {row['d_fake']:.3f})",
                emit,
            )
        else:
            self.active.discard("d_weak")

    def observe_previews(self, step: int, images: torch.Tensor) -> float | None:
        """A preview grid from the fixed noise: log its diversity and check for collapse."""
        if not self.cfg.enabled:
            return None
        div = preview_diversity(images)
        if div is None:
            return None
        self.metrics.write(step, {"preview_diversity": div})
        self._check_diversity(step, div, emit=True)
        return div

    def _check_diversity(self, step: int, div: float, emit: bool) -> None:
        early = self.diversities[: self.cfg.collapse_warmup]
        self.diversities.append(div)
        if not early:
            return
        ref = max(early)
        if div < self.cfg.collapse_fraction * ref:
            self._fire(
                "collapse",
                step,
                f"preview diversity {div:.3g} is below {self.cfg.collapse_fraction:g} of its "
                f"early value {ref:.3g}",
                emit,
            )
        else:
            self.active.discard("collapse")

    def non_finite(self, step: int, message: str) -> None:
        """Record a NaN/inf before the loop raises (the error message itself is printed)."""
        if self.cfg.enabled:
            self._record("non_finite", step, message)

    # --- events --------------------------------------------------------------------------------

    def _fire(self, kind: str, step: int, detail: str, emit: bool) -> None:
        if kind in self.active:  # one event per episode, not one per logged step
            return
        self.active.add(kind)
        if not emit:
            return
        advice = self.advice.get(kind, "")
        message = f"{EVENTS[kind]}: {detail}" + (f"; {advice}" if advice else "")
        self._record(kind, step, message)
        if kind not in self.warned:
            self.warned.add(kind)
            tqdm.write(f"warning: step {step}: {message}")

    def _record(self, kind: str, step: int, message: str) -> None:
        log.warning("step %d: %s", step, message)
        self.metrics.event(step, {"event": kind, "message": message})

    # --- resume --------------------------------------------------------------------------------

    def replay(self, rows: Iterable[dict], until: int) -> None:
        """Rebuild the state from a resumed run's earlier rows (up to step ``until``), silently."""
        for row in rows:
            step = row.get("step", 0)
            if step > until:
                continue
            if "event" in row:
                self.warned.add(row["event"])
            elif "preview_diversity" in row:
                self._check_diversity(step, row["preview_diversity"], emit=False)
            else:
                self.observe_row(step, row, emit=False)


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` (missing file: none); torn or garbled lines are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # JSON errors and bytes that are not UTF-8
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
