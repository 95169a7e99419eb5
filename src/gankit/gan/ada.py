"""Adaptive discriminator augmentation (ADA, Karras et al. 2020b, "Training Generative Adversarial
Networks with Limited Data", appendix B; NVlabs/stylegan2-ada-pytorch ``training/augment.py``): the
augmentation pipeline and the controller of its probability p.

Every image D sees (real and generated alike) goes through :func:`ada_augment`: each op fires
independently per sample with probability p, so D never sees the 300 training images as they are
often enough to memorise them, while G still learns the un-augmented distribution (the ops are
invertible in distribution: "non-leaking"). The ops, by group (``gan.ada_ops``; the paper's ``bgc``
is blit + geom + color), with the paper's strengths (images in [-1, 1]), always in this order:

- blit: x-flip, rotation by a multiple of 90°, integer translation U(−0.125, 0.125)·size;
- geom: isotropic scale 2^N(0, 0.2²), rotation U(−π, π) (before and after the anisotropic scale,
  each with probability 1 − √(1 − p), so that the two together fire with p), anisotropic scale
  2^N(0, 0.2²), fractional translation N(0, 0.125²)·size. Both groups compose into one output →
  input affine per sample. With ``antialias`` (the default) the blit part moves whole pixels
  exactly and the geom part is resampled as the reference does: reflect padding, ×2 upsampling
  through the symlet-6 wavelet filter, bilinear ``grid_sample``, filtered ×2 downsampling
  (:mod:`gankit.gan.ada_ops`); without it, gankit <= 0.3's single bilinear ``grid_sample`` with
  reflection padding executes the whole affine (aliasing where it shrinks or rotates);
- color: brightness + N(0, 0.2²), contrast × 2^N(0, 0.5²), luma flip, hue rotation U(−π, π)
  about the luma axis, saturation × 2^N(0, 1), composed into one 4×4 matrix per sample. One-channel
  images get brightness and contrast only (the other three need colour);
- noise: additive Gaussian noise of std σ = |N(0, 0.1²)| per sample;
- cutout: a square of half the image side about a uniform centre set to 0 (the reference
  multiplies its [-1, 1] images by the mask, so 0, mid-grey, not black).

Everything is batched tensor work, differentiable with respect to the images (G learns through
D's view of its augmented samples), on the images' device. Randomness comes from an optional
``torch.Generator``; under torchrun each rank augments its rows of the global batch's draws.

:class:`AdaController` moves p: every ``interval`` minibatches, r_t = E[sign(D(real))] over them,
and p += sign(r_t − target) · batch · interval / (kimg · 1000), clamped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gankit.engine.distributed import rank_rows
from gankit.errors import ConfigError
from gankit.gan.ada_ops import antialiased_warp, bilinear_warp, blit, cutout_mask

__all__ = ["ADA_GROUPS", "ADA_OPS", "BGC", "AdaController", "ada_augment", "expand_ops"]

BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
GEOMETRIC = BLIT + GEOM
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
CORRUPTIONS = ("noise", "cutout")
ADA_OPS: tuple[str, ...] = GEOMETRIC + COLOUR + CORRUPTIONS
"""Every op, in the order the pipeline applies them."""
ADA_GROUPS: dict[str, tuple[str, ...]] = {
    "blit": BLIT,
    "geom": GEOM,
    "color": COLOUR,
    "noise": ("noise",),
    "cutout": ("cutout",),
}
"""The groups ``gan.ada_ops`` names (the reference's ``b``, ``g``, ``c``, noise, cutout)."""
BGC: tuple[str, ...] = ("blit", "geom", "color")
"""The paper's default pipeline."""
NOISE_STD, CUTOUT_SIZE = 0.1, 0.5


def expand_ops(names: Sequence[str]) -> tuple[str, ...]:
    """Group and op names → the ops they switch on, in :data:`ADA_OPS`' order."""
    chosen: set[str] = set()
    for name in names:
        if name not in ADA_GROUPS and name not in ADA_OPS:
            raise ConfigError(
                f"ADA op {name!r} is unknown: choose from {', '.join(ADA_GROUPS)} "
                f"or one of {', '.join(ADA_OPS)}"
            )
        chosen.update(ADA_GROUPS.get(name, (name,)))
    return tuple(op for op in ADA_OPS if op in chosen)


class _Draws:
    """Per-sample random numbers for one batch, drawn on the generator's device."""

    def __init__(self, n: int, x: Tensor, generator: torch.Generator | None) -> None:
        self.n, self.x, self.generator = n, x, generator
        self.device = generator.device if generator is not None else x.device

    def _draw(self, fn: Callable[..., Tensor]) -> Tensor:
        out = rank_rows(lambda k: fn(k, generator=self.generator, device=self.device), self.n)
        return out.to(self.x.device, torch.float32)

    def uniform(self) -> Tensor:
        return self._draw(lambda k, **kw: torch.rand(k, **kw))

    def normal(self) -> Tensor:
        return self._draw(lambda k, **kw: torch.randn(k, **kw))

    def normal_like(self) -> Tensor:
        """N(0, 1) of the images' shape."""
        shape = self.x.shape[1:]
        return self._draw(lambda k, **kw: torch.randn(k, *shape, **kw))

    def fires(self, p: float) -> Tensor:
        """1.0 where the op fires (probability p), else 0.0."""
        return (self.uniform() < p).float()


def _eye(n: int, size: int, x: Tensor) -> Tensor:
    return torch.eye(size, device=x.device).expand(n, size, size).clone()


def _affine(a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """(N, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]]."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [torch.stack(r, dim=1) for r in ((a, b, tx), (c, d, ty), (zero, zero, one))]
    return torch.stack(rows, dim=1)


def _rotation(theta: Tensor) -> Tensor:
    z = torch.zeros_like(theta)
    return _affine(theta.cos(), -theta.sin(), theta.sin(), theta.cos(), z, z)


def _geometric_op(op: str, x: Tensor, p: float, r: _Draws) -> Tensor:
    """One op's output → input sampling matrices (normalised coordinates, square images)."""
    one = torch.ones(x.shape[0], device=x.device)
    zero, size = torch.zeros_like(one), x.shape[-1]
    p_rot = 1 - math.sqrt(1 - p)
    if op == "xflip":
        flip = torch.floor(r.uniform() * 2) * r.fires(p)
        return _affine(1 - 2 * flip, zero, zero, one, zero, zero)
    if op == "rotate90":
        k = (torch.floor(r.uniform() * 4) * r.fires(p)).long()
        cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=x.device)[k]  # exact quarter turns
        sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=x.device)[k]
        return _affine(cos, -sin, sin, cos, zero, zero)
    if op == "xint":
        on = r.fires(p)
        tx, ty = [torch.round((r.uniform() * 2 - 1) * 0.125 * size) * on for _ in "xy"]
        return _affine(one, zero, zero, one, 2 * tx / size, 2 * ty / size)
    if op == "scale":
        s = torch.exp2(r.normal() * 0.2 * r.fires(p))
        return _affine(s, zero, zero, s, zero, zero)
    if op == "rotate":
        return _rotation((r.uniform() * 2 - 1) * math.pi * r.fires(p_rot))
    if op == "aniso":
        s = torch.exp2(r.normal() * 0.2 * r.fires(p))
        t = _affine(s, zero, zero, 1 / s, zero, zero)
        return t @ _rotation((r.uniform() * 2 - 1) * math.pi * r.fires(p_rot))  # the second
    on = r.fires(p)  # xfrac
    return _affine(one, zero, zero, one, 2 * r.normal() * 0.125 * on, 2 * r.normal() * 0.125 * on)


