"""The architecture of a snapshot's networks (:func:`describe`): the constructor's arguments,
with the defaults of stylegan2-ada-pytorch's ``training/networks.py`` for what they leave out and
the dimensions read from the attributes or the weights."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor

from gankit.compat.stylegan2_pickle.snapshot import Snapshot, SnapshotNetwork
from gankit.compat.stylegan2_pickle.unpickler import SnapshotError

GENERATOR_DEFAULTS: dict[str, Any] = {
    "mapping_kwargs": {"num_layers": 8},
    "synthesis_kwargs": {
        "channel_base": 32768,
        "channel_max": 512,
        "architecture": "skip",
        "num_fp16_res": 0,
        "conv_clamp": None,
    },
}
"""training/networks.py's defaults for ``Generator``: MappingNetwork, SynthesisNetwork and
SynthesisBlock keyword arguments."""

DISCRIMINATOR_DEFAULTS: dict[str, Any] = {
    "architecture": "resnet",
    "channel_base": 32768,
    "channel_max": 512,
    "num_fp16_res": 0,
    "conv_clamp": None,
    "mbstd_group_size": 4,
    "mbstd_num_channels": 1,
}
"""training/networks.py's defaults for ``Discriminator`` (the last two: DiscriminatorEpilogue)."""


def _merged(defaults: Mapping[str, Any], given: Any) -> dict[str, Any]:
    out = dict(defaults)
    if isinstance(given, dict):
        out.update(given)
    return out


def _iter_blocks(state: Mapping[str, Tensor], prefix: str) -> Iterator[int]:
    for key in state:
        head = key[len(prefix) :].split(".", 1)[0] if key.startswith(prefix) else ""
        if head.startswith("b") and head[1:].isdigit():
            yield int(head[1:])


def _inferred_generator(net: SnapshotNetwork) -> dict[str, Any]:
    """z_dim, w_dim, c_dim, img_resolution, img_channels from the weights, where the pickle lacks
    the constructor's arguments and the attributes (training/networks.py's layer shapes)."""
    s = net.state
    out: dict[str, Any] = {}
    embed = s.get("mapping.embed.weight")
    out["c_dim"] = int(embed.shape[1]) if embed is not None else 0
    if "mapping.fc0.weight" in s:
        embed_features = int(embed.shape[0]) if embed is not None else 0
        out["z_dim"] = int(s["mapping.fc0.weight"].shape[1]) - embed_features
    if "mapping.w_avg" in s:
        out["w_dim"] = int(s["mapping.w_avg"].shape[0])
    resolutions = sorted(set(_iter_blocks(s, "synthesis.")))
    if resolutions:
        top = resolutions[-1]
        out["img_resolution"] = top
        torgb = s.get(f"synthesis.b{top}.torgb.weight")
        if torgb is not None:
            out["img_channels"] = int(torgb.shape[0])
    return out


def _inferred_discriminator(net: SnapshotNetwork) -> dict[str, Any]:
    s = net.state
    embed = s.get("mapping.embed.weight")
    out: dict[str, Any] = {"c_dim": int(embed.shape[1]) if embed is not None else 0}
    resolutions = sorted(set(_iter_blocks(s, "")) - {4})
    if resolutions:
        top = resolutions[-1]
        out["img_resolution"] = top
        fromrgb = s.get(f"b{top}.fromrgb.weight")
        if fromrgb is not None:
            out["img_channels"] = int(fromrgb.shape[1])
    return out


def _required(
    name: str, sources: tuple[Mapping[str, Any], ...], key: str, snapshot: Snapshot
) -> Any:
    for source in sources:
        if source.get(key) is not None:
            return source[key]
    raise SnapshotError(
        f"{snapshot.path}: its {name} has no {key} (not in its init_kwargs, attributes or weights)"
    )


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """The architecture of a snapshot's networks, as plain data, to build an equivalent network.

    ``{"G": {...}, "D": {...}}`` (``D`` only when the file has one). ``G`` (from ``G_ema``, else
    ``G``): ``class_name``, ``z_dim``, ``w_dim``, ``c_dim``, ``img_resolution``, ``img_channels``,
    ``mapping_kwargs`` (at least ``num_layers``) and ``synthesis_kwargs`` (at least
    ``channel_base``, ``channel_max``, ``architecture``, ``num_fp16_res``, ``conv_clamp``); ``D``:
    ``class_name``, ``c_dim``, ``img_resolution``, ``img_channels``, ``architecture``,
    ``channel_base``, ``channel_max``, ``num_fp16_res``, ``conv_clamp``, ``mbstd_group_size``,
    ``mbstd_num_channels``, and the raw ``block_kwargs``/``mapping_kwargs``/``epilogue_kwargs``.
    What the constructor's arguments leave out takes the defaults of training/networks.py;
    the dimensions, which have no default, come from the attributes or the weights.
    """
    out: dict[str, Any] = {}
    g = snapshot.generator
    kw = g.init_kwargs
    sources = (kw, g.attributes, _inferred_generator(g))
    out["G"] = {
        "class_name": g.class_name,
        **{
            key: _required("generator", sources, key, snapshot)
            for key in ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels")
        },
        "mapping_kwargs": _merged(GENERATOR_DEFAULTS["mapping_kwargs"], kw.get("mapping_kwargs")),
        "synthesis_kwargs": _merged(
            GENERATOR_DEFAULTS["synthesis_kwargs"], kw.get("synthesis_kwargs")
        ),
    }
    d = snapshot.D
    if d is not None:
        kw = d.init_kwargs
        epilogue = kw.get("epilogue_kwargs") if isinstance(kw.get("epilogue_kwargs"), dict) else {}
        sources = (kw, d.attributes, _inferred_discriminator(d))
        flat = {k: v for k, v in kw.items() if k in DISCRIMINATOR_DEFAULTS}
        flat.update({k: v for k, v in epilogue.items() if k.startswith("mbstd_")})
        out["D"] = {
            "class_name": d.class_name,
            **{
                key: _required("discriminator", sources, key, snapshot)
                for key in ("c_dim", "img_resolution", "img_channels")
            },
            **_merged(DISCRIMINATOR_DEFAULTS, flat),
            **{
                k: dict(kw[k]) if isinstance(kw.get(k), dict) else {}
                for k in ("block_kwargs", "mapping_kwargs", "epilogue_kwargs")
            },
        }
    return out
