"""Virtual batch normalisation (Salimans et al. 2016, sec. 3.4).

Batch normalisation makes a generator's output for one noise vector depend on the other noise
vectors of its batch. Virtual batch normalisation normalises each sample instead with the
statistics of a *reference batch*, fixed once at the start of training, joined with the sample
itself: for a sample x and reference statistics μ_r = E_r[h], ν_r = E_r[h²] over n reference
samples (and positions),

    μ = (h(x) + n·μ_r) / (n + 1),   σ² = (h(x)² + n·ν_r) / (n + 1) − μ²,

per channel; the reference batch itself is normalised with its own statistics. The reference
statistics are recomputed with the current weights at every forward pass (one extra forward of
the reference batch, the price the paper names), so gradients flow through them too.

:class:`VirtualBatchNormNet` wraps a network holding :class:`VirtualBatchNorm` layers and the
reference input (a buffer, so it is saved in checkpoints); :func:`convert_batchnorm` swaps a
network's BatchNorm layers for virtual ones.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VirtualBatchNorm(nn.Module):
    """Per-channel normalisation by a reference batch joined with each sample; N×C or N×C×H×W."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.collecting = False
        self._ref: tuple[Tensor, Tensor, int] | None = None

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        return (1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: Tensor) -> Tensor:
        dims = [0, *range(2, x.dim())]
        shape = self._shape(x)
        if self.collecting:
            mean, mean_sq = x.mean(dims), (x * x).mean(dims)
            self._ref = (mean, mean_sq, x.numel() // x.shape[1])
            var = mean_sq - mean * mean
            out = (x - mean.view(shape)) / (var.view(shape) + self.eps).sqrt()
        else:
            if self._ref is None:
                raise RuntimeError(
                    "VirtualBatchNorm has no reference statistics: run it inside VirtualBatchNormNet"
                )
            ref_mean, ref_sq, n = self._ref
            # Positions of one sample count like reference positions: the sample's own
            # per-channel statistics over H×W join the reference's with weight 1/(n+1) each.
            if x.dim() > 2:
                own_mean = x.mean(dims[1:], keepdim=True)
                own_sq = (x * x).mean(dims[1:], keepdim=True)
            else:
                own_mean, own_sq = x, x * x
            w = 1.0 / (n / x[0, 0].numel() + 1.0) if x.dim() > 2 else 1.0 / (n + 1.0)
            mean = w * own_mean + (1 - w) * ref_mean.view(shape)
            var = w * own_sq + (1 - w) * ref_sq.view(shape) - mean * mean
            out = (x - mean) / (var + self.eps).sqrt()
        return out * self.weight.view(shape) + self.bias.view(shape)


class VirtualBatchNormNet(nn.Module):
    """``net`` with its :class:`VirtualBatchNorm` layers fed by the fixed ``reference`` input."""

    def __init__(self, net: nn.Module, reference: Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("reference", reference.detach().clone())
        self._layers = [m for m in net.modules() if isinstance(m, VirtualBatchNorm)]
        if not self._layers:
            raise ValueError(f"{type(net).__name__} holds no VirtualBatchNorm layer")

    def forward(self, x: Tensor) -> Tensor:
        for layer in self._layers:
            layer.collecting = True
        try:
            self.net(self.reference)
        finally:
            for layer in self._layers:
                layer.collecting = False
        return self.net(x)


def convert_batchnorm(net: nn.Module) -> nn.Module:
    """``net`` with every BatchNorm1d/2d replaced by a :class:`VirtualBatchNorm` (in place)."""
    for name, child in net.named_children():
        if isinstance(child, nn.BatchNorm1d | nn.BatchNorm2d):
            vbn = VirtualBatchNorm(child.num_features, child.eps)
            if child.affine:
                with torch.no_grad():
                    vbn.weight.copy_(child.weight)
                    vbn.bias.copy_(child.bias)
            setattr(net, name, vbn)
        else:
            convert_batchnorm(child)
    return net
