"""Learning-rate range test ("LR finder").

Smith 2017 ("Cyclical Learning Rates for Training Neural Networks", arXiv:1506.01186, section 3.3)
trains for a few hundred steps while raising the learning rate and reads a good lr off the loss
curve; the fast.ai course (2018, lesson 1 onwards, ``learn.lr_find()``) made it routine, with an
exponential sweep, an exponentially smoothed loss and a stop once the loss explodes. This module
is that test as a library function: the caller supplies one training step, and restores the
weights afterwards (the sweep leaves them trained at absurd learning rates).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gankit.drawing import font as load_font
from gankit.errors import ConfigError

__all__ = ["LRFindResult", "lr_find", "plot_lr_find"]


@dataclass(frozen=True)
class LRFindResult:
    """The outcome of ``lr_find``.

    ``lrs`` and ``losses`` (smoothed, bias-corrected) have one entry per step taken, including
    the step that triggered the divergence stop. ``suggestion`` is the lr at the steepest descent
    of the smoothed loss against log(lr); ``min_lr`` the lr at its minimum. fast.ai's rule of thumb
    is to train near ``suggestion`` or about ``min_lr / 10``; both are in the plot. ``diverged``
    says whether the sweep stopped early.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float
    min_lr: float
    diverged: bool


def _suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(lr at the steepest negative slope of loss vs log10(lr) up to the minimum, lr at the minimum).

    Only the part of the curve before the minimum is searched: past it the curve rises, and a
    steep descent there (e.g. a noisy recovery after divergence) would be no advice at all.
    """
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if not finite:
        return lrs[0], lrs[0]
    i_min = min(finite, key=lambda i: losses[i])
    if i_min < 1:
        return lrs[0], lrs[0]
    x = np.log10(np.asarray(lrs[: i_min + 1]))
    y = np.asarray(losses[: i_min + 1])
    slope = np.gradient(y, x)
    return float(lrs[int(np.argmin(slope))]), float(lrs[i_min])


def lr_find(
    step_fn: Callable[[float], float],
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    num: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
) -> LRFindResult:
    """Sweep the learning rate exponentially from ``lr_min`` to ``lr_max`` over ``num`` steps.

    ``step_fn(lr)`` runs one training step at learning rate ``lr`` and returns its loss. The loss
    is smoothed as ``avg = beta * avg + (1 - beta) * loss`` and bias-corrected by dividing by
    ``1 - beta ** (i + 1)`` (as in Adam, Kingma & Ba 2015), so early points are not pulled towards 0.
    The sweep stops after the first step whose smoothed loss exceeds ``diverge`` times the best so
    far, or whose loss is not finite. Note that smoothing lags: with ``beta`` 0.98 the smoothed
    minimum sits a few dozen steps after the raw one, one reason fast.ai suggests ``min_lr / 10``.
    """
    if not 0 < lr_min < lr_max:
        raise ConfigError(f"lr_find lr_min {lr_min} and lr_max {lr_max}: need 0 < lr_min < lr_max")
    if num < 2:
        raise ConfigError(f"lr_find num {num} must be at least 2 steps")
    if not 0 <= beta < 1:
        raise ConfigError(f"lr_find beta {beta} must be in [0, 1): the smoothing factor")
    if diverge <= 1:
        raise ConfigError(f"lr_find diverge {diverge} must be > 1: a multiple of the best loss")
    ratio = lr_max / lr_min
    lrs: list[float] = []
    losses: list[float] = []
    raw: list[float] = []
    avg = 0.0
    best = math.inf
    diverged = False
    for i in range(num):
        lr = lr_min * ratio ** (i / (num - 1))
        loss = float(step_fn(lr))
        lrs.append(lr)
        raw.append(loss)
        if not math.isfinite(loss):
            losses.append(math.inf)
            diverged = True
            break
        avg = beta * avg + (1 - beta) * loss
        smoothed = avg / (1 - beta ** (i + 1))
        losses.append(smoothed)
        if i > 0 and smoothed > diverge * best:
            diverged = True
            break
        best = min(best, smoothed)
    suggestion, min_lr = _suggest(lrs, losses)
    return LRFindResult(lrs, losses, raw, suggestion, min_lr, diverged)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering ``[lo, hi]``."""
    span = hi - lo if hi > lo else abs(hi) or 1.0
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


# Maps a point (lr, loss) of the curve to pixel coordinates (x, y) of the plot.
_ToPixel = Callable[[float, float], tuple[float, float]]


