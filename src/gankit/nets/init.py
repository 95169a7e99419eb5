"""Weight initialisation schemes."""

from __future__ import annotations

from torch import nn


def raw_weight(m: nn.Module) -> nn.Parameter:
    """The trained weight tensor of a layer: under ``parametrizations.spectral_norm`` (or any
    parametrization) the original, not the recomputed ``m.weight``; under the older
    ``nn.utils.spectral_norm``, ``weight_orig``."""
    if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
        return m.parametrizations.weight.original
    return getattr(m, "weight_orig", m.weight)


def init_weights(net: nn.Module, scheme: str = "normal02") -> nn.Module:
    """Initialise ``net`` in place and return it.

    ``normal02``: conv/linear weights N(0, 0.02), norm scales N(1, 0.02), biases 0 (Radford et al.
    2015, section 4). ``xavier``: Xavier-uniform weights, zero biases (the cs231n assignment).
    ``default``: leave PyTorch's own initialisation.
    """
    if scheme == "default":
        return net
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            weight = raw_weight(m)
            if scheme == "normal02":
                nn.init.normal_(weight, 0.0, 0.02)
            else:
                nn.init.xavier_uniform_(weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return net
