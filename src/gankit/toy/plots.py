"""Pictures of the lab: real vs generated points over time (PNG strip and animated GIF), and the
simultaneous-gradient picture on f(x, y) = x·y. Drawn with PIL alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from gankit.drawing import font as load_font
from gankit.toy.mixtures import Mixture

REAL, FAKE, MODE = (170, 170, 170), (31, 119, 180), (214, 39, 40)


def scatter(
    points: Tensor, data: Mixture, title: str = "", size: int = 280, n_real: int = 1000
) -> Image.Image:
    """One square panel: real samples (grey), generated points (blue), the 3σ circles (red)."""
    img = Image.new("RGB", (size, size + 22), "white")
    draw = ImageDraw.Draw(img)
    ext = data.extent

    def px(x: float, y: float) -> tuple[float, float]:
        return (x + ext) / (2 * ext) * (size - 1), (ext - y) / (2 * ext) * (size - 1) + 22

    real = data.sample(n_real, torch.Generator().manual_seed(0))
    for pts, colour in ((real, REAL), (points, FAKE)):
        for p in pts.tolist():
            u, v = px(*p)
            if 0 <= u < size and 22 <= v < size + 22:
                draw.point((u, v), fill=colour)
    r = 3 * data.std / (2 * ext) * (size - 1)
    for mx, my in data.modes.tolist():
        u, v = px(mx, my)
        draw.ellipse((u - r, v - r, u + r, v + r), outline=MODE)
    draw.rectangle((0, 22, size - 1, size + 21), outline=(200, 200, 200))
    draw.text((size / 2, 11), title, fill="black", font=load_font(13), anchor="mm")
    return img


def strip(panels: Sequence[Image.Image], columns: int = 6) -> Image.Image:
    """Panels side by side, ``columns`` per row."""
    w, h = panels[0].size
    rows = math.ceil(len(panels) / columns)
    cols = min(columns, len(panels))
    sheet = Image.new("RGB", (cols * w, rows * h), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, ((i % columns) * w, (i // columns) * h))
    return sheet


def save_gif(panels: Sequence[Image.Image], path: str | Path, ms_per_frame: int = 150) -> Path:
    """An animated GIF of the panels, the last one held for a second."""
    path = Path(path)
    durations = [ms_per_frame] * (len(panels) - 1) + [1000]
    panels[0].save(path, save_all=True, append_images=list(panels[1:]), duration=durations, loop=0)
    return path


def xy_dynamics(
    steps: int = 60, lr: float = 0.2, start: tuple[float, float] = (1.0, 1.0)
) -> dict[str, list[tuple[float, float]]]:
    """Gradient play on f(x, y) = x·y, x minimising and y maximising, from ``start``.

    Simultaneous steps (x ← x − η·y, y ← y + η·x) multiply the distance to the equilibrium (0, 0)
    by √(1 + η²) each step: they spiral outwards. Alternating steps (y uses the new x) stay on a
    closed orbit: they circle without converging either (Goodfellow 2016, NIPS tutorial, sec. 8.2).
    """
    out: dict[str, list[tuple[float, float]]] = {}
    for kind in ("simultaneous", "alternating"):
        x, y = start
        path = [(x, y)]
        for _ in range(steps):
            if kind == "simultaneous":
                x, y = x - lr * y, y + lr * x
            else:
                x = x - lr * y
                y = y + lr * x
            path.append((x, y))
        out[kind] = path
    return out


def plot_xy(path: str | Path, steps: int = 60, lr: float = 0.2, size: int = 420) -> Path:
    """The picture of :func:`xy_dynamics`: both trajectories and the equilibrium."""
    traj = xy_dynamics(steps, lr)
    ext = max(max(abs(a), abs(b)) for pts in traj.values() for a, b in pts) * 1.1
    img = Image.new("RGB", (size, size + 40), "white")
    draw = ImageDraw.Draw(img)

    def px(x: float, y: float) -> tuple[float, float]:
        return (x + ext) / (2 * ext) * (size - 1), (ext - y) / (2 * ext) * (size - 1) + 40

    draw.line((*px(-ext, 0), *px(ext, 0)), fill=(220, 220, 220))
    draw.line((*px(0, -ext), *px(0, ext)), fill=(220, 220, 220))
    small = load_font(13)
    for pts, colour in zip(traj.values(), (MODE, FAKE), strict=True):
        draw.line([px(*p) for p in pts], fill=colour, width=2)
        for p in pts:
            u, v = px(*p)
            draw.ellipse((u - 2, v - 2, u + 2, v + 2), fill=colour)
    u, v = px(0, 0)
    draw.ellipse((u - 4, v - 4, u + 4, v + 4), fill="black")
    title = f"min_x max_y x*y, {steps} steps of lr {lr:g} from (1, 1)"
    draw.text((size / 2, 10), title, fill="black", font=small, anchor="mt")
    draw.text((10, 26), "simultaneous: spirals out", fill=MODE, font=small, anchor="lm")
    draw.text((size - 10, 26), "alternating: circles", fill=FAKE, font=small, anchor="rm")
    path = Path(path)
    img.save(path)
    return path