def _loss_range(ys: list[float]) -> tuple[float, float]:
    """(bottom, top) of the loss axis for the losses ``ys`` in sweep order, padded by 5 %."""
    # Cap the y range a little above the first loss so that the divergence spike does not flatten
    # the useful part of the curve; points above the cap are drawn on the top edge.
    y_lo = min(ys)
    cap = ys[0] + 0.5 * (ys[0] - y_lo)
    y_hi = min(max(ys), cap) if cap > y_lo else max(ys)
    if y_hi <= y_lo:
        y_hi = y_lo + 1.0
    pad = 0.05 * (y_hi - y_lo)
    return y_lo - pad, y_hi + pad


def _draw_axes(
    draw: ImageDraw.ImageDraw,
    px: _ToPixel,
    frame: tuple[int, int, int, int],
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    small: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    """The plot frame, grid lines, decade ticks ``1e-k`` on the lr axis and round loss ticks."""
    x0, y0, x1, y1 = frame
    x_lo, x_hi = x_range
    draw.rectangle((x0, y0, x1, y1), outline="black")
    for k in range(math.ceil(x_lo - 1e-9), math.floor(x_hi + 1e-9) + 1):
        x, _ = px(10.0**k, y_range[0])
        draw.line((x, y1, x, y0), fill=(225, 225, 225))
        draw.line((x, y1, x, y1 + 6), fill="black")
        draw.text((x, y1 + 10), f"1e{k}", fill="black", font=small, anchor="mt")
    for t in _nice_ticks(*y_range):
        _, y = px(10.0**x_lo, t)
        draw.line((x0, y, x1, y), fill=(225, 225, 225))
        draw.line((x0 - 6, y, x0, y), fill="black")
        draw.text((x0 - 10, y), f"{t:.3g}", fill="black", font=small, anchor="rm")
    draw.rectangle((x0, y0, x1, y1), outline="black")


def _draw_markers(
    draw: ImageDraw.ImageDraw,
    px: _ToPixel,
    result: LRFindResult,
    pts: list[tuple[float, float]],
    x1: int,
    small: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    """A red ring at the suggestion and a green one at the minimum, labelled left of ``x1``."""
    for lr, colour, label in (
        (result.suggestion, (214, 39, 40), "steepest"),
        (result.min_lr, (44, 160, 44), "minimum"),
    ):
        v = dict(pts).get(lr)
        if v is None:
            continue
        x, y = px(lr, v)
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), outline=colour, width=3)
        text = f"{label} {lr:.2g}"
        # Put the label on whichever side of the marker keeps it inside the plot.
        fits_right = x + 9 + draw.textlength(text, font=small) <= x1
        tx, anchor = (x + 9, "ls") if fits_right else (x - 9, "rs")
        draw.text((tx, y - 9), text, fill=colour, font=small, anchor=anchor)


def _draw_titles(
    draw: ImageDraw.ImageDraw,
    result: LRFindResult,
    frame: tuple[int, int, int, int],
    size: tuple[int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    """The axis names and the title with the two suggestions."""
    x0, y0, x1, y1 = frame
    width, height = size
    draw.text(
        ((x0 + x1) / 2, height - 22),
        "learning rate (log scale)",
        fill="black",
        font=font,
        anchor="mm",
    )
    draw.text((12, (y0 + y1) / 2), "loss", fill="black", font=font, anchor="lm")
    title = f"LR range test: steepest {result.suggestion:.2g}, minimum {result.min_lr:.2g}"
    draw.text((width / 2, 22), title, fill="black", font=font, anchor="mm")


def plot_lr_find(
    result: LRFindResult, path: str | Path, size: tuple[int, int] = (800, 500)
) -> Path:
    """Write the smoothed loss against lr (log x axis) as a PNG and return its path.

    Drawn with PIL alone: axes with decade ticks labelled ``1e-k``, the curve, a red marker at the
    suggestion and a green one at the minimum (points with a non-finite loss are left out).
    """
    path = Path(path)
    pts = [(lr, v) for lr, v in zip(result.lrs, result.losses, strict=True) if math.isfinite(v)]
    if len(pts) < 2:
        raise ConfigError(f"plot_lr_find {path}: fewer than 2 finite losses, nothing to plot")
    width, height = size
    left, right, top, bottom = 90, 30, 50, 70
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font, small = load_font(16), load_font(14)

    x_lo, x_hi = math.log10(pts[0][0]), math.log10(pts[-1][0])
    y_lo, y_hi = _loss_range([v for _, v in pts])

    def px(lr: float, v: float) -> tuple[float, float]:
        fx = (math.log10(lr) - x_lo) / (x_hi - x_lo)
        fy = (min(v, y_hi) - y_lo) / (y_hi - y_lo)
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    frame = (left, top, width - right, height - bottom)
    _draw_axes(draw, px, frame, (x_lo, x_hi), (y_lo, y_hi), small)
    draw.line([px(lr, v) for lr, v in pts], fill=(31, 119, 180), width=2)
    _draw_markers(draw, px, result, pts, frame[2], small)
    _draw_titles(draw, result, frame, size, font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path
