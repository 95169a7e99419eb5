"""StyleGAN2's generator: a mapping network z (and a class) → w, and a 'skip' synthesis network
ws → image (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN").

Module and parameter names follow NVlabs/stylegan2-ada-pytorch (``training/networks.py``:
``mapping.fc{i}``, ``mapping.w_avg``, ``synthesis.b{res}.conv0|conv1|torgb``), so that its
network snapshots map onto these modules key for key (``gankit import stylegan2-ada``).

- **Mapping**: z normalised by its second moment (a class one-hot through an embedding, normalised
  the same way and concatenated), ``num_layers`` lrelu layers with lr multiplier 0.01; in
  training, ``w_avg`` follows the batch mean of w with β 0.995 (truncation and projection use it).
- **Synthesis**: a learned 4×4 constant, then per resolution an upsampling modulated conv, a
  modulated conv and a ToRGB (1×1, no demodulation); the image is the sum of the upsampled
  ToRGB outputs. Each conv adds per-pixel noise times a learned strength (initialised 0). Channels
  at resolution r: min(channel_base // r, channel_max). ``num_ws`` = 2·log2(size) − 2.
- **Style mixing** (training only, ``style_mixing`` = probability): from a random layer on, the
  ws of a second z, one cutoff per batch, as the reference's loss does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.nets.stylegan2.layers import (
    FullyConnected,
    bias_act,
    fir_filter,
    modulated_conv2d,
    normalize_2nd_moment,
    upsample2d,
)


class MappingNetwork(nn.Module):
    """z (and a class) → w, broadcast to ``num_ws`` copies (None: one w, D's label mapping)."""

    def __init__(
        self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
        lr_mult: float = 0.01, w_avg_beta: float | None = 0.995,
    ) -> None:  # fmt: skip
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        embed = w_dim if c_dim else 0
        if c_dim:
            self.embed = FullyConnected(c_dim, embed)
        features = [z_dim + embed] + [w_dim] * num_layers
        for i in range(num_layers):
            layer = FullyConnected(features[i], features[i + 1], act="lrelu", lr_mult=lr_mult)
            setattr(self, f"fc{i}", layer)
        self.num_layers = num_layers
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: Tensor | None, c: Tensor | None = None, psi: float = 1.0,
        cutoff: int | None = None, update_w_avg: bool = True,
    ) -> Tensor:  # fmt: skip
        """ws (N, num_ws, w_dim); ``c``: class indices or one-hot rows; ``psi`` truncates
        towards w_avg (the first ``cutoff`` ws only, when given)."""
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim:
            if c is None:
                raise ValueError("this mapping network is conditional: give class labels")
            onehot = F.one_hot(c.long(), self.c_dim).float() if c.dim() == 1 else c.float()
            parts.append(normalize_2nd_moment(self.embed(onehot)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        x = x.float()  # under bf16 autocast too: w_avg and truncation are fp32
        if self.num_ws is None:
            return x
        if update_w_avg and self.training and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            k = self.num_ws if cutoff is None else cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :k], psi), x[:, k:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    """A modulated 3×3 conv (optionally upsampling ×2), noise, bias, lrelu, clamp."""

    def __init__(
        self, cin: int, cout: int, w_dim: int, resolution: int, up: int = 1,
        conv_clamp: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.affine = FullyConnected(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("resample_filter", fir_filter(), persistent=False)
        self.up, self.resolution, self.clamp = up, resolution, conv_clamp

    def forward(
        self, x: Tensor, w: Tensor, noise_mode: str = "random", fused: bool = True
    ) -> Tensor:
        styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            shape = (x.shape[0], 1, self.resolution, self.resolution)
            noise = torch.randn(shape, device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x, self.weight, styles, noise, up=self.up, padding=1, f=self.resample_filter,
            flip_weight=self.up == 1, fused=fused,
        )  # fmt: skip
        return bias_act(x, self.bias, "lrelu", clamp=self.clamp)


class ToRGB(nn.Module):
    """A modulated 1×1 conv to the image channels (style scaled by 1/√in, no demodulation)."""

    def __init__(self, cin: int, cout: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, cin, bias_init=1)
        self.weight = nn.Parameter(torch.randn(cout, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.weight_gain, self.clamp = 1 / math.sqrt(cin), conv_clamp

    def forward(self, x: Tensor, w: Tensor, fused: bool = True) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, clamp=self.clamp)


class SynthesisBlock(nn.Module):
    """One resolution: [const | conv0 (up)] → conv1 → ToRGB added to the upsampled image."""

    def __init__(
        self, cin: int, cout: int, w_dim: int, resolution: int, channels: int,
        conv_clamp: float | None = None, use_fp16: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.cin, self.resolution, self.use_fp16 = cin, resolution, use_fp16
        if cin == 0:
            self.const = nn.Parameter(torch.randn(cout, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(cout, cout, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGB(cout, channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", fir_filter(), persistent=False)
        self.num_conv = 1 if cin == 0 else 2

    def forward(
        self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str, fused: bool | None
    ) -> tuple[Tensor, Tensor]:
        dtype = torch.float16 if self.use_fp16 and ws.device.type == "cuda" else torch.float32
        if fused is None:  # the reference's choice: grouped convs only for inference in fp32
            fused = not self.training and (dtype == torch.float32 or ws.shape[0] == 1)
        w = iter(ws.unbind(1))
        if self.cin == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            x = self.conv0(x.to(dtype), next(w), noise_mode, fused)
        x = self.conv1(x, next(w), noise_mode, fused)
        y = self.torgb(x, next(w), fused).float()
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) → images (N, channels, size, size)."""

    def __init__(
        self, w_dim: int, size: int, channels: int, channel_base: int = 32768,
        channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.size, self.channels = size, channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(size)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_from = max(2 ** (int(math.log2(size)) + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for r in self.block_resolutions:
            cin = ch[r // 2] if r > 4 else 0
            block = SynthesisBlock(cin, ch[r], w_dim, r, channels, conv_clamp, r >= fp16_from)
            setattr(self, f"b{r}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last ToRGB's own w (the others share the next conv0's)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{r}") for r in self.block_resolutions]

    def forward(self, ws: Tensor, noise_mode: str = "random", fused: bool | None = None) -> Tensor:
        x = img = None
        i = 0
        for block in self.blocks():
            x, img = block(x, img, ws.narrow(1, i, block.num_conv + 1), noise_mode, fused)
            i += block.num_conv
        return img


class StyleGAN2Generator(nn.Module):
    """z (N, z_dim) [and class labels] → images (N, channels, size, size), roughly in [-1, 1]
    (not squashed, as the reference). A :class:`gankit.inference.roles.MappedGenerator`."""

    def __init__(
        self, z_dim: int, w_dim: int, size: int, channels: int, c_dim: int = 0,
        mapping_layers: int = 8, channel_base: int = 32768, channel_max: int = 512,
        num_fp16_res: int = 0, conv_clamp: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.synthesis = SynthesisNetwork(
            w_dim, size, channels, channel_base, channel_max, num_fp16_res, conv_clamp
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers)
        self.style_mixing = 0.0
        """Probability of mixing the ws of two z in training (0.9 in the reference)."""
        self.fused: bool | None = None
        """Modulated convs as one grouped conv (True), split (False) or the reference's rule."""

    @property
    def w_avg(self) -> Tensor:
        return self.mapping.w_avg

    def mapped(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """ws for ``z``, style-mixed with those of a second z in training (``style_mixing``)."""
        ws = self.mapping(z, c)
        if self.training and self.style_mixing > 0:
            n = ws.shape[1]
            cutoff = torch.randint(1, n, (), device=ws.device)
            mix = torch.rand((), device=ws.device) < self.style_mixing
            cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, n))
            other = self.mapping(torch.randn_like(z), c, update_w_avg=False)
            later = (torch.arange(n, device=ws.device) >= cutoff).view(1, n, 1)
            ws = torch.where(later, other, ws)
        return ws

    def forward(
        self, z: Tensor, c: Tensor | None = None, return_ws: bool = False,
        noise_mode: str | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
        """Images (and their ws). Noise: ``random`` per call in training, the fixed ``const``
        buffers in eval mode (as the reference's generate.py), or ``none``."""
        ws = self.mapped(z, c)
        mode = noise_mode or ("random" if self.training else "const")
        img = self.synthesis(ws, mode, self.fused)
        return (img, ws) if return_ws else img
