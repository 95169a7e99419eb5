"""Unrolled GANs (Metz et al. 2017).

The generator's loss is taken against the discriminator as it will be after k more optimiser steps,
f_K(θ_G, θ_D) = f(θ_G, θ_D^K(θ_G, θ_D)), and differentiated *through* those k steps (eq. 5–7 of the
paper): the generator sees how D would react to a move and so is discouraged from hopping between
modes. The discriminator itself still takes only its ordinary step; the unrolled parameters are
discarded after the generator's update.

:func:`unrolled_parameters` runs the k steps functionally (``torch.func.functional_call``) with
``create_graph=True``, as differentiable copies of Adam or SGD that start from the real
optimiser's state (moments and step count), so the look-ahead is the step D would actually take.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError


def _adam_state(opt: torch.optim.Optimizer, p: Tensor) -> tuple[Tensor, Tensor, float]:
    st = opt.state.get(p, {})
    if not st:
        return torch.zeros_like(p), torch.zeros_like(p), 0.0
    return st["exp_avg"].detach(), st["exp_avg_sq"].detach(), float(st["step"])


def unrolled_parameters(
    net: nn.Module,
    loss_at: Callable[[dict[str, Tensor], int], Tensor],
    k: int,
    optimizer: torch.optim.Optimizer,
) -> dict[str, Tensor]:
    """``net``'s parameters after ``k`` differentiable steps of ``optimizer`` on ``loss_at``.

    ``loss_at(params, i)`` is D's loss at unrolling step ``i`` with parameters ``params`` (use
    ``torch.func.functional_call(net, params, ...)``); if it depends on the generator's output,
    the returned parameters depend on the generator's parameters. With ``k = 0`` the result is
    a detached copy of the current parameters, so the generator's loss equals the plain one.
    Supports Adam (without amsgrad/weight decay) and SGD (without momentum), one parameter group.
    """
    if len(optimizer.param_groups) != 1:
        raise ConfigError("unrolling needs an optimizer with a single parameter group")
    group = optimizer.param_groups[0]
    kind = type(optimizer).__name__
    if kind == "Adam" and (group.get("amsgrad") or group.get("weight_decay")):
        raise ConfigError("unrolling supports Adam without amsgrad and weight decay")
    if kind == "SGD" and (group.get("momentum") or group.get("weight_decay")):
        raise ConfigError("unrolling supports SGD without momentum and weight decay")
    if kind not in ("Adam", "SGD"):
        raise ConfigError(f"unrolling supports the Adam and SGD optimizers, not {kind}")

    live = dict(net.named_parameters())
    names = list(live)
    params = {n: live[n].detach().requires_grad_(True) for n in names}
    lr = float(group["lr"])
    if kind == "Adam":
        b1, b2 = group["betas"]
        eps = group["eps"]
        moments = {n: _adam_state(optimizer, live[n]) for n in names}
    for i in range(k):
        loss = loss_at(params, i)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        new = {}
        for (n, p), g in zip(params.items(), grads, strict=True):
            if kind == "SGD":
                new[n] = p - lr * g
                continue
            m, v, t = moments[n]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            t = t + 1
            moments[n] = (m, v, t)
            m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
            # sqrt of a value that may be exactly 0 has an infinite derivative: add eps inside too
            new[n] = p - lr * m_hat / ((v_hat + 1e-16).sqrt() + eps)
        params = new
    return params
