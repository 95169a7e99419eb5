"""Walking the latent space: interpolation grids, GIFs and MP4s, latent banks, vector arithmetic.

Interpolation between two codes shows whether the generator's output changes smoothly, a sign
that it has not memorised its training images (Radford et al. 2015, section 6.1). For Gaussian
noise, ``slerp`` (White 2016, "Sampling Generative Networks") keeps the intermediate codes at the
typical norm of the prior, whereas ``lerp`` cuts through the low-probability centre of the ball.

Vector arithmetic (Radford et al. 2015, section 6.3) averages the codes of a few samples that
share a visual concept and adds and subtracts those means: "smiling woman - neutral woman +
neutral man". A *latent bank* (``gankit sample RUN --bank bank.pt``) stores numbered codes and
their images, so the index sets of an expression can be picked by eye.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torchvision.utils import make_grid

from gankit.drawing import font as load_font
from gankit.errors import ConfigError
from gankit.inference.roles import Generative, WSpaceModel, label_classes
from gankit.inference.sampling import generate_from, save_individual, seeded_noise

# --- interpolation -----------------------------------------------------------------------------


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """(1 - t)·a + t·b for codes ``a``, ``b`` of shape (R, nz) and fractions ``t`` (T,): (R, T, nz)."""
    t = t.to(a).view(1, -1, 1)
    return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)


def slerp(a: Tensor, b: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016): (R, nz), (R, nz), (T,) -> (R, T, nz).

    sin((1 - t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, with Ω the angle between ``a`` and ``b``. It falls
    back to ``lerp`` for (anti)parallel codes, where Ω's sine vanishes.
    """
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1, 1)
    omega = torch.acos(cos).view(-1, 1, 1)
    so = torch.sin(omega)
    t = t.to(a).view(1, -1, 1)
    safe = so.abs() > eps
    so = torch.where(safe, so, torch.ones_like(so))
    out = (torch.sin((1 - t) * omega) / so) * a.unsqueeze(1) + (
        torch.sin(t * omega) / so
    ) * b.unsqueeze(1)
    return torch.where(safe, out, lerp(a, b, t.view(-1)))


INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}


def interpolation_codes(
    model: Generative, rows: int, steps: int, mode: str = "slerp", seed: int = 0
) -> Tensor:
    """``rows`` paths of ``steps`` codes each between seeded random endpoints: (rows, steps, nz)."""
    ends = _endpoints(model, rows, steps, seed)
    t = torch.linspace(0, 1, steps)
    return INTERPOLATIONS[mode](ends[:rows], ends[rows:], t)


def _endpoints(model: Generative, rows: int, steps: int, seed: int) -> Tensor:
    """The seeded codes the rows start (first ``rows``) and end (last ``rows``) at."""
    if rows <= 0 or steps < 2:
        raise ConfigError(f"need --rows >= 1 and --steps >= 2 (got {rows} and {steps})")
    return seeded_noise(model, 2 * rows, seed)


def interpolate(
    model: Generative,
    rows: int = 4,
    steps: int = 8,
    mode: str = "slerp",
    seed: int = 0,
    ema: bool = True,
) -> Tensor:
    """Images of :func:`interpolation_codes`, row by row: (rows·steps, C, H, W) in [-1, 1].

    A class-conditional generator keeps one class along each row (row r draws class r mod K),
    so a row walks the noise only, not the label. A generator with a W space (StyleGAN2) walks a
    straight line between the ws of the same endpoints instead (``mode`` is for z), as Karras et
    al. interpolate.
    """
    k = len(label_classes(model) or ())
    if _has_w(model, ema):  # StyleGAN2: a straight line between the endpoints' ws
        from gankit.inference.wspace import synthesize, w_codes

        ends = _endpoints(model, rows, steps, seed)
        y = (torch.arange(rows) % k).repeat(2) if k else None
        ws = w_codes(model, ends, y, ema=ema)
        path = lerp(ws[:rows].flatten(1), ws[rows:].flatten(1), torch.linspace(0, 1, steps))
        return synthesize(model, path.reshape(rows * steps, *ws.shape[1:]), ema)
    z = interpolation_codes(model, rows, steps, mode, seed)
    labels = None
    if k:
        labels = (torch.arange(rows) % k).repeat_interleave(steps)
    return generate_from(model, z.flatten(0, 1), ema=ema, labels=labels)


def _has_w(model: object, ema: bool) -> bool:
    """Whether the model's generator has a W space (walks and arithmetic then happen in W)."""
    return isinstance(model, WSpaceModel) and model.w_generator(ema) is not None