def _geometric(x: Tensor, p: float, ops: Sequence[str], r: _Draws) -> tuple[Tensor, ...]:
    """The whole affine per sample, and its blit and geom factors (whole = blit @ geom: the image
    is blitted first, then resampled)."""
    m = blits = geom = _eye(x.shape[0], 3, x)
    for op in ops:
        t = _geometric_op(op, x, p, r)
        m = m @ t
        if op in BLIT:
            blits = m
        else:
            geom = geom @ t
    return m, blits, geom


def _warp(x: Tensor, p: float, ops: Sequence[str], r: _Draws, antialias: bool) -> Tensor:
    """The geometric ops: whole-pixel blits exactly, then the anti-aliased resampling of the rows
    a geom op moved; or (``antialias=False``) the whole affine in one bilinear sample."""
    m, blits, geom = _geometric(x, p, ops, r)
    if not antialias:
        return bilinear_warp(x, m.to(x.dtype))
    if any(op in BLIT for op in ops):
        x = blit(x, blits)
    moved = (geom - torch.eye(3, device=geom.device)).abs().amax(dim=(1, 2)) > 0
    if not moved.any():  # the rows the geom ops left alone stay exactly as they are
        return x
    rows = moved.nonzero().squeeze(1)
    return x.index_copy(0, rows, antialiased_warp(x[rows], geom[rows]))


def _colour(x: Tensor, p: float, ops: Sequence[str], r: _Draws) -> Tensor:
    """One 4×4 colour matrix per sample, acting on homogeneous RGB."""
    n = x.shape[0]
    m = _eye(n, 4, x)
    v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=x.device) / math.sqrt(3)  # the luma axis
    vv = torch.outer(v, v)
    eye = torch.eye(4, device=x.device)
    for op in ops:
        if op == "brightness":
            t = _eye(n, 4, x)
            t[:, :3, 3] = (r.normal() * 0.2 * r.fires(p))[:, None]
        elif op == "contrast":
            c = torch.exp2(r.normal() * 0.5 * r.fires(p))
            t = torch.diag_embed(torch.stack([c, c, c, torch.ones_like(c)], dim=1))
        elif op == "lumaflip":
            flip = torch.floor(r.uniform() * 2) * r.fires(p)
            t = eye - 2 * vv * flip[:, None, None]
        elif op == "hue":  # rotation about v by θ (Rodrigues), on the RGB block
            theta = (r.uniform() * 2 - 1) * math.pi * r.fires(p)
            k = torch.zeros(4, 4, device=x.device)
            u = v[:3]
            k[:3, :3] = torch.tensor(
                [[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]], device=x.device
            )
            s, c = theta.sin()[:, None, None], theta.cos()[:, None, None]
            t = eye + s * k + (1 - c) * (k @ k)
        else:  # saturation
            s = torch.exp2(r.normal() * 1.0 * r.fires(p))
            t = vv + (eye - vv) * s[:, None, None]
            t[:, 3, 3] = 1
        m = t @ m
    return m


