"""W space: truncation around w_avg, style mixing and walks between ws, for runs whose generator
maps z to per-layer ws (StyleGAN2, :class:`~gankit.inference.roles.MappedGenerator`).

- **Truncation** (Karras et al. 2019, sec. 2; 2020, appendix): w' = w_avg + ψ(w − w_avg), for all
  ws or the first ``cutoff`` (the coarse layers) only; ψ = 0 gives the "average" image for every z.
- **Style mixing** (Karras et al. 2019, sec. 3.1; stylegan2-ada's ``style_mixing.py``): the image
  of a row seed whose ws in the chosen layers come from a column seed — coarse layers carry pose
  and shape, fine layers colour and texture.

Images come from the fixed noise buffers (``noise_mode=const``), so a seed always gives the same
picture.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gankit.errors import ConfigError
from gankit.inference.roles import (
    ConditionalGenerative,
    MappedGenerator,
    WSpaceModel,
    label_classes,
)
from gankit.inference.sampling import seeded_noise
from gankit.nets.eval_mode import eval_mode


def mapped_generator(model: object, ema: bool = True, what: str = "this") -> MappedGenerator:
    """The generator with a W space of ``model``, or a one-line ConfigError."""
    net = model.w_generator(ema) if isinstance(model, WSpaceModel) else None
    if net is None:
        raise ConfigError(
            f"{what} needs a generator with a W space (a StyleGAN2 run, nets.G.arch=stylegan2); "
            "this run's generator maps z to images directly"
        )
    return net


def _labels(model: object, n: int, labels: Tensor | None) -> Tensor | None:
    """``labels``, or every class in turn for a conditional generator (as ``gankit sample``)."""
    if labels is not None or not (
        isinstance(model, ConditionalGenerative) and label_classes(model)
    ):
        return labels
    return model.default_labels(n).cpu()


@torch.no_grad()
def w_codes(
    model: object, z: Tensor, labels: Tensor | None = None, psi: float = 1.0,
    cutoff: int | None = None, ema: bool = True,
) -> Tensor:  # fmt: skip
    """ws (N, num_ws, w_dim) of the codes ``z``, truncated by ``psi`` (the first ``cutoff``)."""
    G = mapped_generator(model, ema)
    if cutoff is not None and not 1 <= cutoff <= G.num_ws:
        raise ConfigError(f"--truncation-cutoff {cutoff} must be in 1..{G.num_ws} (num_ws)")
    device = G.w_avg.device
    y = _labels(model, len(z), labels)
    with eval_mode(G.mapping):
        return G.mapping(z.to(device), None if y is None else y.to(device), psi, cutoff)


@torch.no_grad()
def synthesize(model: object, ws: Tensor, ema: bool = True, batch_size: int = 64) -> Tensor:
    """Images in [-1, 1] (on the CPU) of ws, with the fixed noise buffers."""
    G = mapped_generator(model, ema)
    device = G.w_avg.device
    with eval_mode(G.synthesis):
        out = [G.synthesis(w.to(device), "const") for w in ws.split(batch_size)]
    return torch.cat(out).float().clamp(-1, 1).cpu()


def generate_w(
    model: object, n: int, seed: int = 0, psi: float = 1.0, cutoff: int | None = None,
    labels: Tensor | None = None, ema: bool = True,
) -> Tensor:  # fmt: skip
    """``n`` images from the seed's codes (as :func:`gankit.inference.sampling.generate` draws
    them), truncated in W."""
    z = seeded_noise(model, n, seed)  # type: ignore[arg-type]
    return synthesize(model, w_codes(model, z, labels, psi, cutoff, ema), ema)


def parse_layers(text: str, num_ws: int) -> range:
    """``a-b`` (inclusive) or ``a`` as a range of layer indices within 0..num_ws-1."""
    try:
        a, _, b = text.partition("-")
        lo, hi = int(a), int(b or a)
    except ValueError:
        raise ConfigError(f"--layers {text!r} must be A-B or A, e.g. 0-6") from None
    if not 0 <= lo <= hi < num_ws:
        raise ConfigError(f"--layers {text} must lie within 0-{num_ws - 1} (this run's ws)")
    return range(lo, hi + 1)


def style_mix(
    model: object, rows: list[int], cols: list[int], layers: str = "0-6", psi: float = 1.0,
    label: int | None = None, ema: bool = True,
) -> tuple[Tensor, int]:  # fmt: skip
    """The style-mixing grid: a blank corner, the column seeds' images along the top, the row
    seeds' down the left, and in cell (r, c) row seed r with ``layers`` from column seed c.
    Returns the images, row by row, and the grid's width (``len(cols) + 1``)."""
    G = mapped_generator(model, ema, "gankit style-mix")
    chosen = list(parse_layers(layers, G.num_ws))
    seeds = sorted(set(rows) | set(cols))
    z = torch.cat([seeded_noise(model, 1, s) for s in seeds])  # type: ignore[arg-type]
    y = None if label is None else torch.full((len(seeds),), label, dtype=torch.long)
    ws = dict(zip(seeds, w_codes(model, z, y, psi, None, ema), strict=True))
    grid = [torch.full_like(ws[cols[0]], float("nan"))] + [ws[c] for c in cols]
    for r in rows:
        grid.append(ws[r])
        for c in cols:
            w = ws[r].clone()
            w[chosen] = ws[c][chosen]
            grid.append(w)
    images = synthesize(model, torch.stack(grid[1:]), ema)
    blank = torch.ones_like(images[:1])  # a white corner
    return torch.cat([blank, images]), len(cols) + 1
