"""Stanford CS231n's GAN assignment, name for name, over gankit's own nets and objectives.

The assignment (assignment 3, ``GANs-PyTorch.ipynb`` with ``cs231n/gan_pytorch.py``) trains a
vanilla GAN, a least-squares GAN and a small DCGAN on MNIST. Each function here has the course's
name, arguments and tensor shapes, and delegates to gankit:

=========================  ====================================================================
course                     gankit
=========================  ====================================================================
``sample_noise``           U[-1, 1) noise, as ``gan.noise=uniform``
``discriminator``          ``gankit.nets.mlp.MLPDiscriminator`` (784-256-256-1, 267,009 params)
``generator``              ``gankit.nets.mlp.MLPGenerator`` (noise-1024-1024-784)
``discriminator_loss``     ``gankit.gan.objectives.bce_d_loss``
``generator_loss``         ``gankit.gan.objectives.non_saturating_g_loss``
``ls_discriminator_loss``  ``gankit.gan.objectives.lsgan_d_loss``
``ls_generator_loss``      ``gankit.gan.objectives.lsgan_g_loss``
``build_dc_classifier``    ``gankit.nets.mnist_dc.MnistDCDiscriminator`` (1,102,721 params)
``build_dc_generator``     ``gankit.nets.mnist_dc.MnistDCGenerator``
``get_optimizer``          ``gankit.tasks.gan.make_optimizer``: Adam 1e-3, betas (0.5, 0.999)
=========================  ====================================================================

The course's training loop, ``run_a_gan``, is gankit's loop with the recipes ``cs231n-gan``,
``cs231n-lsgan`` and ``cs231n-dcgan`` (see docs/guides/cs231n.md).

With the same ``seed`` the nets start from exactly the weights the course's ``nn.Sequential``
versions get: gankit's nets create the same layers in the same order, with PyTorch's default
initialisation, as the course's builders do. The course applies ``initialize_weights`` (below) to
its DCGAN pair only, after building them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.config import OptimConfig
from gankit.gan import objectives
from gankit.nets import count_parameters
from gankit.nets.mlp import MLPDiscriminator, MLPGenerator
from gankit.nets.mnist_dc import MnistDCDiscriminator, MnistDCGenerator
from gankit.tasks.base import make_optimizer

__all__ = [
    "NOISE_DIM",
    "CourseDiscriminator",
    "CourseGenerator",
    "bce_loss",
    "build_dc_classifier",
    "build_dc_generator",
    "count_params",
    "deprocess_img",
    "discriminator",
    "discriminator_loss",
    "generator",
    "generator_loss",
    "get_optimizer",
    "initialize_weights",
    "ls_discriminator_loss",
    "ls_generator_loss",
    "preprocess_img",
    "sample_noise",
]

NOISE_DIM = 96
"""The course's noise dimension."""
IMAGE_SHAPE = (1, 28, 28)

Scores = Tensor | np.ndarray
"""Discriminator outputs, (N,) or (N, 1): a tensor, or a NumPy array as the course's checks use."""

count_params: Callable[[nn.Module], int] = count_parameters
"""The course's ``count_params(model)``: the number of parameters."""


# --- shapes ------------------------------------------------------------------------------------


class CourseDiscriminator(nn.Module):
    """A gankit discriminator seen with the course's shapes.

    Takes images flat (N, 784) or as (N, 1, 28, 28) — the course feeds both — and returns logits
    (N, 1), as the course's ``nn.Sequential`` ending in ``nn.Linear(..., 1)`` does. The gankit net
    is ``.net``; its parameters are the only parameters.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(-1, *IMAGE_SHAPE)).unsqueeze(1)


class CourseGenerator(nn.Module):
    """A gankit generator seen with the course's shapes: noise (N, dim) → flat images (N, 784)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).flatten(1)


def _seed(seed: int | None) -> None:
    if seed is not None:
        torch.manual_seed(seed)  # the course seeds the global RNG before building


# --- noise, networks, optimizer ---------------------------------------------------------------


def sample_noise(batch_size: int, dim: int, seed: int | None = None) -> Tensor:
    """Uniform noise in [-1, 1) of shape (batch_size, dim) (cs231n ``sample_noise``)."""
    _seed(seed)
    return torch.rand(batch_size, dim) * 2 - 1


def discriminator(seed: int | None = None) -> CourseDiscriminator:
    """FC 784-256 → LeakyReLU 0.01 → FC 256-256 → LeakyReLU 0.01 → FC 256-1, logits (N, 1)
    (cs231n ``discriminator``; 267,009 parameters)."""
    _seed(seed)
    return CourseDiscriminator(MLPDiscriminator(28, hidden=256, channels=1))