def _upscale(img: Image.Image, tile: int, min_tile: int = 64) -> Image.Image:
    """Nearest-neighbour enlargement so that tiles of ``tile`` pixels become at least ``min_tile``."""
    k = max(1, math.ceil(min_tile / tile))
    return img if k == 1 else img.resize((img.width * k, img.height * k), Image.NEAREST)


def _to_pil(grid: Tensor) -> Image.Image:
    """A [0, 1] CHW tensor as an 8-bit PIL image."""
    arr = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)


def frame_image(images: Tensor) -> Image.Image:
    """Images in [-1, 1] side by side as one video frame, enlarged so that tiles are >= 64 px."""
    g = make_grid(images.float(), nrow=len(images), padding=2, normalize=True, value_range=(-1, 1))
    return _upscale(_to_pil(g), images.shape[-1])


def walk_frames(images: Tensor, rows: int, steps: int) -> list[Image.Image]:
    """The frames of an interpolation: frame j shows step j of every row, side by side; they run
    forward and back so that the loop has no jump."""
    grid = images.view(rows, steps, *images.shape[1:])
    return [frame_image(grid[:, j]) for j in [*range(steps), *range(steps - 2, 0, -1)]]


VIDEO_SUFFIXES = (".gif", ".mp4")
MP4_HINT = 'pip install -e ".[video]" (PyAV, which brings its own FFmpeg libraries)'


def check_mp4(path: str | Path = "walk.mp4") -> ModuleType:
    """The optional MP4 encoder (PyAV's ``av`` module), or a one-line ConfigError saying how to
    install it."""
    try:
        import av
    except ImportError:
        raise ConfigError(f"writing {Path(path).name} needs an MP4 encoder: {MP4_HINT}") from None
    return av


