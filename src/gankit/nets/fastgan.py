"""FastGAN generator and discriminator for few-shot synthesis (Liu et al. 2021, "Towards Faster
and Stabilized GAN Training for High-fidelity Few-shot Image Synthesis").

Generator: z → 4×4 (transposed conv, BN, GLU), then one upsampling block per ×2 (nearest
upsample, 3×3 conv, BN, GLU: the convs output twice the channels GLU keeps), a 3×3 output conv and
tanh. Channels per resolution follow the paper's plan, ngf/64 × {4: 1024, 8: 512, 16: 256, 32: 128,
64: 128, 128: 64, 256: 32, 512: 16, 1024: 8}. Skip-layer excitation (SLE) gates a high-resolution
map channel-wise by a vector computed from a low-resolution one. The paper links 8→128, 16→256 and
32→512, resolutions 16× apart; here every pair (r, 16r) with 4 ≤ r and 16r ≤ size is linked (so
also 4→64), and at 32×32, where no such pair fits, 4→32.

Discriminator: stride-2 4×4 convs (BN and LeakyReLU 0.2, no BN on the first) down to 8×8, with
ndf·64/r channels at resolution r (512 at 8×8 for ndf 64), then a logit head (1×1 conv, BN,
LeakyReLU, 4×4 conv → a 5×5 map of logits as in the paper) averaged to one logit per image. Every
D conv, decoders included, is spectrally normalised. Two small decoders (``reconstruction_loss``)
rebuild ``min(recon_size, image_size)``-pixel images: one from the 8×8 map, one from a random
quadrant (per sample) of the 16×16 map, compared with the resized real image and its quadrant.

Deviations from the paper: the reconstruction loss is a multi-scale L1 (L1 on the images plus L1
on their 4× average-pooled versions) instead of LPIPS-VGG16, whose weights cannot be downloaded
here; the generator uses plain upsampling blocks (no noise injection, no doubled "compound"
blocks) and has no extra 128² output; the discriminator has no second path on a downsampled
image and no SLE of its own; D's logit map is averaged to (N,), the shape gankit's
``discriminator`` kind returns.

Parameters with ngf = ndf = 64, nz = 256, 3 channels, recon_size 128 (paper at 256²: G 29.1 M,
D 11.5 M)::

    size    G            D
    256     24,037,600   7,252,432
    128     23,869,376   7,221,072
     64     23,195,008   7,047,840
     32     22,899,584   6,347,072

Most of G's weights sit at 4×4 and 8×8 (the transposed conv from z and the first up block), so G
barely shrinks with the image size. Spectral norm adds buffers, not parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gankit.errors import ConfigError
from gankit.nets.base import GANNetOptions, initialised

G_PLAN = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
"""Generator channels per resolution, in units of ngf (the paper's plan)."""

SIZES = tuple(G_PLAN)[3:]
"""Supported image sizes: powers of two from 32 to 1024."""


def g_channels(ngf: int, r: int) -> int:
    return max(1, int(ngf * G_PLAN[r]))


def d_channels(ndf: int, r: int) -> int:
    """Discriminator channels of the feature map at resolution ``r`` (ndf·8 at 8×8)."""
    return max(1, ndf * 64 // r)


def sle_pairs(size: int) -> list[tuple[int, int]]:
    """The (low, high) resolutions linked by skip-layer excitation at ``size``."""
    pairs = [(r, 16 * r) for r in G_PLAN if 16 * r <= size]
    return pairs or [(4, size)]


def up_block(cin: int, cout: int) -> nn.Sequential:
    """×2 nearest upsampling, 3×3 conv to 2·cout, BN, GLU (keeps cout channels)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, 2 * cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(2 * cout),
        nn.GLU(dim=1),
    )


class SkipLayerExcitation(nn.Module):
    """high · σ(conv1×1(SiLU(conv4×4(avgpool₄(low))))), the gate broadcast over high's H×W."""

    def __init__(self, c_low: int, c_high: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False),
            nn.SiLU(),
            nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def gate(self, low: torch.Tensor) -> torch.Tensor:
        """The excitation (N, c_high, 1, 1), in (0, 1)."""
        return self.main(low)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class FastGANGenerator(nn.Module):
    """z (N, nz) or (N, nz, 1, 1) → image (N, channels, size, size) in [-1, 1]."""

    def __init__(self, image_size: int = 256, nz: int = 256, ngf: int = 64, channels: int = 3):
        super().__init__()
        self.nz = nz
        c4 = g_channels(ngf, 4)
        self.stem = nn.Sequential(
            nn.ConvTranspose2d(nz, 2 * c4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(2 * c4),
            nn.GLU(dim=1),
        )
        self.resolutions = [2**i for i in range(3, image_size.bit_length())]
        self.ups = nn.ModuleDict(
            {
                str(r): up_block(g_channels(ngf, r // 2), g_channels(ngf, r))
                for r in self.resolutions
            }
        )
        self.pairs = dict((high, low) for low, high in sle_pairs(image_size))
        self.sle = nn.ModuleDict(
            {
                str(high): SkipLayerExcitation(g_channels(ngf, low), g_channels(ngf, high))
                for high, low in self.pairs.items()
            }
        )
        self.to_rgb = nn.Sequential(
            nn.Conv2d(g_channels(ngf, image_size), channels, 3, 1, 1, bias=False), nn.Tanh()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.stem(z.reshape(z.shape[0], self.nz, 1, 1))
        feats = {4: x}
        for r in self.resolutions:
            x = self.ups[str(r)](x)
            if r in self.pairs:
                x = self.sle[str(r)](feats[self.pairs[r]], x)
            feats[r] = x
        return self.to_rgb(x)


def down_block(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    """4×4 stride-2 conv, BN (unless ``norm`` is False), LeakyReLU 0.2."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, True))


def decoder(cin: int, channels: int, blocks: int) -> nn.Sequential:
    """8×8 features → (2^blocks·8)² image in [-1, 1]: up blocks halving the width, conv, tanh."""
    layers, c = [], cin
    for _ in range(blocks):
        layers.append(up_block(c, max(c // 2, 4)))
        c = max(c // 2, 4)
    return nn.Sequential(*layers, nn.Conv2d(c, channels, 3, 1, 1, bias=False), nn.Tanh())


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square images to ``size``: area averaging down, bilinear up."""
    if x.shape[-1] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def quadrant(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quadrant ``q[i]`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of ``x[i]``."""
    h = x.shape[-1] // 2
    quads = torch.stack([x[..., :h, :h], x[..., :h, h:], x[..., h:, :h], x[..., h:, h:]], 1)
    return quads[torch.arange(x.shape[0], device=x.device), q]


def multiscale_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 on the images plus L1 on their 4× average-pooled versions (stands in for LPIPS)."""
    return F.l1_loss(a, b) + F.l1_loss(F.avg_pool2d(a, 4), F.avg_pool2d(b, 4))


class FastGANDiscriminator(nn.Module):
    """image (N, channels, size, size) → one logit per image, shape (N,).

    ``reconstruction_loss(x_real)`` (or ``D(x_real, reconstruct=True)``) is the paper's
    self-supervised auto-encoding term, to be added to D's loss on real images only (a
    :class:`~gankit.inference.roles.ReconstructingDiscriminator`).
    """

    def __init__(
        self, image_size: int = 256, ndf: int = 64, channels: int = 3, recon_size: int = 128
    ):
        super().__init__()
        res = [image_size // 2**i for i in range(image_size.bit_length()) if image_size >> i >= 8]
        self.body = nn.ModuleList(
            down_block(
                channels if i == 0 else d_channels(ndf, r), d_channels(ndf, r // 2), norm=i > 0
            )
            for i, r in enumerate(res[:-1])
        )
        self.resolutions = res[1:]
        c8, c16 = d_channels(ndf, 8), d_channels(ndf, 16)
        self.head = nn.Sequential(
            nn.Conv2d(c8, 2 * c8, 1, 1, 0, bias=False),
            nn.BatchNorm2d(2 * c8),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * c8, 1, 4, 1, 0, bias=False),
        )
        self.recon_size = min(recon_size, image_size)
        blocks = self.recon_size.bit_length() - 4  # 8 → recon_size
        self.decode_whole = decoder(c8, channels, blocks)
        self.decode_part = decoder(c16, channels, blocks)

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The 16×16 and 8×8 feature maps of the body."""
        feats = {}
        for r, block in zip(self.resolutions, self.body, strict=True):
            x = block(x)
            feats[r] = x
        return {16: feats[16], 8: feats[8]}

    def _logits(self, f8: torch.Tensor) -> torch.Tensor:
        return self.head(f8).mean(dim=(1, 2, 3))

    def forward(
        self, x: torch.Tensor, reconstruct: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (N,); with ``reconstruct=True`` also :meth:`reconstruction_loss` of ``x``
        from the same pass through the body (a call through forward, so that a DDP wrapper
        synchronises the decoders' gradients too)."""
        feats = self.features(x)
        logits = self._logits(feats[8])
        return (logits, self._recon(x, feats)) if reconstruct else logits

    def _recon(self, x: torch.Tensor, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        q = torch.randint(0, 4, (x.shape[0],), device=x.device)
        whole = self.decode_whole(feats[8])
        part = self.decode_part(quadrant(feats[16], q))
        target_part = resize(quadrant(x, q), self.recon_size)
        return multiscale_l1(whole, resize(x, self.recon_size)) + multiscale_l1(part, target_part)

    def reconstruction_loss(self, x_real: torch.Tensor) -> torch.Tensor:
        """Multi-scale L1 of both decoders' reconstructions of ``x_real`` (a scalar)."""
        return self._recon(x_real, self.features(x_real))


@dataclass
class FastGANGeneratorOptions(GANNetOptions):
    """``nets.G`` of ``arch: fastgan``."""

    nz: int = 256
    """Noise dimension (256 in the paper)."""
    ngf: int = 64
    """Width: channels per resolution are ngf/64 × {4: 1024, 8: 512, ..., 256: 32}."""


@dataclass
class FastGANDiscriminatorOptions(GANNetOptions):
    """``nets.D`` of ``arch: fastgan``."""

    ndf: int = 64
    """Width: the feature map at resolution r has ndf·64/r channels (512 at 8×8 for ndf 64)."""
    recon_size: int = 128
    """Side of the decoders' reconstructions (a power of two ≥ 16; capped at the image size)."""


def check(
    opts: FastGANGeneratorOptions | FastGANDiscriminatorOptions, size: int, channels: int
) -> None:
    role = "nets.G" if isinstance(opts, FastGANGeneratorOptions) else "nets.D"
    if size not in SIZES:
        raise ConfigError(
            f"data.image_size={size} is not supported by {role}.arch=fastgan: "
            f"use a power of two from 32 to 1024 ({', '.join(map(str, SIZES))})"
        )
    if channels <= 0:
        raise ConfigError(f"data.channels={channels} must be positive for {role}.arch=fastgan")
    for name in ("nz", "ngf", "ndf"):
        value = getattr(opts, name, 1)
        if value <= 0:
            raise ConfigError(f"{role}.{name}={value} must be positive")
    recon = getattr(opts, "recon_size", 128)
    if recon < 16 or recon & (recon - 1):
        raise ConfigError(f"{role}.recon_size={recon} must be a power of two >= 16, e.g. 128")


def build_generator(opts: FastGANGeneratorOptions, size: int, channels: int) -> nn.Module:
    check(opts, size, channels)
    return initialised(FastGANGenerator(size, opts.nz, opts.ngf, channels), opts)


def build_discriminator(opts: FastGANDiscriminatorOptions, size: int, channels: int) -> nn.Module:
    check(opts, size, channels)
    net = initialised(FastGANDiscriminator(size, opts.ndf, channels, opts.recon_size), opts)
    # Spectral norm after initialising: the init cannot reach a parametrised weight's original.
    for m in list(net.modules()):
        if isinstance(m, nn.Conv2d):
            spectral_norm(m)
    return net
