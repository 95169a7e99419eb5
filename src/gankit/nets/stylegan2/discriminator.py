"""StyleGAN2's discriminator: 'resnet' (or 'orig') blocks from the image resolution down to 8×8,
then an epilogue at 4×4 with minibatch standard deviation (Karras et al. 2020; names as
NVlabs/stylegan2-ada-pytorch ``training/networks.py``: ``b{res}.fromrgb|conv0|conv1|skip``,
``b4.conv|fc|out``, ``mapping.*`` for labels).

A block at resolution r: fromrgb (first block only, 1×1 lrelu), conv0 3×3, conv1 3×3 with ×2 FIR
downsampling; 'resnet' adds a 1×1 downsampling skip without bias, both paths scaled by √0.5.
A conditional D maps the class through a mapping network to ``cmap`` and scores
Σ(out·cmap)/√cmap_dim (projection, Miyato & Koyama 2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.nets.stylegan2.generator import MappingNetwork
from gankit.nets.stylegan2.layers import Conv2d, FullyConnected

SQRT_HALF = math.sqrt(0.5)


class DiscriminatorBlock(nn.Module):
    def __init__(
        self, cin: int, tmp: int, cout: int, channels: int, architecture: str = "resnet",
        conv_clamp: float | None = None, use_fp16: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.cin, self.architecture, self.use_fp16 = cin, architecture, use_fp16
        if cin == 0:
            self.fromrgb = Conv2d(channels, tmp, 1, act="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2d(tmp, tmp, 3, act="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2d(tmp, cout, 3, act="lrelu", down=2, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2d(tmp, cout, 1, bias=False, down=2)

    def forward(self, x: Tensor | None, img: Tensor) -> Tensor:
        dtype = torch.float16 if self.use_fp16 and img.device.type == "cuda" else torch.float32
        if self.cin == 0:
            x = self.fromrgb(img.to(dtype))
        x = x.to(dtype)
        if self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)
            return y + self.conv1(self.conv0(x), gain=SQRT_HALF)
        return self.conv1(self.conv0(x))


class MinibatchStd(nn.Module):
    """Appends the standard deviation over groups of ``group_size`` samples (strided: sample i
    is in group i mod N/G), averaged over features, as ``num_channels`` extra channels."""

    def __init__(self, group_size: int, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size else n
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class Epilogue(nn.Module):
    """4×4: minibatch stddev, conv 3×3, fc (16C → C), out (C → 1 or cmap_dim)."""

    def __init__(
        self, cin: int, cmap_dim: int, mbstd_group: int = 4, mbstd_channels: int = 1,
        conv_clamp: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels) if mbstd_channels else None
        self.conv = Conv2d(cin + mbstd_channels, cin, 3, act="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnected(cin * 16, cin, act="lrelu")
        self.out = FullyConnected(cin, cmap_dim or 1)

    def forward(self, x: Tensor, cmap: Tensor | None) -> Tensor:
        x = x.float()
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if cmap is not None:
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class StyleGAN2Discriminator(nn.Module):
    """Images (N, C, size, size) [and class labels] → one logit each, (N,)."""

    def __init__(
        self, size: int, channels: int, c_dim: int = 0, architecture: str = "resnet",
        channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
        conv_clamp: float | None = None, mbstd_group: int = 4, mbstd_channels: int = 1,
        mapping_layers: int = 8,
    ) -> None:  # fmt: skip
        super().__init__()
        self.c_dim = c_dim
        self.block_resolutions = [2**i for i in range(int(math.log2(size)), 2, -1)]
        ch = {r: min(channel_base // r, channel_max) for r in [*self.block_resolutions, 4]}
        fp16_from = max(2 ** (int(math.log2(size)) + 1 - num_fp16_res), 8)
        for r in self.block_resolutions:
            cin = ch[r] if r < size else 0
            block = DiscriminatorBlock(
                cin, ch[r], ch[r // 2], channels, architecture, conv_clamp, r >= fp16_from
            )
            setattr(self, f"b{r}", block)
        cmap_dim = ch[4] if c_dim else 0
        if c_dim:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, None, mapping_layers, w_avg_beta=None)
        self.b4 = Epilogue(ch[4], cmap_dim, mbstd_group, mbstd_channels, conv_clamp)

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor | tuple[Tensor, None]:
        """Logits (N,); with labels ``c`` (a conditional D), ``(logits, None)`` as gankit's
        label-taking discriminators return."""
        x = None
        for r in self.block_resolutions:
            x = getattr(self, f"b{r}")(x, img)
        cmap = None
        if self.c_dim:
            if c is None:
                raise ValueError("this discriminator is conditional: give class labels")
            onehot = F.one_hot(c.long(), self.c_dim).float() if c.dim() == 1 else c.float()
            cmap = self.mapping(None, onehot)
        out = self.b4(x, cmap).squeeze(1)
        return (out, None) if c is not None else out
