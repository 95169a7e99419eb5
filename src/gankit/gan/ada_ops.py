"""How ADA's sampled transforms are executed on a batch: the exact pixel blit, the anti-aliased
geometric resampling, gankit <= 0.3's single ``grid_sample``, and cutout's mask.

The anti-aliased resampling follows the reference (Karras et al. 2020b, "Training Generative
Adversarial Networks with Limited Data", appendix B; NVlabs/stylegan2-ada-pytorch
``training/augment.py``, "Execute geometric transformations"): reflect-pad the image enough to
cover the transformed corners, upsample ×2 through an orthogonal wavelet low-pass filter (symlet-6),
sample the affine there with bilinear ``grid_sample``, low-pass and decimate ×2 with the same filter
and crop. Written here from that description in normalised coordinates; the alignment of the two
filters is chosen so that up then down is the identity (see :func:`antialiased_warp`).

Matrices are (N, 3, 3) output → input sampling maps in ``affine_grid``'s normalised coordinates
(x = column, y = row, [-1, 1] across the image, ``align_corners=False``) of square images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SYM6", "antialiased_warp", "bilinear_warp", "blit", "cutout_mask"]

SYM6: tuple[float, ...] = (
    0.015404109327027373,
    0.0034907120842174702,
    -0.11799011114819057,
    -0.048311742585633,
    0.4910559419267466,
    0.787641141030194,
    0.3379294217276218,
    -0.07263752278646252,
    -0.021060292512300564,
    0.04472490177066578,
    0.0017677118642428036,
    -0.007800708325034148,
)
"""The symlet-6 decomposition low-pass filter (Daubechies' least-asymmetric orthogonal wavelet
with 6 vanishing moments; the published constants, as PyWavelets' ``Wavelet('sym6').dec_lo`` and
the ``wavelets['sym6']`` table of stylegan2-ada-pytorch's ``training/augment.py`` list them). Its
taps sum to √2, their squares to 1, and it is orthogonal to its own shifts by 2 — the property
that makes upsampling and then decimating through it the identity."""


def _taps(x: Tensor) -> Tensor:
    f = torch.tensor(SYM6, dtype=torch.float64)
    return (f / f.sum()).to(x.dtype).to(x.device)  # unit DC gain


def _phase() -> float:
    """Where sample n of a 2× grid sits: at pixel coordinate (n − d)/2, d = the filter's centre
    of mass − (K/2 − 1). A symmetric filter gives d = ½ (the ``align_corners=False`` grid); sym6,
    whose mass sits at 5.098 of 0 … 11, gives d ≈ 0.098. (The reference's grids amount to d = 0.)
    """
    centre = sum(i * t for i, t in enumerate(SYM6)) / sum(SYM6)
    return centre - (len(SYM6) // 2 - 1)


def _reflect(i: Tensor, size: int) -> Tensor:
    """Indices into ``size`` pixels, mirrored at the edge pixels (``F.pad``'s 'reflect')."""
    if size == 1:
        return torch.zeros_like(i)
    period = 2 * (size - 1)
    i = i.remainder(period)
    return torch.where(i >= size, period - i, i)


def _pad(x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
    """Reflect padding by any amount (``F.pad`` stops at size − 1), by indexing."""
    h, w = x.shape[-2:]
    ix = _reflect(torch.arange(-left, w + right, device=x.device), w)
    iy = _reflect(torch.arange(-top, h + bottom, device=x.device), h)
    return x.index_select(-1, ix).index_select(-2, iy)


def _upsample2x(x: Tensor, f: Tensor) -> Tensor:
    """Zero-stuff ×2 and convolve with 2·f along both axes. Output sample n of an axis of L
    pixels sits at pixel coordinate (n − ½)/2: the ``align_corners=False`` grid of 2L samples over
    the same extent (taken from the full convolution at offset K/2 − 1, K taps)."""
    n, c, h, w = x.shape
    k, off = f.numel(), f.numel() // 2 - 1
    y = x.reshape(n * c, 1, h, w)
    y = F.conv_transpose2d(y, 2 * f.view(1, 1, 1, k), stride=(1, 2))[..., off : off + 2 * w]
    y = F.conv_transpose2d(y, 2 * f.view(1, 1, k, 1), stride=(2, 1))[..., off : off + 2 * h, :]
    return y.reshape(n, c, 2 * h, 2 * w)


def _downsample2x(v: Tensor, f: Tensor, size: int) -> Tensor:
    """Correlate with f and keep every other sample along both axes: the adjoint of
    :func:`_upsample2x` (up to its gain 4), ``size`` pixels out of a 2·(size + K/2) sample grid
    that starts K/4 pixels before the image. Pixel j reads samples 2j + 1 … 2j + K of that grid,
    which are the samples of the image's own 2× grid from 2j − K/2 + 1 on: the even-lag
    autocorrelation of an orthogonal filter is a unit impulse, so down(up(x)) = x."""
    n, c, h, w = v.shape
    k = f.numel()
    y = v.reshape(n * c, 1, h, w)[..., 1:, 1:]
    y = F.conv2d(y, f.view(1, 1, 1, k), stride=(1, 2))
    y = F.conv2d(y, f.view(1, 1, k, 1), stride=(2, 1))
    return y[..., :size, :size].reshape(n, c, size, size)


def _margins(m: Tensor, size: int, extra: int) -> list[int]:
    """Reflect padding [left, right, top, bottom] that covers where the output's corner pixels
    come from in the input, plus ``extra`` pixels for the filters (the reference's rule: one
    margin for the whole batch, at most the image size − 1 unless the filters need more)."""
    half = (size - 1) / size  # a corner pixel's centre, normalised
    corners = torch.tensor(
        [[-half, -half, 1.0], [half, -half, 1.0], [half, half, 1.0], [-half, half, 1.0]],
        dtype=m.dtype,
        device=m.device,
    )
    src = (m @ corners.T)[:, :2, :] * (size / 2)  # centred pixel coordinates, (N, xy, corner)
    lo, hi = (-src).amax(dim=(0, 2)), src.amax(dim=(0, 2))
    margin = torch.cat([lo, hi]) + extra - (size - 1) / 2  # [x0, y0, x1, y1]
    margin = margin.clamp(0, max(size - 1, extra)).ceil().long().tolist()
    return [margin[0], margin[2], margin[1], margin[3]]


def _frame(sx: float, sy: float, tx: float, ty: float) -> Tensor:
    """The (3, 3) map u → (sx·u_x + tx, sy·u_y + ty), float64 on the CPU."""
    return torch.tensor([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]], dtype=torch.float64)


def antialiased_warp(x: Tensor, m: Tensor) -> Tensor:
    """Resample the square images ``x`` (N, C, S, S) through the sampling maps ``m`` the way the
    reference does: reflect-pad, upsample ×2 through symlet-6, bilinear ``grid_sample`` (zeros
    beyond the padded image, as the reference's) on a 2× grid that reaches K/4 pixels past the
    output, then low-pass, decimate and crop.

    The identity map returns ``x`` up to the rounding of the sample positions (the filters' round
    trip is exact in exact arithmetic). One deliberate difference: both 2× grids are placed at the
    filter's centre of mass (:func:`_phase`), so rotations and flips turn about the image centre;
    the reference's grids (d = 0, otherwise the same computation) leave them ≈ 0.1 pixel off, as
    sym6 is not symmetric, and a quarter turn of a smooth image then errs ~10× more.
    """
    n, c, size, _ = x.shape
    f = _taps(x)
    edge, d = f.numel() // 4, _phase()  # edge: the reference's Hz_pad, 3 pixels for 12 taps
    g = m.detach().to("cpu").double()  # small matrices, exact (and MPS has no float64)
    left, right, top, bottom = _margins(g, size, 2 * edge)
    up = _upsample2x(_pad(x, left, right, top, bottom), f)
    wide, high = size + left + right, size + top + bottom
    # grid_sample's view of the 2× padded image → its pixels, moved by the filter's phase
    into = _frame(size / wide, size / high, (left - right + d - 0.5) / wide, 0.0)
    into[1, 2] = (top - bottom + d - 0.5) / high
    out = size + 2 * edge  # the output's 2× grid, from affine_grid's view to the image's pixels
    grow = _frame(out / size, out / size, (0.5 - d) / size, (0.5 - d) / size)
    theta = (into @ g @ grow)[:, :2, :].to(x.dtype).to(x.device)
    grid = F.affine_grid(theta, [n, c, 2 * out, 2 * out], align_corners=False)
    v = F.grid_sample(up, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _downsample2x(v, f, size)


def bilinear_warp(x: Tensor, m: Tensor) -> Tensor:
    """gankit <= 0.3's resampling: one bilinear ``grid_sample`` with reflection padding, no
    filtering (aliases where the map shrinks or rotates the image)."""
    grid = F.affine_grid(m[:, :2, :].to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def blit(x: Tensor, m: Tensor) -> Tensor:
    """Apply maps made of x-flips, quarter turns and integer translations exactly: every output
    pixel is one input pixel (a gather), reflected at the edges like the reference's padding."""
    n, c, size, _ = x.shape
    centre = (size - 1) / 2
    px = torch.arange(size, device=x.device, dtype=torch.float32) - centre
    yy, xx = (t.flatten() for t in torch.meshgrid(px, px, indexing="ij"))
    m = m.detach().float()
    shift = m[:, :2, 2:] * (size / 2)  # whole pixels, up to rounding
    src = m[:, :2, :2] @ torch.stack([xx, yy]) + shift + centre  # (N, xy, S·S) pixel indices
    ix, iy = (_reflect(src[:, i].round().long(), size) for i in (0, 1))
    flat = (iy * size + ix).unsqueeze(1).expand(n, c, size * size)
    return x.flatten(2).gather(2, flat).view_as(x)


def cutout_mask(centre: Tensor, side: Tensor, size: int) -> Tensor:
    """(N, 1, S, S): 0 on the pixels whose centres lie strictly inside the square of side
    ``side`` (a fraction of the image, 0 = none) about ``centre`` ((N, 2) in [0, 1]²), else 1 —
    stylegan2-ada-pytorch's cutout rule."""
    pos = (torch.arange(size, device=centre.device, dtype=centre.dtype) + 0.5) / size
    half = side.view(-1, 1) / 2
    out_x = (pos.view(1, -1) - centre[:, :1]).abs() >= half  # (N, S): columns outside
    out_y = (pos.view(1, -1) - centre[:, 1:]).abs() >= half
    keep = out_x[:, None, :] | out_y[:, :, None]
    return keep.unsqueeze(1).to(centre.dtype)
