"""The fully connected pair of the semi-supervised GAN on MNIST (Salimans et al. 2016).

Sizes follow the paper's MNIST code (openai/improved-gan, ``train_mnist_feature_matching.py``):

- generator: noise (100) → 500 → 500 → C·H·W, batch norm and softplus after each hidden layer,
  a weight-normalised output layer; tanh here because gankit's images live in [-1, 1];
- discriminator (``classifier`` kind, K logits): Gaussian noise on its input (std 0.3) and after
  every hidden layer (std 0.5), weight-normalised layers of 1000, 500, 250, 250, 250 units with
  ReLU, then K logits. ``features(x)`` is the last hidden layer, which feature matching uses.

The noise layers are active in training mode only, so ``eval()`` gives a deterministic classifier.
Weight normalisation (Salimans & Kingma 2016) is :class:`WNLinear`: ``W = s · V / ‖V‖`` per output
unit. As in the paper's code (``nn.DenseLayer``, ``train_scale=False``) the scale ``s`` of D's hidden
layers is set once by the data-dependent initialisation and then held fixed (a buffer), so D cannot
grow its activations until the fixed-std noise layers stop mattering; only the output layer and
G's output layer train their scale. Images here live in [-1, 1], twice the range of the paper's
[0, 1], so the input noise is 0.6 (the paper's 0.3 on [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.errors import ConfigError
from gankit.nets.base import GANNetOptions, NetOptions, initialised


class GaussianNoise(nn.Module):
    """Adds N(0, std²) noise in training mode; the identity in eval mode."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.std > 0:
            return x + self.std * torch.randn_like(x)
        return x

    def extra_repr(self) -> str:
        return f"std={self.std}"


class WNLinear(nn.Module):
    """A weight-normalised linear layer ``y = s · (V x) / ‖V‖_row + b``.

    ``train_scale=False`` keeps ``s`` as a buffer: it changes only through
    :meth:`SsganDiscriminator.init_from_data`.
    """

    def __init__(self, n_in: int, n_out: int, train_scale: bool = True) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.randn(n_out, n_in) * 0.1)  # the paper code's N(0, 0.1²)
        self.bias = nn.Parameter(torch.zeros(n_out))
        scale = torch.ones(n_out)
        if train_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)

    @property
    def weight(self) -> Tensor:
        return self.v * (self.scale / self.v.norm(dim=1).clamp_min(1e-6))[:, None]

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        trained = isinstance(self.scale, nn.Parameter)
        return f"{self.v.shape[1]}, {self.v.shape[0]}, train_scale={trained}"


def _linear(n_in: int, n_out: int, normalised: bool, train_scale: bool = True) -> nn.Module:
    return WNLinear(n_in, n_out, train_scale) if normalised else nn.Linear(n_in, n_out)


class SsganDiscriminator(nn.Module):
    """Images → K class logits, with Gaussian noise layers and weight-normalised linear layers."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        num_classes: int,
        hidden: tuple[int, ...] = (1000, 500, 250, 250, 250),
        input_noise: float = 0.6,
        hidden_noise: float = 0.5,
        normalised: bool = True,
        train_scale: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]
        width = channels * image_size * image_size
        for h in hidden:
            layer = _linear(width, h, normalised, train_scale)
            layers += [layer, nn.ReLU(), GaussianNoise(hidden_noise)]
            width = h
        self.body = nn.Sequential(*layers[:-1])  # features: the last hidden layer, before noise
        self.noise = layers[-1]
        self.head = _linear(width, num_classes, normalised)
        self.num_features = width

    @torch.no_grad()
    def init_from_data(self, x: Tensor) -> None:
        """Data-dependent initialisation (Salimans & Kingma 2016, sec. 3): scale and shift every
        linear layer so that its outputs on the batch ``x`` have zero mean and unit variance. The
        noise layers act as in training, as in the paper's code.

        Without it the default initialisation shrinks the activations layer by layer until the
        fixed-std noise layers drown them, and D learns from its 100 labels very slowly.
        """
        h = x.flatten(1)
        for layer in [*self.body, self.noise, self.head]:
            if isinstance(layer, WNLinear | nn.Linear):
                t = layer(h)
                mean, std = t.mean(0), t.std(0).clamp_min(1e-6)
                if isinstance(layer, WNLinear):  # weight = s · v / ‖v‖: rescale s
                    layer.scale.div_(std)
                else:
                    layer.weight.div_(std[:, None])
                layer.bias.sub_(mean).div_(std)
            h = layer(h)

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations, ``(N, hidden[-1])``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.noise(self.features(x)))


class SsganGenerator(nn.Module):
    """noise → (Linear, BatchNorm, softplus) × len(hidden) → weight-normalised Linear → tanh."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        nz: int = 100,
        hidden: tuple[int, ...] = (500, 500),
    ) -> None:
        super().__init__()
        self.nz, self.shape = nz, (channels, image_size, image_size)
        layers: list[nn.Module] = []
        width = nz
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), nn.Softplus()]
            width = h
        layers += [_linear(width, channels * image_size * image_size, True), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.flatten(1)).view(z.shape[0], *self.shape)


@dataclass
class SsganGeneratorOptions(GANNetOptions):
    """``nets.G`` of ``arch: ssgan-mlp``."""

    nz: int = 100
    hidden: tuple[int, ...] = (500, 500)
    init: Literal["normal02", "xavier", "default"] = "default"
    """The paper's generator keeps the framework's default initialisation."""


@dataclass
class SsganDiscriminatorOptions(NetOptions):
    """``nets.D`` of ``arch: ssgan-mlp`` (a classifier with K logits)."""

    hidden: tuple[int, ...] = field(default_factory=lambda: (1000, 500, 250, 250, 250))
    input_noise: float = 0.6
    """Std of the Gaussian noise added to D's input during training (the paper's 0.3 on [0, 1]
    images is 0.6 on gankit's [-1, 1])."""
    hidden_noise: float = 0.5
    """Std of the Gaussian noise added after every hidden layer during training."""
    weight_norm: bool = True
    train_scale: bool = False
    """Train the weight-norm scale of the hidden layers (the paper's code holds it fixed after the
    data-dependent initialisation; the output layer's scale always trains)."""


def check(
    opts: SsganGeneratorOptions | SsganDiscriminatorOptions, size: int, channels: int
) -> None:
    if not opts.hidden or any(h <= 0 for h in opts.hidden) or getattr(opts, "nz", 1) <= 0:
        raise ConfigError(
            f"ssgan-mlp: hidden={list(opts.hidden)} needs one or more positive widths (and nz > 0)"
        )
    if min(getattr(opts, "input_noise", 0), getattr(opts, "hidden_noise", 0)) < 0:
        raise ConfigError("ssgan-mlp: input_noise and hidden_noise must be >= 0")


def build_generator(opts: SsganGeneratorOptions, size: int, channels: int) -> nn.Module:
    return initialised(SsganGenerator(size, channels, opts.nz, tuple(opts.hidden)), opts)


def build_discriminator(
    opts: SsganDiscriminatorOptions, size: int, channels: int, num_classes: int
) -> nn.Module:
    return SsganDiscriminator(
        size,
        channels,
        num_classes,
        tuple(opts.hidden),
        opts.input_noise,
        opts.hidden_noise,
        opts.weight_norm,
        opts.train_scale,
    )