def generator(noise_dim: int = NOISE_DIM, seed: int | None = None) -> CourseGenerator:
    """FC noise-1024 → ReLU → FC 1024-1024 → ReLU → FC 1024-784 → tanh, images (N, 784)
    (cs231n ``generator``; 1,858,320 parameters with noise_dim 4)."""
    _seed(seed)
    return CourseGenerator(MLPGenerator(28, nz=noise_dim, hidden=1024, channels=1))


def build_dc_classifier(batch_size: int = 128) -> CourseDiscriminator:
    """The DCGAN discriminator, logits (N, 1) (cs231n ``build_dc_classifier``; 1,102,721 params).

    The course passes ``batch_size`` to its ``Unflatten``; here any batch size works and the
    argument is accepted for the course's call signature.
    """
    del batch_size
    return CourseDiscriminator(MnistDCDiscriminator(channels=1))


def build_dc_generator(noise_dim: int = NOISE_DIM) -> CourseGenerator:
    """The DCGAN generator, images (N, 784) (cs231n ``build_dc_generator``; 6,580,801 parameters
    with noise_dim 4)."""
    return CourseGenerator(MnistDCGenerator(nz=noise_dim, channels=1))


def initialize_weights(m: nn.Module) -> None:
    """Xavier-uniform weights for linear and transposed-conv layers, other parameters untouched
    (cs231n ``initialize_weights``; use as ``net.apply(initialize_weights)``)."""
    if isinstance(m, nn.Linear | nn.ConvTranspose2d):
        nn.init.xavier_uniform_(m.weight)


def get_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """Adam with lr 1e-3, betas (0.5, 0.999) (cs231n ``get_optimizer``)."""
    return make_optimizer(model.parameters(), OptimConfig(name="adam", lr=1e-3, betas=(0.5, 0.999)))


def preprocess_img(x: Tensor) -> Tensor:
    """[0, 1] → [-1, 1] (cs231n ``preprocess_img``)."""
    return 2 * x - 1.0


def deprocess_img(x: Tensor) -> Tensor:
    """[-1, 1] → [0, 1] (cs231n ``deprocess_img``)."""
    return (x + 1.0) / 2.0


# --- losses ----------------------------------------------------------------------------------


def _flat(x: Scores) -> Tensor:
    t = torch.as_tensor(x)  # a float64 array stays float64, so array checks are exact
    return (t if t.is_floating_point() else t.float()).reshape(-1)


def _apply(fn: Callable[..., Tensor], *scores: Scores) -> Tensor | float:
    """``fn`` on flattened scores; a Python float if any input is a NumPy array."""
    out = fn(*(_flat(s) for s in scores))
    return float(out) if any(isinstance(s, np.ndarray) for s in scores) else out


def bce_loss(input: Scores, target: Scores) -> Tensor | float:
    """Mean binary cross-entropy of logits ``input`` against ``target`` in [0, 1], computed
    stably as mean(max(x, 0) - x·t + log(1 + exp(-|x|))) (cs231n ``bce_loss``)."""
    return _apply(lambda x, t: F.binary_cross_entropy_with_logits(x, t.to(x.dtype)), input, target)


def discriminator_loss(logits_real: Scores, logits_fake: Scores) -> Tensor | float:
    """-E[log D(x)] - E[log(1 - D(G(z)))] on logits (cs231n ``discriminator_loss``)."""
    return _apply(objectives.bce_d_loss, logits_real, logits_fake)


def generator_loss(logits_fake: Scores) -> Tensor | float:
    """-E[log D(G(z))] on logits, the non-saturating loss (cs231n ``generator_loss``)."""
    return _apply(objectives.non_saturating_g_loss, logits_fake)


def ls_discriminator_loss(scores_real: Scores, scores_fake: Scores) -> Tensor | float:
    """½E[(D(x) - 1)²] + ½E[D(G(z))²] (cs231n ``ls_discriminator_loss``; Mao et al. 2017)."""
    return _apply(objectives.lsgan_d_loss, scores_real, scores_fake)


def ls_generator_loss(scores_fake: Scores) -> Tensor | float:
    """½E[(D(G(z)) - 1)²] (cs231n ``ls_generator_loss``; Mao et al. 2017)."""
    return _apply(objectives.lsgan_g_loss, scores_fake)
