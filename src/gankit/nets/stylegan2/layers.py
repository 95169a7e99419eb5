"""StyleGAN2's building blocks in plain PyTorch: FIR resampling, equalised learning rate,
modulated convolution.

Written from the papers (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"; 2020b, "Training Generative Adversarial Networks with Limited Data") and the
behaviour of NVlabs/stylegan2-ada-pytorch (``training/networks.py``, ``torch_utils/ops/``):
the same parameters under the same names, the same padding, weight flips and gains, so that its
snapshots load and give its images. No custom CUDA or C++ op: everything here is ``conv2d``,
``conv_transpose2d`` and element-wise arithmetic, which runs on a CPU, a Mac and a GPU and which
``torch.compile`` can fuse.

Resampling is ``upfirdn``: insert zeros (up), pad, filter with the normalised outer product of
[1, 3, 3, 1], keep every ``down``-th pixel. Equalised learning rate: weights are stored N(0, 1)
(/``lr_mult`` for linear layers) and scaled at run time by ``lr_mult / sqrt(fan_in)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.nets.base import WeightLayer

SQRT2 = math.sqrt(2.0)


def fir_filter(taps: tuple[float, ...] = (1, 3, 3, 1)) -> Tensor:
    """The 2-D filter ``outer(taps, taps)`` normalised to sum 1."""
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn(
    x: Tensor, f: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0), gain: float = 1
) -> Tensor:
    """Upsample by zero insertion, pad (``pad`` = before, after; negative crops), filter with
    ``f·gain`` per channel, downsample by dropping pixels."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
    k = (f * gain).to(x.dtype).flip([0, 1])[None, None]
    if torch.jit.is_tracing():  # ONNX/TorchScript export: a kernel whose shape is not traced
        hp, wp = x.shape[2], x.shape[3]
        x = F.conv2d(x.reshape(-1, 1, hp, wp), k).reshape(n, c, hp - k.shape[2] + 1, -1)
    else:  # a depthwise conv: 15x faster on a CPU than the channels folded into the batch
        x = F.conv2d(x, k.expand(c, 1, *k.shape[2:]), groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: Tensor, f: Tensor) -> Tensor:
    """×2 upsampling of an image (StyleGAN2's skip generator): zeros, then the filter with gain 4."""
    fw = f.shape[-1]
    return upfirdn(x, f, up=2, pad=((fw + 1) // 2, (fw - 2) // 2), gain=4)


def downsample2d(x: Tensor, f: Tensor) -> Tensor:
    fw = f.shape[-1]
    return upfirdn(x, f, down=2, pad=((fw - 1) // 2, (fw - 2) // 2))


def conv_resample(
    x: Tensor, w: Tensor, f: Tensor | None, up: int = 1, down: int = 1, padding: int = 0,
    groups: int = 1, flip_weight: bool = True,
) -> Tensor:  # fmt: skip
    """A convolution with FIR up- or downsampling by 2 around it, as stylegan2-ada's
    ``conv2d_resample``: up = transposed conv (stride 2) then the filter (gain 4); down = the
    filter then a strided conv (1×1 kernels: the filter first, then the plain conv)."""
    k = w.shape[-1]
    if not flip_weight:  # a true convolution instead of torch's correlation
        w = w.flip([2, 3])
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    assert f is not None
    fw = f.shape[-1]
    if down > 1:
        p0, p1 = padding + (fw - down + 1) // 2, padding + (fw - down) // 2
        if k == 1:
            return F.conv2d(upfirdn(x, f, down=down, pad=(p0, p1)), w, groups=groups)
        return F.conv2d(upfirdn(x, f, pad=(p0, p1)), w, stride=down, groups=groups)
    p0 = padding + (fw + up - 1) // 2 - (k - 1)
    p1 = padding + (fw - up) // 2 - (k - up)
    out_ch, in_per_group = w.shape[0], w.shape[1]
    wt = w.flip([2, 3])  # undo the flip: the transposed conv runs uncorrected, as the reference's
    wt = wt.reshape(groups, out_ch // groups, in_per_group, k, k).transpose(1, 2)
    wt = wt.reshape(groups * in_per_group, out_ch // groups, k, k)
    x = F.conv_transpose2d(x, wt, stride=up, groups=groups)
    return upfirdn(x, f, pad=(p0, p1), gain=up * up)


def bias_act(
    x: Tensor, b: Tensor | None, act: str = "linear", gain: float = 1.0, clamp: float | None = None
) -> Tensor:
    """Add the per-channel bias, apply ``lrelu`` (slope 0.2, times √2) or nothing, scale by
    ``gain``, clamp to ±``clamp``."""
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, *([1] * (x.dim() - 2)))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2) * (SQRT2 * gain)
    elif gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x / sqrt(mean(x²) + eps) along the features."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnected(WeightLayer):
    """A linear layer with equalised learning rate: weight N(0, 1)/lr_mult scaled by
    lr_mult/√in at run time, bias scaled by lr_mult."""

    def __init__(
        self, cin: int, cout: int, bias: bool = True, act: str = "linear",
        lr_mult: float = 1.0, bias_init: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mult)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init))) if bias else None
        self.act, self.weight_gain, self.bias_gain = act, lr_mult / math.sqrt(cin), lr_mult

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.act == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.act)


class Conv2d(WeightLayer):
    """A convolution with equalised learning rate, optional FIR up/downsampling by 2, bias,
    activation (lrelu gain √2) and clamp (``conv_clamp``, scaled with the gain)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, bias: bool = True, act: str = "linear",
        up: int = 1, down: int = 1, conv_clamp: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer("resample_filter", fir_filter(), persistent=False)
        self.act, self.up, self.down, self.clamp = act, up, down, conv_clamp
        self.weight_gain, self.padding = 1 / math.sqrt(cin * kernel * kernel), kernel // 2

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        x = conv_resample(
            x, w, self.resample_filter, self.up, self.down, self.padding, flip_weight=self.up == 1
        )
        clamp = None if self.clamp is None else self.clamp * gain
        return bias_act(x, self.bias, self.act, gain, clamp)


def modulated_conv2d(
    x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor | None = None, up: int = 1,
    padding: int = 0, f: Tensor | None = None, demodulate: bool = True,
    flip_weight: bool = True, fused: bool = True,
) -> Tensor:  # fmt: skip
    """StyleGAN2's convolution: weights scaled per input channel by the sample's style,
    then (``demodulate``) per output channel by 1/√(Σ w'² + 1e-8); ``noise`` added after.

    ``fused``: one grouped convolution with a weight per sample (groups = batch); otherwise the
    same arithmetic as scale input → shared conv → scale output (cheaper for training). In fp16
    the weights and styles are first divided by their largest magnitudes, which demodulation
    cancels, so that the products cannot overflow.
    """
    n = x.shape[0]
    cout, cin, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (
            1 / math.sqrt(cin * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = dcoefs = None
    if demodulate or fused:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv_resample(x, weight.to(x.dtype), f, up=up, padding=padding, flip_weight=flip_weight)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x if noise is None else x + noise.to(x.dtype)
    if dcoefs is not None:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, cin, kh, kw).to(x.dtype)
    x = conv_resample(x, w, f, up=up, padding=padding, groups=n, flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    return x if noise is None else x + noise.to(x.dtype)
