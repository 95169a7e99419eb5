"""Files around projection: target images in, projected images, latent files and progress
videos out, and latent files read back (``gankit sample --latents``).

A latent file is ``NAME.pt`` (``torch.save`` of plain tensors, read with ``weights_only=True``):
``{"format": "gankit-latents", "space": "w" | "w+" | "z", "latent", "labels", "noise", ...}``,
with ``latent`` ws (N, num_ws, w_dim) for a W-space run or codes (N, nz) otherwise, ``labels``
the classes of a conditional run and ``noise`` a StyleGAN2 projection's noise maps. ``NAME.npy``
holds the latent alone, for numpy (stylegan2-ada's projector writes its ws the same way, as
``projected_w.npz``).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.func import functional_call

from gankit.config import Config
from gankit.data.images import fit_image
from gankit.data.stream import to_unit
from gankit.errors import ConfigError, first_line
from gankit.inference.latent import frame_image, write_video
from gankit.inference.projection import Projection
from gankit.inference.roles import Generative, WSpaceModel
from gankit.inference.sampling import generate_from
from gankit.inference.wspace import mapped_generator, synthesize
from gankit.nets.eval_mode import eval_mode


def target_tensor(img: Image.Image, cfg: Config) -> Tensor:
    """A decoded 'L' or 'RGB' image as the run's data would be: (1, C, S, S) in [-1, 1].

    A run that pads its data (``data.fit=pad``, MNIST at 32) pads images up to its size; anything
    larger is scaled and centre-cropped, as the reference projector crops and resizes.
    """
    size = cfg.data.image_size
    fit = cfg.data.fit if max(img.size) <= size else "resize"
    arr = np.array(fit_image(img, size, fit), dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return to_unit(torch.from_numpy(np.ascontiguousarray(arr)))[None]


def to_png(image: Tensor) -> bytes:
    """One image (1, C, H, W) or (C, H, W) in [-1, 1] as PNG bytes, grey for one channel, rounded
    as :func:`torchvision.utils.save_image` rounds (so a grid of it has the same pixels)."""
    x = image.reshape(-1, *image.shape[-2:]).float().clamp(-1, 1).add(1).div(2)
    arr = x.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def progress_frames(proj: Projection) -> list[Image.Image]:
    """The progress video's frames: the target beside the closest image at each stage, the last
    held for a while."""
    frames = [frame_image(torch.cat([proj.target, f])) for f in proj.frames]
    return frames + frames[-1:] * 10


def save_projection(proj: Projection, out: Path, stem: str, meta: dict | None = None) -> list[Path]:
    """Write ``STEM.png`` (the projection), ``STEM-target.png``, ``STEM.pt`` and ``STEM.npy``
    (the latent) and ``STEM-progress.gif`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}-target.png", out / f"{stem}.pt"]
    paths[0].write_bytes(to_png(proj.image))
    paths[1].write_bytes(to_png(proj.target))
    torch.save({**proj.record(), **(meta or {})}, paths[2])
    paths.append(out / f"{stem}.npy")
    np.save(paths[3], proj.latent.numpy())
    paths.append(write_video(progress_frames(proj), out / f"{stem}-progress.gif", frame_ms=80))
    return paths


@dataclass
class Latents:
    """Codes read from a latent file: ws (N, num_ws, w_dim) or z (N, nz), and what came along."""

    latent: Tensor
    labels: Tensor | None = None
    noise: dict[str, Tensor] = field(default_factory=dict)


def _read(path: Path) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"--latents {path} is not a .npy array ({first_line(e, 80)})"
            ) from None
        if not np.issubdtype(arr.dtype, np.floating):
            raise ConfigError(f"--latents {path} holds {arr.dtype} values, not floats")
        return torch.from_numpy(arr.astype(np.float32)), None, {}
    try:
        rec = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as e:
        raise ConfigError(f"--latents {path} is not a latent file ({first_line(e, 80)})") from None
    if not (isinstance(rec, dict) and isinstance(rec.get("latent"), Tensor)):
        raise ConfigError(f"--latents {path} has no 'latent' tensor: give a file of gankit project")
    labels = rec.get("labels")
    noise = rec.get("noise") or {}
    return rec["latent"].float(), labels if isinstance(labels, Tensor) else None, noise


def load_latents(path: str | Path, model: object, ema: bool = True) -> Latents:
    """The codes of a ``.pt`` or ``.npy`` latent file, checked against the run's latent shape."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--latents {path}: no such file (gankit project writes them)")
    latent, labels, noise = _read(path)
    if isinstance(model, WSpaceModel) and model.w_generator(ema) is not None:
        G = mapped_generator(model, ema)
        w_dim = G.w_avg.shape[0]
        if latent.dim() == 2 and latent.shape[1] == w_dim:
            latent = latent.unsqueeze(1).repeat(1, G.num_ws, 1)
        want = f"(N, {G.num_ws}, {w_dim}) ws"
        ok = latent.dim() == 3 and tuple(latent.shape[1:]) == (G.num_ws, w_dim)
    elif isinstance(model, Generative):
        nz = model.nz
        want, ok = f"(N, {nz}) codes", latent.dim() == 2 and latent.shape[1] == nz
    else:
        raise ConfigError("--latents: this run has no generator to draw codes with")
    if not ok or len(latent) == 0:
        raise ConfigError(
            f"--latents {path} holds shape {tuple(latent.shape)}; this run takes {want}"
        )
    if labels is not None and len(labels) != len(latent):
        labels = None
    return Latents(latent, labels, noise)


@torch.no_grad()
def render_latents(
    model: object, codes: Latents, ema: bool = True, labels: Tensor | None = None
) -> Tensor:
    """Images in [-1, 1] (on the CPU) of the codes: ws through the synthesis network (with the
    saved noise maps when they fit, so a projection comes back exactly), z through the generator
    (with ``labels``, else the file's, else every class in turn)."""
    if codes.latent.dim() == 2:
        y = labels if labels is not None else codes.labels
        return generate_from(model, codes.latent, ema=ema, labels=y)  # type: ignore[arg-type]
    G = mapped_generator(model, ema)
    shapes = {k: tuple(v.shape) for k, v in G.synthesis.named_buffers()}
    n = len(codes.latent)
    fits = codes.noise and all(
        k in shapes and v.dim() == 4 and v.shape[0] in (1, n) and tuple(v.shape[2:]) == shapes[k]
        for k, v in codes.noise.items()
    )
    if not fits:
        return synthesize(model, codes.latent, ema)
    device = G.w_avg.device
    noise = {k: v.to(device) for k, v in codes.noise.items()}
    with eval_mode(G.synthesis):
        out = functional_call(G.synthesis, noise, (codes.latent.to(device), "const"))
    return out.float().clamp(-1, 1).cpu()
