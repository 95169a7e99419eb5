"""Normalisation layers and weight initialisation of the image-to-image networks.

As pytorch-CycleGAN-and-pix2pix (Zhu et al. 2017) defines them: ``instance`` is
``InstanceNorm2d(affine=False, track_running_stats=False)`` (no parameters, statistics of each
image), ``batch`` is ``BatchNorm2d`` with affine parameters and running statistics, ``none`` is the
identity. Convolutions carry a bias only where no affine norm follows them (instance or none).
Initialisation ``normal`` / ``xavier`` / ``kaiming`` / ``orthogonal`` with gain 0.02 (the
reference's ``init_weights``); batch-norm scales N(1, gain), biases 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import nn

Norm = Literal["instance", "batch", "none"]
Init = Literal["normal", "xavier", "kaiming", "orthogonal"]


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """A constructor ``channels -> module`` for the norm called ``kind``."""
    if kind == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if kind == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True)
    return lambda c: nn.Identity()


def conv_bias(kind: str) -> bool:
    """Whether a conv followed by this norm needs its own bias (not when batch norm has one)."""
    return kind != "batch"


def init_translation_weights(
    net: nn.Module, scheme: str = "normal", gain: float = 0.02
) -> nn.Module:
    """Initialise convolutions and linear layers as the reference's ``init_weights``; return net."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            if scheme == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net
