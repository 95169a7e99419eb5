"""R3GAN generator and discriminator: a modern convolutional GAN baseline without tricks.

Huang, Gokaslan, Kuleshov, Tompkin, "The GAN is dead; long live the GAN! A Modern GAN Baseline",
NeurIPS 2024 (arXiv 2501.05441); reference code https://github.com/brownvc/R3GAN
(``R3GAN/Networks.py``, ``Resamplers.py``), whose parameter counts these networks reproduce.

Both networks are stacks of stages, one per resolution from 4×4 up; ``widths`` lists the
channels of each stage **from 4×4 upward in both networks**, so one value fits G and D, and the
image size is 4·2^(len(widths) − 1). A stage holds ``blocks`` residual blocks
x + conv1×1(eC→C)(act(grouped conv3×3(eC→eC)(act(conv1×1(C→eC)(x))))), with expansion e, groups
of ``group_width`` channels and act = a per-channel bias then LeakyReLU 0.2; the convs have no
bias, and there is no normalisation, no equalised learning rate, no mapping network, no noise
input and no minibatch stddev.

- G: a basis layer out[n, c] = B[c] · (W z)[n, c] (B a learned C₀×4×4 tensor, W bias-free), the
  4×4 stage, then per further stage a 1×1 conv when the width changes, ×2 upsampling and the
  blocks; a 1×1 conv to ``channels``. **No tanh**: as in R3GAN the images are unbounded (they
  approach [-1, 1] because the reals are), so code that saves or scores samples clamps them.
- D: a 1×1 conv from the image, per stage the blocks then (above 4×4) ×2 downsampling and a 1×1
  conv when the width changes; the head is a depthwise 4×4 conv (no padding) and a bias-free
  linear layer to one logit.
- Resampling: the normalised outer product of [1, 3, 3, 1] (a fixed, non-persistent buffer);
  up = depthwise transposed conv, stride 2, padding 1, with the filter ×4; down = depthwise conv,
  stride 2, padding 1.
- Conditional (:class:`R3GANConditionalGenerator`, :class:`R3GANConditionalDiscriminator`): G
  joins z to a learned ``embed_dim``-d class embedding W_e·onehot(y); D's linear head maps to C₀
  features φ(x) and the logit is ⟨φ(x), W_e·onehot(y)⟩, with no unconditional logit.
- Init (fix-up style, its own: the options have no ``init``): W ~ N(0, g²/fan_in), fan_in =
  (in/groups)·k²; the first two layers of each block g = √(2/1.04)·L^(−1/4), L the number of
  blocks in the network; the last layer of each block g = 0, so every residual branch starts
  at exactly zero; D's class embedding g = 1/√C₀; every other layer g = 1; biases 0; B ~ N(0, 1).

Parameters with 3 channels, 2 blocks per stage, z 64 (all equal to the reference's)::

    config (widths from 4×4)                     group   G              D
    CIFAR-10 768×4                                16     20,732,160     20,683,776
    CIFAR-10 768×4, 10 classes                    16     20,781,952     21,280,512
    FFHQ-64 768×4, 384                            16     22,429,824     22,381,440
    FFHQ-256 768×4, 384, 192, 96                  16     23,057,952     23,009,568
    ImageNet-32 1536×4, 1,000 classes             32     82,914,304     86,548,992
    ImageNet-64 1536×5, 1,000 classes             32    103,570,432    107,205,120
    CPU demo 128, 128, 64, 32, 1 block            16        274,912        266,848
    (the same, 1 channel)                         16        274,848        266,784

A block of width C has 4C² + 36C²/cardinality + 4C parameters at e = 2 (2C/group_width groups).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import ConfigError
from gankit.nets.base import NetOptions

ACT_GAIN = math.sqrt(2 / (1 + 0.2**2))
"""The gain of LeakyReLU 0.2, √(2/1.04)."""


def msr_init_(layer: nn.Module, gain: float) -> nn.Module:
    """W ~ N(0, gain²/fan_in), fan_in = (in/groups)·k² (the size of one output's weights)."""
    w = layer.weight
    nn.init.normal_(w, 0.0, gain / math.sqrt(w[0].numel()))
    return layer


def conv1x1(cin: int, cout: int, gain: float = 1.0) -> nn.Conv2d:
    return msr_init_(nn.Conv2d(cin, cout, 1, bias=False), gain)


def resampling_filter() -> torch.Tensor:
    """The 4×4 outer product of [1, 3, 3, 1] with itself, normalised to sum 1."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(k, k)
    return f / f.sum()


class Resample(nn.Module):
    """×2 up- (transposed) or downsampling, depthwise, with the [1, 3, 3, 1] filter."""

    def __init__(self, up: bool) -> None:
        super().__init__()
        self.up = up
        self.register_buffer("filter", resampling_filter(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        f = (4 * self.filter if self.up else self.filter).to(x.dtype)
        w = f.expand(c, 1, 4, 4).contiguous()
        if self.up:
            return F.conv_transpose2d(x, w, stride=2, padding=1, groups=c)
        return F.conv2d(x, w, stride=2, padding=1, groups=c)


class BiasedLeakyReLU(nn.Module):
    """LeakyReLU 0.2 of x plus a learned per-channel bias (zero at first), no gain."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), 0.2)


class ResidualBlock(nn.Module):
    """x + the inverted-bottleneck branch; the branch's last conv starts at zero."""

    def __init__(self, channels: int, expansion: int, group_width: int, gain: float) -> None:
        super().__init__()
        wide = channels * expansion
        grouped = nn.Conv2d(wide, wide, 3, padding=1, groups=wide // group_width, bias=False)
        self.branch = nn.Sequential(
            conv1x1(channels, wide, gain),
            BiasedLeakyReLU(wide),
            msr_init_(grouped, gain),
            BiasedLeakyReLU(wide),
            conv1x1(wide, channels, 0.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def _blocks(c: int, blocks: int, expansion: int, group_width: int, total: int) -> list[nn.Module]:
    gain = ACT_GAIN * total ** (-0.25)
    return [ResidualBlock(c, expansion, group_width, gain) for _ in range(blocks)]


class Basis(nn.Module):
    """(N, dim) → (N, C, 4, 4): a learned basis B (C×4×4) scaled per channel by W·input."""

    def __init__(self, in_dim: int, channels: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = msr_init_(nn.Linear(in_dim, channels, bias=False), 1.0)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.basis * self.linear(w)[:, :, None, None]


class R3GANGenerator(nn.Module):
    """z (N, nz) → images (N, channels, size, size), unbounded (no tanh, as in R3GAN)."""

    def __init__(
        self,
        widths: tuple[int, ...],
        channels: int = 3,
        nz: int = 64,
        blocks: int = 2,
        group_width: int = 16,
        expansion: int = 2,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        self.nz = nz
        self.image_size = 4 * 2 ** (len(widths) - 1)
        total = blocks * len(widths)
        self.basis = Basis(nz + cond_dim, widths[0])
        stages = []
        for i, c in enumerate(widths):
            layers: list[nn.Module] = []
            if i > 0:
                if widths[i - 1] != c:
                    layers.append(conv1x1(widths[i - 1], c))
                layers.append(Resample(up=True))
            layers += _blocks(c, blocks, expansion, group_width, total)
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.to_image = conv1x1(widths[-1], channels)

    def synthesise(self, w: torch.Tensor) -> torch.Tensor:
        """Images from the basis layer's input (z, joined to the class embedding if any)."""
        x = self.basis(w)
        for stage in self.stages:
            x = stage(x)
        return self.to_image(x)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesise(z.flatten(1))


class R3GANConditionalGenerator(R3GANGenerator):
    """``forward(z, y)``: z (N, nz) and class indices y (N,) → images; z joined to W_e·onehot(y)."""

    def __init__(
        self, widths: tuple[int, ...], num_classes: int, embed_dim: int = 64, **kwargs
    ) -> None:
        super().__init__(widths, cond_dim=embed_dim, **kwargs)
        self.num_classes = num_classes
        self.embed = msr_init_(nn.Linear(num_classes, embed_dim, bias=False), 1.0)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        onehot = F.one_hot(y, self.num_classes).to(z.dtype)
        return self.synthesise(torch.cat([z.flatten(1), self.embed(onehot)], dim=1))


class R3GANDiscriminator(nn.Module):
    """images (N, channels, size, size) → one logit per image, (N,)."""

    def __init__(
        self,
        widths: tuple[int, ...],
        channels: int = 3,
        blocks: int = 2,
        group_width: int = 16,
        expansion: int = 2,
        out_dim: int = 1,
    ) -> None:
        super().__init__()
        total = blocks * len(widths)
        self.from_image = conv1x1(channels, widths[-1])
        stages = []
        for i in reversed(range(len(widths))):
            c = widths[i]
            layers = _blocks(c, blocks, expansion, group_width, total)
            if i > 0:
                layers.append(Resample(up=False))
                if widths[i - 1] != c:
                    layers.append(conv1x1(c, widths[i - 1]))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        c0 = widths[0]
        self.spatial = msr_init_(nn.Conv2d(c0, c0, 4, groups=c0, bias=False), 1.0)
        self.linear = msr_init_(nn.Linear(c0, out_dim, bias=False), 1.0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output, (N, out_dim): the logit, or φ(x) of the conditional D."""
        x = self.from_image(x)
        for stage in self.stages:
            x = stage(x)
        return self.linear(self.spatial(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).squeeze(1)


class R3GANConditionalDiscriminator(R3GANDiscriminator):
    """``forward(x, y)`` → (N,) logits ⟨φ(x), W_e·onehot(y)⟩, φ(x) of dimension C₀."""

    def __init__(self, widths: tuple[int, ...], num_classes: int, **kwargs) -> None:
        super().__init__(widths, out_dim=widths[0], **kwargs)
        self.num_classes = num_classes
        self.embed = msr_init_(
            nn.Linear(num_classes, widths[0], bias=False), 1 / math.sqrt(widths[0])
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        phi = self.features(x)
        onehot = F.one_hot(y, self.num_classes).to(phi.dtype)
        return (phi * self.embed(onehot)).sum(dim=1), None  # gankit's (logits, aux)


DEFAULT_WIDTHS = (128, 128, 64, 32)
"""The CPU demonstration's widths (32×32); the paper's presets are in the module docstring."""


@dataclass
class R3GANGeneratorOptions(NetOptions):
    """``nets.G`` of ``arch: r3gan`` (no ``init``: R3GAN's fix-up initialisation is fixed)."""

    nz: int = 64
    """Noise dimension (64 in the paper; z ~ N(0, I), not normalised)."""
    widths: tuple[int, ...] = field(default_factory=lambda: DEFAULT_WIDTHS)
    """Channels per stage from 4×4 up (image size 4·2^(stages−1)), e.g. 768,768,768,768."""
    blocks: int = 2
    """Residual blocks per stage."""
    group_width: int = 16
    """Channels per group of the grouped 3×3 conv (16 in the paper; 32 for ImageNet)."""
    expansion: int = 2
    """Inverted bottleneck: the block's inner width is expansion × the stage's width."""
    embed_dim: int = 64
    """Class embedding joined to z by the conditional generator."""


@dataclass
class R3GANDiscriminatorOptions(NetOptions):
    """``nets.D`` of ``arch: r3gan``; ``widths`` from 4×4 up, the same value as G's."""

    widths: tuple[int, ...] = field(default_factory=lambda: DEFAULT_WIDTHS)
    """Channels per stage from 4×4 up (D runs them in reverse), e.g. 768,768,768,768."""
    blocks: int = 2
    """Residual blocks per stage."""
    group_width: int = 16
    """Channels per group of the grouped 3×3 conv."""
    expansion: int = 2
    """Inverted bottleneck: the block's inner width is expansion × the stage's width."""


R3GANOptions = R3GANGeneratorOptions | R3GANDiscriminatorOptions


def _check_size(role: str, widths: tuple[int, ...], size: int) -> None:
    built = 4 * 2 ** (len(widths) - 1)
    if size == built:
        return
    stages = len(widths)
    if size >= 4 and size % 4 == 0 and (size // 4) & (size // 4 - 1) == 0:
        fix = f"give {(size // 4).bit_length()} widths (4×4 first)"
    else:
        fix = "r3gan builds sizes 4·2^k (8, 16, 32, 64, ...)"
    raise ConfigError(
        f"{role}.widths has {stages} stage{'s' * (stages != 1)}, which build {built}×{built} "
        f"images; data.image_size is {size}: {fix}"
    )


def check(opts: R3GANOptions, size: int, channels: int) -> None:
    """One-line ConfigErrors for settings R3GAN cannot build."""
    role = "nets.G" if isinstance(opts, R3GANGeneratorOptions) else "nets.D"
    widths = tuple(opts.widths)
    if channels <= 0:
        raise ConfigError(f"data.channels={channels} must be positive for {role}.arch=r3gan")
    for name in ("nz", "blocks", "group_width", "expansion", "embed_dim"):
        value = getattr(opts, name, 1)
        if value <= 0:
            raise ConfigError(f"{role}.{name}={value} must be positive")
    shown = ",".join(map(str, widths))
    if not widths or min(widths) <= 0:
        raise ConfigError(f"{role}.widths={shown} must be positive channel counts, e.g. 128,64")
    for c in widths:
        if (c * opts.expansion) % opts.group_width:
            raise ConfigError(
                f"{role}.widths={shown}: {c}×{role}.expansion={opts.expansion} is not a multiple "
                f"of {role}.group_width={opts.group_width} (the grouped conv needs whole groups)"
            )
    _check_size(role, widths, size)


def _common(opts: R3GANOptions) -> dict:
    return {"blocks": opts.blocks, "group_width": opts.group_width, "expansion": opts.expansion}


def build_generator(
    opts: R3GANGeneratorOptions, size: int, channels: int, num_classes: int = 0
) -> nn.Module:
    if num_classes:
        return build_conditional_generator(opts, size, channels, num_classes)
    check(opts, size, channels)
    return R3GANGenerator(tuple(opts.widths), channels, opts.nz, **_common(opts))


def build_discriminator(
    opts: R3GANDiscriminatorOptions, size: int, channels: int, num_classes: int = 0
) -> nn.Module:
    if num_classes:
        return build_conditional_discriminator(opts, size, channels, num_classes)
    check(opts, size, channels)
    return R3GANDiscriminator(tuple(opts.widths), channels, **_common(opts))


def build_conditional_generator(
    opts: R3GANGeneratorOptions, size: int, channels: int, num_classes: int
) -> nn.Module:
    check(opts, size, channels)
    return R3GANConditionalGenerator(
        tuple(opts.widths),
        num_classes,
        opts.embed_dim,
        channels=channels,
        nz=opts.nz,
        **_common(opts),
    )


def build_conditional_discriminator(
    opts: R3GANDiscriminatorOptions, size: int, channels: int, num_classes: int
) -> nn.Module:
    check(opts, size, channels)
    return R3GANConditionalDiscriminator(
        tuple(opts.widths), num_classes, channels=channels, **_common(opts)
    )