def write_video(frames: list[Image.Image], path: str | Path, frame_ms: int = 120) -> Path:
    """``frames`` as an animated GIF (PIL) or, for a ``.mp4`` path, an H.264 video (PyAV, the
    optional ``video`` extra; a one-line ConfigError without it)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"{path}: write a video as .gif or .mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
        return path
    av = check_mp4(path)
    w, h = frames[0].size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(1000, frame_ms))
        stream.width, stream.height = w + w % 2, h + h % 2  # yuv420p wants even sides
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for frame in frames:
            canvas = Image.new("RGB", (stream.width, stream.height))
            canvas.paste(frame.convert("RGB"))
            container.mux(stream.encode(av.VideoFrame.from_image(canvas)))
        container.mux(stream.encode())  # flush the encoder
    return path


def save_gif(images: Tensor, rows: int, steps: int, path: str | Path, frame_ms: int = 120) -> Path:
    """The interpolation as a looping video (:func:`walk_frames`): a GIF, or an MP4 for a
    ``.mp4`` path (``gankit interpolate --mp4``)."""
    return write_video(walk_frames(images, rows, steps), path, frame_ms)


# --- latent banks ------------------------------------------------------------------------------


def bank_images_dir(bank: str | Path) -> Path:
    """Where the individual images of a bank go: ``bank.pt`` -> ``bank-images/``."""
    bank = Path(bank)
    return bank.parent / f"{bank.stem}-images"


def save_index_sheet(images: Tensor, path: str | Path) -> Path:
    """A grid of ``images`` with each one's bank index written in its corner."""
    n, size = images.shape[0], images.shape[-1]
    nrow = max(1, int(round(n**0.5)))
    grid = make_grid(images.float(), nrow=nrow, padding=2, normalize=True, value_range=(-1, 1))
    img = _upscale(_to_pil(grid).convert("RGB"), size)
    k = img.width / grid.shape[-1]
    draw, font = ImageDraw.Draw(img), load_font(12)
    for i in range(n):
        x, y = (2 + (i % nrow) * (size + 2)) * k, (2 + (i // nrow) * (size + 2)) * k
        draw.text(
            (x + 2, y + 1), str(i), fill="yellow", font=font, stroke_width=2, stroke_fill="black"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def save_bank(
    model: Generative, n: int, path: str | Path, seed: int = 0, ema: bool = True, meta=None
) -> Tensor:
    """Write ``n`` seeded codes to ``path`` and their images, numbered, next to it; return images.

    The codes are those of ``gankit sample --seed``, so a bank's grid is that command's grid.
    """
    z = seeded_noise(model, n, seed)
    images = generate_from(model, z, ema=ema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"z": z, "nz": z.shape[1], "seed": seed, "ema": ema, **(meta or {})}, path)
    folder = bank_images_dir(path)
    save_individual(images, folder)
    save_index_sheet(images, folder / "index.png")
    return images


def load_bank(path: str | Path, nz: int) -> Tensor:
    """The codes of a bank written by :func:`save_bank`, checked against the run's ``nz``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"--bank {path}: no such file; write one with gankit sample RUN --bank {path}"
        )
    try:
        bank = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"--bank {path} is not a latent bank ({type(e).__name__})") from None
    z = bank.get("z") if isinstance(bank, dict) else None
    if not isinstance(z, Tensor) or z.dim() != 2:
        raise ConfigError(f"--bank {path} is not a latent bank (no 2-d tensor 'z' in it)")
    if z.shape[1] != nz:
        raise ConfigError(f"--bank {path} holds {z.shape[1]}-d codes, but this run has nz={nz}")
    return z.float()


# --- vector arithmetic -------------------------------------------------------------------------

_TERM = re.compile(r"\s*([+-])?\s*(\d+(?:\s*,\s*\d+)*)\s*")


def parse_expression(expr: str, bank_size: int) -> list[tuple[int, list[int]]]:
    """``"3,7 - 12 + 5,9"`` -> ``[(1, [3, 7]), (-1, [12]), (1, [5, 9])]``, indices checked."""
    expr, terms, pos = expr.strip(), [], 0
    while pos < len(expr):
        m = _TERM.match(expr, pos)
        if not m or m.end() == pos or (terms and not m.group(1)):
            raise ConfigError(
                f"cannot read {expr!r} at {expr[pos : pos + 12]!r}: write comma-separated bank "
                'indices joined by + and -, e.g. "3,7 - 12 + 5,9"'
            )
        sign = -1 if m.group(1) == "-" else 1
        idx = [int(i) for i in m.group(2).split(",")]
        for i in idx:
            if i >= bank_size:
                raise ConfigError(
                    f"index {i} in {expr!r} is not in the bank: it holds {bank_size} codes, "
                    f"0-{bank_size - 1}"
                )
        terms.append((sign, idx))
        pos = m.end()
    if not terms:
        raise ConfigError(
            'empty expression: give index sets joined by + and -, e.g. "3,7 - 12 + 5"'
        )
    return terms


def arithmetic_codes(z: Tensor, terms: list[tuple[int, list[int]]]) -> Tensor:
    """Σ sign · mean(z[indices]) over the terms: one code of shape (nz,) (or one w per layer
    for ws of shape (N, num_ws, w_dim))."""
    return sum(sign * z[idx].mean(0) for sign, idx in terms)


def arithmetic_grid(
    model: Generative,
    z: Tensor,
    terms: list[tuple[int, list[int]]],
    variants: int = 7,
    jitter: float = 0.25,
    seed: int = 0,
    ema: bool = True,
) -> tuple[Tensor, int]:
    """The figure of Radford et al. (2015, fig. 7) as ``(images, nrow)``.

    One row per term: its members' images, then (last column) the image of their mean code. The
    last row: ``variants`` images of the result plus U(-jitter, jitter) noise, as in the paper, and
    (last column) the result itself. Read the last column top to bottom as the expression.
    Blank tiles are white.
    """
    if variants < 0 or not jitter >= 0:
        raise ConfigError(f"variants={variants} and jitter={jitter} must be >= 0")
    codes, render, spread = _arithmetic_space(model, z, ema)
    result = arithmetic_codes(codes, terms)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(variants, *codes.shape[1:], generator=gen) * 2 - 1
    noisy = result + noise * jitter * spread
    width = max(max(len(idx) for _, idx in terms), variants) + 1
    rows = []
    for members, mean in [*((codes[idx], codes[idx].mean(0)) for _, idx in terms), (noisy, result)]:
        images = render(torch.cat([members, mean.unsqueeze(0)]))
        blank = torch.ones(width - images.shape[0], *images.shape[1:])
        rows.append(torch.cat([images[:-1], blank, images[-1:]]))
    return torch.cat(rows), width


def _arithmetic_space(model: Generative, z: Tensor, ema: bool) -> tuple[Tensor, Callable, Tensor]:
    """Where arithmetic happens: the bank's codes, how to draw codes, the jitter's scale. In z
    (jitter U(−jitter, jitter)); or, for a generator with a W space, in W, where StyleGAN's
    directions are closer to linear (the codes mapped to ws, the jitter scaled by the bank's
    per-dimension std of w)."""
    if not _has_w(model, ema):
        return z, lambda codes: generate_from(model, codes, ema=ema), torch.ones(())
    from gankit.inference.wspace import synthesize, w_codes

    ws = w_codes(model, z, ema=ema)
    spread = ws.std(0) if len(ws) > 1 else torch.ones_like(ws[0])
    return ws, lambda codes: synthesize(model, codes, ema), spread
