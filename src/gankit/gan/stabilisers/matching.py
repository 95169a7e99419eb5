"""Feature matching (Salimans et al. 2016, sec. 3.1).

The generator is trained to match the mean of the discriminator's intermediate features on real
data, ‖E_x f(x) − E_z f(G(z))‖₂², instead of maximising D's output directly; f is the activation of
an intermediate layer of D (here: the input of its last layer, as in the paper's code).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.nn.utils import parametrize


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """‖mean(real features) − mean(fake features)‖², the features flattened per sample."""
    diff = real_features.flatten(1).mean(0).detach() - fake_features.flatten(1).mean(0)
    return (diff**2).sum()


def last_layer(net: nn.Module) -> nn.Module:
    """The last module with parameters, in registration order (normally the output layer)."""
    layers = [
        m
        for m in net.modules()
        if not isinstance(m, parametrize.ParametrizationList)  # spectral/weight norm's holder
        and (next(m.parameters(recurse=False), None) is not None or parametrize.is_parametrized(m))
    ]
    if not layers:
        raise ValueError(f"{type(net).__name__} has no layer with parameters")
    return layers[-1]


def penultimate(
    net: Callable[[Tensor], Tensor], x: Tensor, layer: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """``(net(x), the input of layer)``: the output and the features feature matching uses.

    ``layer`` defaults to ``net``'s last layer with parameters (``net`` must then be a module).
    """
    if layer is None:
        if not isinstance(net, nn.Module):
            raise TypeError("penultimate: pass layer= when net is not a module")
        layer = last_layer(net)
    captured: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    try:
        out = net(x)
    finally:
        handle.remove()
    return out, captured[-1]
