"""Settings derived from the data and the machine, as stylegan2-ada-pytorch's ``--cfg=auto``
(train.py ``cfg_specs['auto']``): a recipe names its rule with ``derive: NAME`` and the rule fills
every key the recipe leaves unset *and* the command line does not set, from ``data.image_size``
and the number of processes (``WORLD_SIZE`` under torchrun)."""

from __future__ import annotations

import os
from collections.abc import Callable

from gankit.errors import ConfigError


def _get(data: dict, dotted: str):
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def stylegan2_auto(res: int, gpus: int) -> dict[str, object]:
    """stylegan2-ada's ``auto`` config for ``res``² images on ``gpus`` GPUs: batch
    max(min(gpus·min(4096 // res, 32), 64), gpus), minibatch-stddev group min(batch/gpus, 4),
    fmaps 1 at ≥ 512² else 0.5, lr 0.002 at 1024² else 0.0025, R1 γ = 0.0002·res²/batch,
    EMA half-life batch·10/32 kimg with ramp 0.05, a 2-layer mapping network."""
    batch = max(min(gpus * min(4096 // res, 32), 64), gpus)
    fmaps = 1.0 if res >= 512 else 0.5
    lr = 0.002 if res >= 1024 else 0.0025
    return {
        "train.batch_size": batch,
        "nets.D.mbstd_group": min(batch // gpus, 4),
        "nets.G.fmaps": fmaps,
        "nets.D.fmaps": fmaps,
        "nets.G.mapping_layers": 2,
        "optim.G.lr": lr,
        "optim.D.lr": lr,
        "gan.r1": 0.0002 * res * res / batch,
        "gan.ema_kimg": batch * 10 / 32,
        "gan.ema_rampup": 0.05,
    }


DERIVERS: dict[str, Callable[[int, int], dict[str, object]]] = {"stylegan2-auto": stylegan2_auto}


def derive(data: dict, recipe: dict, given: dict) -> dict:
    """``data`` (recipe ← overrides, with its ``derive`` key removed) completed by the rule it
    names for every key that neither the ``recipe`` nor ``given`` (the command line) sets."""
    name = data.pop("derive", None)
    if name is None:
        return data
    if name not in DERIVERS:
        raise ConfigError(f"derive: {name!r} is unknown: choose one of {', '.join(DERIVERS)}")
    res = _get(data, "data.image_size")
    if not isinstance(res, int) or res < 4:
        raise ConfigError(f"derive: {name} needs data.image_size, e.g. data.image_size=256")
    gpus = int(os.environ.get("WORLD_SIZE", "1"))
    for key, value in DERIVERS[name](res, gpus).items():
        if _get(given, key) is None and _get(recipe, key) is None:
            _set(data, key, value)
    return data
