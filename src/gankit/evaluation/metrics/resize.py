"""The resize in front of the FID Inception: the one choice that moves FID most between tools.

Every published FID pipeline feeds the same TensorFlow 2015-12-05 Inception a 299x299 image, but
they get there differently, and the difference is worth points of FID (Parmar et al. 2022, "On
Aliased Resizing and Surprising Subtleties in GAN Evaluation", CVPR; clean-fid's README: CIFAR-10
StyleGAN2 11.07 under the TensorFlow resize vs 12.96 under PIL bicubic). gankit offers each:

- ``legacy-tensorflow`` (the default): TF1 bilinear. The output pixel ``d`` reads the source
  coordinate ``d * in / out`` (no half-pixel offset) and interpolates between its floor and the
  next pixel (clamped at the border); float, not re-quantised. The original TF FID code (Heusel et
  al. 2017), stylegan2-ada (inside its TorchScript), torch-fidelity and clean-fid's
  ``legacy_tensorflow`` mode: the pipelines behind most published GAN FIDs.
- ``clean``: PIL bicubic (a = -0.5, antialiased when shrinking) of each channel as a float32 'F'
  image, clipped to [0, 255], not re-quantised: clean-fid's recommended ``clean`` mode.
- ``legacy-pytorch``: ``F.interpolate(bilinear, align_corners=False)`` (half-pixel), no antialias:
  pytorch-fid's resize, and gankit 0.2's.
- ``pil-bilinear``: PIL bilinear of each channel as a float32 'F' image (antialiased when
  shrinking): StudioGAN's "friendly" resize for its TF Inception.

All four are separable linear maps, so each is computed as two small matrix products per image,
``M_h @ x @ M_w^T``, batched on whatever device the images are on (about a millisecond an image on
a CPU): the matrices reproduce the reference implementations' coefficients (TensorFlow 1's
``resize_bilinear``; Pillow's ``Resample.c`` ``precompute_coeffs`` with its bicubic and triangle
filters), checked against Pillow, torch-fidelity and clean-fid in tests/test_resize.py to 1e-3 on
0-255 values.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.errors import ConfigError, did_you_mean

RESIZERS = ("legacy-tensorflow", "clean", "legacy-pytorch", "pil-bilinear")
DEFAULT_RESIZER = "legacy-tensorflow"
"""The TF1 bilinear resize of the original FID code: what stylegan2-ada's fid50k_full, the TTUR
code and torch-fidelity use, so the protocol behind most published GAN FIDs (see the guide)."""


def check_resizer(name: str) -> str:
    """``name`` when it is a known resizer, else a one-line ConfigError listing them."""
    if name not in RESIZERS:
        raise ConfigError(
            f"resizer {name!r} is unknown: {did_you_mean(name, RESIZERS)}choose one of "
            f"{', '.join(RESIZERS)}"
        )
    return name


# --- the 1-D interpolation matrices ---------------------------------------------------------


def _tf1_bilinear(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of TensorFlow 1's bilinear resize with ``align_corners=False``.

    TensorFlow's ``resize_bilinear`` (``image_resizer_state.h``, ``CalculateResizeScale``;
    ``resize_bilinear_op.cc``, ``compute_interpolation_weights`` with the legacy scaler): the output
    pixel ``d`` reads the source coordinate ``d * n_in / n_out``, interpolating between its floor
    and the next pixel (clamped at the border).
    """
    # In float32, as TensorFlow computes it (``const float in = scaler(i, scale)``) and as
    # torch-fidelity's port does: at 1024 px the float64 coordinate differs by 0.01 of a grey level.
    scale = np.float32(n_in / n_out)
    src = np.arange(n_out, dtype=np.float32) * scale
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo.astype(np.float32)).astype(np.float64)
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic kernel (Keys 1981 with a = -0.5), support 2."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _triangle(x: np.ndarray) -> np.ndarray:
    """Pillow's bilinear (triangle) kernel, support 1."""
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


_PIL_FILTERS = {"bicubic": (_bicubic, 2.0), "bilinear": (_triangle, 1.0)}


def _pil(n_in: int, n_out: int, kernel: str) -> np.ndarray:
    """(n_out, n_in) weights of Pillow's resize along one axis (``Resample.c``, ``precompute_coeffs``).

    Output pixel ``d`` is centred on the source coordinate ``(d + 0.5) * scale``; the kernel is
    stretched by ``max(scale, 1)`` (antialiasing when shrinking); the taps run over the pixels
    ``[int(center - support + 0.5), int(center + support + 0.5))`` clipped to the image, and the
    weights are normalised to sum to 1.
    """
    fn, support = _PIL_FILTERS[kernel]
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = support * filterscale
    m = np.zeros((n_out, n_in))
    for d in range(n_out):
        center = (d + 0.5) * scale
        # C's (int) truncates toward zero; clipping at 0 afterwards makes it a floor here.
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n_in)
        taps = np.arange(xmin, xmax)
        w = fn((taps - center + 0.5) / filterscale)
        total = w.sum()
        m[d, xmin:xmax] = w / total if total != 0.0 else w
    return m


@functools.lru_cache(maxsize=64)
def _matrix(resizer: str, n_in: int, n_out: int) -> Tensor:
    if resizer == "legacy-tensorflow":
        m = _tf1_bilinear(n_in, n_out)
    elif resizer == "clean":
        m = _pil(n_in, n_out, "bicubic")
    else:  # pil-bilinear
        m = _pil(n_in, n_out, "bilinear")
    return torch.from_numpy(m.astype(np.float32))


def resize_matrix(resizer: str, n_in: int, n_out: int) -> Tensor:
    """The (n_out, n_in) float32 matrix of one axis of a separable resizer (not legacy-pytorch)."""
    check_resizer(resizer)
    if resizer == "legacy-pytorch":
        raise ConfigError("legacy-pytorch is torch's own interpolate, not a matrix")
    return _matrix(resizer, n_in, n_out)


# --- the resize -----------------------------------------------------------------------------


def resize_images(images: Tensor, resizer: str = DEFAULT_RESIZER, size: int = 299) -> Tensor:
    """uint8 (or float 0-255) NCHW -> float32 NCHW at ``size`` x ``size`` on the same device.

    Values stay on the 0-255 scale and are not rounded back to integers (none of the reference
    pipelines does). ``clean`` clips to [0, 255] as clean-fid does (bicubic overshoots); the
    bilinear resizers cannot leave the range. An image already at ``size`` is returned as float
    unchanged by every resizer (each is the identity there).
    """
    check_resizer(resizer)
    x = images.float()
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if resizer == "legacy-pytorch":
        return F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=False
        )
    mh = _matrix(resizer, h, size).to(x.device)
    mw = mh if w == h else _matrix(resizer, w, size).to(x.device)
    # Width first, then height: Pillow's order (its horizontal pass, then its vertical one).
    out = torch.matmul(mh, torch.matmul(x, mw.T))
    return out.clamp_(0.0, 255.0) if resizer == "clean" else out


__all__ = [
    "DEFAULT_RESIZER",
    "RESIZERS",
    "check_resizer",
    "resize_images",
    "resize_matrix",
]
