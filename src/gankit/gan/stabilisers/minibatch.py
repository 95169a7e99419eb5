"""Layers that let the discriminator look at a whole minibatch, against mode collapse.

A discriminator that judges one sample at a time cannot see that all the generator's samples are
alike; both layers below append to each sample's features a statistic of its batch, so a collapsed
batch looks different from a real one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.gan.stabilisers.matching import last_layer, penultimate


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, sec. 3.2).

    Features f(x_i) ∈ R^A are multiplied by a tensor T ∈ R^{A×B×C} to give M_i ∈ R^{B×C}; for each
    of the B kernels, c_b(x_i, x_j) = exp(−‖M_{i,b} − M_{j,b}‖₁) and o(x_i)_b = Σ_{j≠i} c_b(x_i, x_j).
    The output is [f(x_i), o(x_i)] ∈ R^{A+B}. Self-pairs are excluded (each would add exp(0) = 1 to
    every sample alike). Compute it on real and generated batches separately, as the paper does;
    the paper's CIFAR-10 scripts use B = 100 kernels of C = 5 dimensions. Inputs of more than two
    dimensions are flattened first.
    """

    def __init__(self, in_features: int, kernels: int = 100, kernel_dim: int = 5) -> None:
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.1)
        self.out_features = in_features + kernels

    def forward(self, f: Tensor) -> Tensor:
        f = f.flatten(1)
        m = (f @ self.T).view(-1, self.kernels, self.kernel_dim).transpose(0, 1)  # (B, N, C)
        # cdist does not materialise the (N, N, B, C) differences: 40x faster at N = 512, B = 50
        l1 = torch.cdist(m, m, p=1)  # (B, N, N)
        o = torch.exp(-l1).sum(2) - 1.0  # minus the self-pair, exp(0) = 1
        return torch.cat([f, o.t()], dim=1)


class MinibatchStdDev(nn.Module):
    """The minibatch-standard-deviation layer (Karras et al. 2018, sec. 3).

    The batch is split into groups of ``group_size`` samples (the whole batch if it does not
    divide); the standard deviation of every feature (and position) over each group is averaged
    to one number, appended to each sample of its group as one more channel (images, N×C×H×W →
    N×(C+1)×H×W) or feature (vectors, N×F → N×(F+1)).
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        super().__init__()
        self.group_size, self.eps = group_size, eps

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        g = self.group_size if n % self.group_size == 0 else n
        y = x.float().view(g, -1, *x.shape[1:])  # (G, N/G, ...): sample k of every group
        std = (y.var(dim=0, unbiased=False) + self.eps).sqrt()  # (N/G, ...)
        stat = std.flatten(1).mean(1).to(x.dtype)  # one number per group
        stat = stat.repeat(g)  # back to (N,), matching the view above
        extra = stat.view(n, 1, *([1] * (x.dim() - 2))).expand(n, 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)


class BatchAwareDiscriminator(nn.Module):
    """Any discriminator with a minibatch layer before a new output layer.

    The features are the input of ``base``'s last layer (flattened, as feature matching takes
    them); ``layer`` (:class:`MinibatchDiscrimination` or :class:`MinibatchStdDev`) appends its batch
    statistic and a new linear layer maps the result to one logit. ``base``'s own last layer is
    run but no longer used (it gets no gradient).
    """

    def __init__(self, base: nn.Module, layer: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.base, self.layer = base, layer
        self._last = last_layer(base)
        width = (
            layer.out_features if isinstance(layer, MinibatchDiscrimination) else feature_dim + 1
        )
        self.head = nn.Linear(width, 1)

    def forward(self, x: Tensor) -> Tensor:
        _, feats = penultimate(self.base, x, self._last)
        return self.head(self.layer(feats.flatten(1))).view(-1)
