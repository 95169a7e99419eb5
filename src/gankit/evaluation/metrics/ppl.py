"""Perceptual path length (PPL) in W, end-point sampling: stylegan2-ada's ``ppl2_wend``.

Karras et al. 2019, "A Style-Based Generator Architecture for GANs", sec. 4.2 (the definition);
Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", sec. 3.2 (PPL in W at
the path's end points, and its link to image quality); the protocol of NVlabs/stylegan2-ada-pytorch
``metrics/perceptual_path_length.py`` (metric ``ppl2_wend``), written anew here. Lower is better:
a small step in W changes the image little.

For each of ``n`` samples: z0, z1 ~ N(0, I) (and, for a conditional generator, one class for
both), w0 = mapping(z0), w1 = mapping(z1) (ψ = 1), t = 0 and ε = 1e-4::

    wt0 = lerp(w0, w1, t),  wt1 = lerp(w0, w1, t + ε)
    d   = LPIPS(synthesis(wt0), synthesis(wt1)) / ε²

Both images of a pair come from the same noise: the noise buffers (``noise_const``) are re-drawn
from N(0, 1) for each batch and the pairs synthesised with ``noise_mode='const'``. The full image
is compared (no crop); an image larger than 256 is area-downsampled to 256 (``avg_pool2d`` by the
integer factor) and a grey one repeated to 3 channels, then LPIPS-VGG16 v0.1
(:mod:`gankit.evaluation.metrics.lpips`) takes it as it is, in [-1, 1] (not clamped, as in the
reference). **PPL** is the mean of the d between the 1st percentile (numpy ``method='lower'``) and
the 99th (``method='higher'``), both included (:func:`filtered_mean`).

Where gankit differs from the reference:

- LPIPS comes from the original weights, not NVIDIA's TorchScript ``vgg16.pt`` (a file that
  carries code): the same metric, values may differ slightly from the reference's numbers.
- A conditional generator's class is drawn uniformly (the reference takes the label of a random
  training image; the same for balanced data sets such as MNIST and CIFAR-10).
- All randomness (z, classes, noise buffers) comes from one CPU generator seeded with ``seed``, so
  a seed gives the same pairs on any device.
- The generator is a deep copy (its noise buffers are overwritten), in eval mode, in float32 (the
  reference's ``force_fp32``), with TF32 off on CUDA: ε = 1e-4 is below TF32's and fp16's
  resolution, so either would measure rounding noise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from gankit.inference.roles import MappedGenerator, label_classes
from gankit.inference.wspace import mapped_generator

EPSILON = 1e-4
MAX_SIZE = 256
"""Images larger than this are area-downsampled to it before LPIPS."""

Distance = Callable[[Tensor, Tensor], Tensor]
"""(images0, images1) in [-1, 1], (N, 3, H, W) each -> distance per pair (N,): LPIPS."""


def lpips_input(images: Tensor) -> Tensor:
    """Generator output -> LPIPS input: larger than 256 area-downsampled to 256 (by the integer
    factor ``size // 256``), 1 channel repeated to 3."""
    factor = images.shape[-1] // MAX_SIZE
    if factor > 1:
        images = F.avg_pool2d(images, factor)
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    return images


def filtered_mean(distances: Tensor | np.ndarray) -> float:
    """The mean of the values between the 1st ('lower') and 99th ('higher') percentiles,
    inclusive: the reference's guard against the rare huge steps (and exact zeros)."""
    d = np.asarray(distances, dtype=np.float64)
    lo = np.percentile(d, 1, method="lower")
    hi = np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


@contextmanager
def full_float32() -> Iterator[None]:
    """TF32 off for cuDNN convolutions and CUDA matmuls in the block (as stylegan2-ada's scripts
    set it), restored afterwards."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


def private_copy(G: MappedGenerator) -> nn.Module:
    """A deep copy of ``G`` in eval mode, without gradients, with fp16 blocks switched to fp32."""
    from gankit.nets.stylegan2.generator import SynthesisBlock

    net = copy.deepcopy(cast(nn.Module, G)).eval().requires_grad_(False)
    for m in net.modules():
        if isinstance(m, SynthesisBlock):
            m.use_fp16 = False  # the reference's force_fp32
    return net


def _pair_distances(
    G: Any, distance: Distance, b: int, gen: torch.Generator, z_dim: int,
    num_classes: int | None, epsilon: float, noise: list[Tensor],
) -> Tensor:  # fmt: skip
    """The d of ``b`` new pairs (float64, CPU)."""
    device = G.w_avg.device
    z = torch.randn(2 * b, z_dim, generator=gen).to(device)
    c = None
    if num_classes:
        c = torch.randint(num_classes, (b,), generator=gen).repeat(2).to(device)
    for buf in noise:
        buf.copy_(torch.randn(buf.shape, generator=gen))
    w0, w1 = G.mapping(z, c, 1, None, update_w_avg=False).chunk(2)
    t = torch.zeros(b, 1, 1, dtype=w0.dtype, device=device)  # end-point sampling
    images = G.synthesis(torch.cat([w0.lerp(w1, t), w0.lerp(w1, t + epsilon)]), "const")
    img0, img1 = lpips_input(images).chunk(2)
    return distance(img0, img1).double().cpu() / epsilon**2


@torch.no_grad()
def path_distances(
    G: MappedGenerator, distance: Distance, n: int, *, z_dim: int,
    num_classes: int | None = None, seed: int = 0, epsilon: float = EPSILON,
    batch_size: int = 16, progress: bool = True,
) -> Tensor:  # fmt: skip
    """The ``n`` per-sample distances d (float64, CPU) of generator ``G`` (module docstring), in
    batches of ``batch_size`` pairs, on a private copy of ``G`` (:func:`private_copy`)."""
    net = private_copy(G)
    noise = [buf for name, buf in net.named_buffers() if name.endswith("noise_const")]
    gen = torch.Generator().manual_seed(seed)
    starts = range(0, n, batch_size)
    bar = tqdm(
        starts, desc="ppl", unit="batch", disable=not progress or len(starts) < 2, leave=False
    )
    with full_float32():
        out = [
            _pair_distances(
                net, distance, min(batch_size, n - s), gen, z_dim, num_classes, epsilon, noise
            )
            for s in bar
        ]
    return torch.cat(out)


def perceptual_path_length(
    model: object, distance: Distance, n: int, *, ema: bool = True, seed: int = 0,
    epsilon: float = EPSILON, batch_size: int = 16, progress: bool = True,
) -> dict[str, float]:  # fmt: skip
    """``{"ppl": PPL}`` of a loaded run's generator (a :class:`~gankit.inference.roles.WSpaceModel`
    with ``nz``); a one-line ConfigError for a generator without a W space."""
    G = mapped_generator(model, ema, "--metrics ppl")
    classes = label_classes(model)
    d = path_distances(
        G, distance, n, z_dim=model.nz, num_classes=len(classes) if classes else None,  # type: ignore[attr-defined]
        seed=seed, epsilon=epsilon, batch_size=batch_size, progress=progress,
    )  # fmt: skip
    return {"ppl": filtered_mean(d)}