def ada_augment(
    x: Tensor,
    p: float,
    generator: torch.Generator | None = None,
    ops: Sequence[str] = BGC,
    antialias: bool = True,
) -> Tensor:
    """ADA's ops (group or op names, :func:`expand_ops`; default ``bgc``) on an (N, C, H, W)
    batch in [-1, 1], each op firing with probability ``p`` per sample; ``p = 0`` returns ``x``
    itself. ``antialias=False``: gankit <= 0.3's unfiltered geometric resampling."""
    ops = expand_ops(ops)
    if p <= 0 or x.shape[0] == 0:
        return x
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ConfigError(f"ADA needs square (N, C, H, W) images, got shape {tuple(x.shape)}")
    r = _Draws(x.shape[0], x, generator)
    geometric = [op for op in ops if op in GEOMETRIC]
    if geometric:
        x = _warp(x, p, geometric, r, antialias)
    colour = [op for op in ops if op in COLOUR]
    if x.shape[1] != 3:  # grey (or other): brightness and contrast only
        colour = [op for op in colour if op in ("brightness", "contrast")]
    if colour:
        m = _colour(x, p, colour, r).to(x.dtype)
        if x.shape[1] == 3:
            flat = x.flatten(2)
            x = (m[:, :3, :3] @ flat + m[:, :3, 3:]).view_as(x)
        else:  # the matrix is diagonal with one offset: the same scale and shift on every channel
            x = x * m[:, 0, 0].view(-1, 1, 1, 1) + m[:, 0, 3].view(-1, 1, 1, 1)
    if "noise" in ops:
        sigma = r.normal().abs() * NOISE_STD * r.fires(p)
        x = x + r.normal_like().to(x.dtype) * sigma.to(x.dtype).view(-1, 1, 1, 1)
    if "cutout" in ops:
        side = CUTOUT_SIZE * r.fires(p)
        centre = torch.stack([r.uniform(), r.uniform()], dim=1)
        x = x * cutout_mask(centre, side, x.shape[-1]).to(x.dtype)
    return x


class AdaController:
    """ADA's probability p and the r_t that moves it.

    ``state`` is one float64 CPU tensor ``[p, r_t, Σ sign, count, batches]`` that a task keeps as
    a checkpointed buffer, so a resumed run continues exactly. ``adaptive=False`` keeps p fixed
    (a constant augmentation probability, as R3GAN trains with).
    """

    def __init__(
        self,
        target: float = 0.6,
        interval: int = 4,
        kimg: float = 500.0,
        p: float = 0.0,
        adaptive: bool = True,
    ) -> None:
        if not 0 < target < 1:
            raise ConfigError(f"gan.ada_target={target} must be in (0, 1), e.g. 0.6")
        if interval <= 0 or kimg <= 0:
            raise ConfigError("gan.ada_interval and gan.ada_kimg must be positive (4 and 500)")
        if not 0 <= p <= 1:
            raise ConfigError(f"gan.ada_p={p} must be in [0, 1]")
        self.target, self.interval, self.kimg, self.adaptive = target, interval, kimg, adaptive
        self.state = torch.tensor([p, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)

    @property
    def p(self) -> float:
        return float(self.state[0])

    @property
    def rt(self) -> float:
        """The last r_t (0 before the first adjustment)."""
        return float(self.state[1])

    def observe(
        self,
        real_logits: Tensor,
        batch_size: int,
        reduce: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        """Count sign(D(real)) of one minibatch (``batch_size``: the global batch); every
        ``interval`` calls, adjust p. ``reduce`` averages the counts over ranks (in place)."""
        if not self.adaptive:
            return
        logits = real_logits.detach().float()
        acc = torch.stack(
            [logits.sign().sum(), torch.tensor(float(logits.numel()), device=logits.device)]
        )
        if reduce is not None:
            acc = reduce(acc)
        s = self.state
        s[2:4] += acc.double().cpu()
        s[4] += 1
        if s[4] >= self.interval:
            rt = s[2] / s[3].clamp_min(1)
            step = batch_size * self.interval / (self.kimg * 1000)
            s[0] = (s[0] + torch.sign(rt - self.target) * step).clamp(0, 1)
            s[1] = rt
            s[2:] = 0
