"""Inline SVG line charts for the run report: round axis ticks, series, legend, event markers.

The SVG is plain markup with no script and no external reference, so the report that embeds it
stays one self-contained file (:mod:`gankit.evaluation.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
EVENT_COLOURS = {
    "d_winning": "#d62728",
    "d_weak": "#ff7f0e",
    "collapse": "#9467bd",
    "non_finite": "#000000",
}


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of 10)."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:  # step numbers: whole ticks only
        step = 1 if step < 1 else (5 if step == 2.5 else step)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


@dataclass
class _Plot:
    """The plot area of a chart (pixels) and the data range it shows."""

    left: int
    top: int
    w: int
    h: int
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.w

    def py(self, y: float) -> float:
        return self.top + (1 - (y - self.y0) / (self.y1 - self.y0)) * self.h


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    events: list[dict] | None = None,
    hlines: tuple[float, ...] = (),
    width: int = 540,
    height: int = 250,
) -> str:
    """An SVG line chart of ``{label: [(step, value), ...]}`` with vertical event markers."""
    left, right, top, bottom = 58, 14, 44, 40
    pts = [p for s in series.values() for p in s]
    xs = [x for x, _ in pts] + [e["step"] for e in events or []]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    yt = nice_ticks(min(y for _, y in pts), max(y for _, y in pts))
    w, h = width - left - right, height - top - bottom
    plot = _Plot(left, top, w, h, x0, x1, yt[0], yt[-1])
    out = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="{left}" y="18" class="ct">{escape(title)}</text>',
    ]
    out += _axes(plot, yt, height, hlines)
    out += _event_markers(plot, events or [])
    out += _lines_and_legend(plot, series)
    out.append(
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/></svg>'
    )
    return "".join(out)


def _axes(plot: _Plot, yt: list[float], height: int, hlines: tuple[float, ...]) -> list[str]:
    """Horizontal grid lines with their values, step ticks, the x label and reference lines."""
    left, top, w, h, px, py = plot.left, plot.top, plot.w, plot.h, plot.px, plot.py
    out = []
    for y in yt:
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{py(y) + 4:.1f}" class="yt">{y:.4g}</text>'
        )
    for x in nice_ticks(plot.x0, plot.x1, integer=True):
        if plot.x0 <= x <= plot.x1:
            out.append(f'<text x="{px(x):.1f}" y="{top + h + 16}" class="xt">{x:.6g}</text>')
    out.append(f'<text x="{left + w / 2}" y="{height - 4}" class="xt">step</text>')
    for y in hlines:
        if plot.y0 <= y <= plot.y1:
            out.append(
                f'<line x1="{left}" x2="{left + w}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="hl"/>'
            )
    return out


def _event_markers(plot: _Plot, events: list[dict]) -> list[str]:
    """A dashed vertical line per health event, coloured by kind, named in its tooltip."""
    out = []
    for e in events:
        colour = EVENT_COLOURS.get(e["event"], "#000")
        x = plot.px(e["step"])
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{plot.top}" y2="{plot.top + plot.h}" '
            f'stroke="{colour}" class="ev"><title>{escape(e["event"])} at step {e["step"]}</title></line>'
        )
    return out


def _lines_and_legend(plot: _Plot, series: dict[str, list[tuple[float, float]]]) -> list[str]:
    """One polyline per series (with dots when it has few points) and its legend entry."""
    px, py = plot.px, plot.py
    out = []
    lx = plot.left
    for i, (label, s) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s)
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
        if len(s) <= 30:
            out.extend(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in s
            )
        out.append(
            f'<rect x="{lx}" y="{plot.top - 17}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{plot.top - 8}" class="lg">{escape(label)}</text>'
        )
        lx += 22 + 7 * len(label)
    return out
