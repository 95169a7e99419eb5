"""The reference translation networks as state-dict layouts and plain functional forwards.

Written from the published network definitions (pytorch-CycleGAN-and-pix2pix and CUT,
``models/networks.py``: ``ResnetGenerator``, ``ResnetBlock``, ``UnetGenerator``,
``UnetSkipConnectionBlock``, ``NLayerDiscriminator``, CUT's ``Downsample``/``Upsample``), not
from gankit's networks: each architecture is a list of layers, ``(kind, *arguments)`` at the
index the reference's ``nn.Sequential`` gives it, from which both the state dict (the
reference's key names and shapes, random values) and the forward (``torch.nn.functional`` on
those tensors, eval mode) are made. The test compares gankit's networks, loaded through
``gankit import``, with these.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

Layer = tuple
"""``("conv", c_in, c_out, k, stride, padding, bias)``, ``("convT", c_in, c_out, k, stride,
padding, output_padding, bias)``, ``("norm", c)``, ``("reflect", p)``, ``("relu",)``,
``("lrelu",)``, ``("tanh",)``, ``("dropout",)``, ``("down", c)`` / ``("up", c)`` (CUT's blurs),
``("block", layers)`` (a residual block: x + layers(x), its layers under ``conv_block.``),
``("unet", layers, outermost)`` (a U-Net block: its layers under ``model.``; the input
concatenated to the output unless outermost)."""


# --- architectures -----------------------------------------------------------------------------


def resnet(
    ngf: int,
    n_blocks: int,
    norm: str = "instance",
    channels: int = 3,
    dropout: bool = False,
    antialias: bool = False,
    antialias_up: bool = False,
) -> list[Layer]:
    """``ResnetGenerator(input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks)``, CUT's
    ``no_antialias=not antialias``, ``no_antialias_up=not antialias_up``."""
    bias = norm == "instance"
    layers: list[Layer] = [
        ("reflect", 3), ("conv", channels, ngf, 7, 1, 0, bias), ("norm", ngf), ("relu",),
    ]  # fmt: skip
    for i in range(2):
        c = ngf * 2**i
        if antialias:
            layers += [
                ("conv", c, 2 * c, 3, 1, 1, bias),
                ("norm", 2 * c),
                ("relu",),
                ("down", 2 * c),
            ]
        else:
            layers += [("conv", c, 2 * c, 3, 2, 1, bias), ("norm", 2 * c), ("relu",)]
    dim = 4 * ngf
    for _ in range(n_blocks):
        block: list[Layer] = [
            ("reflect", 1),
            ("conv", dim, dim, 3, 1, 0, bias),
            ("norm", dim),
            ("relu",),
        ]
        if dropout:
            block.append(("dropout",))
        block += [("reflect", 1), ("conv", dim, dim, 3, 1, 0, bias), ("norm", dim)]
        layers.append(("block", block))
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        if antialias_up:
            layers += [("up", c), ("conv", c, c // 2, 3, 1, 1, bias), ("norm", c // 2), ("relu",)]
        else:
            layers += [("convT", c, c // 2, 3, 2, 1, 1, bias), ("norm", c // 2), ("relu",)]
    layers += [("reflect", 3), ("conv", ngf, channels, 7, 1, 0, True), ("tanh",)]
    return layers


def _unet_block(
    outer: int,
    inner: int,
    bias: bool,
    sub: Layer | None = None,
    input_nc: int | None = None,
    outermost: bool = False,
    dropout: bool = False,
) -> Layer:
    """``UnetSkipConnectionBlock``: innermost when ``sub`` is None."""
    down = ("conv", input_nc or outer, inner, 4, 2, 1, bias)
    if outermost:
        layers = [down, sub, ("relu",), ("convT", 2 * inner, outer, 4, 2, 1, 0, True), ("tanh",)]
    elif sub is None:
        layers = [
            ("lrelu",),
            down,
            ("relu",),
            ("convT", inner, outer, 4, 2, 1, 0, bias),
            ("norm", outer),
        ]
    else:
        layers = [("lrelu",), down, ("norm", inner), sub, ("relu",),
                  ("convT", 2 * inner, outer, 4, 2, 1, 0, bias), ("norm", outer)]  # fmt: skip
        if dropout:
            layers.append(("dropout",))
    return ("unet", layers, outermost)


def unet(
    ngf: int, num_downs: int, norm: str = "batch", channels: int = 3, dropout: bool = True
) -> list[Layer]:
    """``UnetGenerator(input_nc, output_nc, num_downs, ngf, norm_layer, use_dropout)``: its one
    attribute ``model`` is the outermost block."""
    bias = norm == "instance"
    block = _unet_block(8 * ngf, 8 * ngf, bias)
    for _ in range(num_downs - 5):
        block = _unet_block(8 * ngf, 8 * ngf, bias, block, dropout=dropout)
    for k in (4, 2, 1):
        block = _unet_block(k * ngf, 2 * k * ngf, bias, block)
    return [_unet_block(channels, ngf, bias, block, channels, outermost=True)]


def patchgan(
    ndf: int, n_layers: int = 3, norm: str = "instance", channels: int = 3, antialias: bool = False
) -> list[Layer]:
    """``NLayerDiscriminator(input_nc, ndf, n_layers, norm_layer)`` (CUT's: ``no_antialias=not
    antialias``)."""
    bias = norm == "instance"
    s = 1 if antialias else 2
    layers: list[Layer] = [("conv", channels, ndf, 4, s, 1, True), ("lrelu",)]
    if antialias:
        layers.append(("down", ndf))
    mult = 1
    for n in range(1, n_layers):
        prev, mult = mult, min(2**n, 8)
        layers += [
            ("conv", ndf * prev, ndf * mult, 4, s, 1, bias),
            ("norm", ndf * mult),
            ("lrelu",),
        ]
        if antialias:
            layers.append(("down", ndf * mult))
    prev, mult = mult, min(2**n_layers, 8)
    layers += [("conv", ndf * prev, ndf * mult, 4, 1, 1, bias), ("norm", ndf * mult), ("lrelu",)]
    layers.append(("conv", ndf * mult, 1, 4, 1, 1, True))
    return layers


# --- state dicts -------------------------------------------------------------------------------


def _blur(taps: list[float], channels: int, scale: float = 1.0) -> Tensor:
    """CUT's ``get_filter``: the outer product of the taps over its sum, repeated per channel."""
    a = torch.tensor(taps, dtype=torch.float64)
    f = a[:, None] * a[None, :]
    return (f / f.sum() * scale).float()[None, None].repeat(channels, 1, 1, 1)


def state_dict(
    layers: list[Layer],
    norm: str,
    seed: int = 0,
    old_instance_stats: bool = False,
    prefix: str = "model.",
) -> OrderedDict[str, Tensor]:
    """Random weights under the reference's names for ``layers`` (an ``nn.Sequential`` called
    ``model``). ``old_instance_stats``: instance-norm layers carry ``running_mean``,
    ``running_var`` and ``num_batches_tracked``, as checkpoints of PyTorch 0.4 have."""
    gen = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, Tensor] = OrderedDict()

    def rand(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(*shape, generator=gen) * scale

    def walk(layers: list[Layer], prefix: str) -> None:
        for i, layer in enumerate(layers):
            p, kind = f"{prefix}{i}.", layer[0]
            if kind == "conv":
                _, cin, cout, k, _, _, bias = layer
                out[p + "weight"] = rand(cout, cin, k, k, scale=(cin * k * k) ** -0.5)
                if bias:
                    out[p + "bias"] = rand(cout, scale=0.1)
            elif kind == "convT":
                _, cin, cout, k, _, _, _, bias = layer
                out[p + "weight"] = rand(cin, cout, k, k, scale=(cin * k * k / 4) ** -0.5)
                if bias:
                    out[p + "bias"] = rand(cout, scale=0.1)
            elif kind == "norm" and norm == "batch":
                c = layer[1]
                out[p + "weight"] = 1 + rand(c, scale=0.1)
                out[p + "bias"] = rand(c, scale=0.1)
                out[p + "running_mean"] = rand(c, scale=0.1)
                out[p + "running_var"] = 0.5 + torch.rand(c, generator=gen)
                out[p + "num_batches_tracked"] = torch.tensor(1000)
            elif kind == "norm" and old_instance_stats:
                c = layer[1]
                out[p + "running_mean"] = torch.zeros(c)
                out[p + "running_var"] = torch.ones(c)
                out[p + "num_batches_tracked"] = torch.tensor(0)
            elif kind == "down":
                out[p + "filt"] = _blur([1.0, 2.0, 1.0], layer[1])
            elif kind == "up":
                out[p + "filt"] = _blur([1.0, 3.0, 3.0, 1.0], layer[1], scale=4.0)
            elif kind == "block":
                walk(layer[1], p + "conv_block.")
            elif kind == "unet":
                walk(layer[1], p + "model.")

    if layers[0][0] == "unet":  # UnetGenerator.model is the outermost block itself
        walk(layers[0][1], prefix + "model.")
    else:
        walk(layers, prefix)
    return out


def save(path: Path, state: dict[str, Tensor], legacy: bool = False) -> Path:
    """``torch.save(net.state_dict(), path)`` as the reference does (``legacy``: the pre-1.6
    format the 2017-2018 published models have)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


# --- forwards ----------------------------------------------------------------------------------


@torch.no_grad()
def forward(layers: list[Layer], state: dict[str, Tensor], x: Tensor, norm: str) -> Tensor:
    """The reference network's eval-mode forward, written with torch.nn.functional."""
    if layers[0][0] == "unet":
        return _run(layers[0][1], state, "model.model.", x, norm)
    return _run(layers, state, "model.", x, norm)


def _run(
    layers: list[Layer], state: dict[str, Tensor], prefix: str, x: Tensor, norm: str
) -> Tensor:
    for i, layer in enumerate(layers):
        p, kind = f"{prefix}{i}.", layer[0]
        if kind == "reflect":
            x = F.pad(x, [layer[1]] * 4, mode="reflect")
        elif kind == "conv":
            x = F.conv2d(x, state[p + "weight"], state.get(p + "bias"), layer[4], layer[5])
        elif kind == "convT":
            _, _, _, _, stride, padding, output_padding, _ = layer
            x = F.conv_transpose2d(
                x, state[p + "weight"], state.get(p + "bias"), stride, padding, output_padding
            )
        elif kind == "norm" and norm == "batch":
            x = F.batch_norm(
                x, state[p + "running_mean"], state[p + "running_var"], state[p + "weight"],
                state[p + "bias"], training=False, eps=1e-5,
            )  # fmt: skip
        elif kind == "norm":
            x = F.instance_norm(x, eps=1e-5)
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "lrelu":
            x = F.leaky_relu(x, 0.2)
        elif kind == "tanh":
            x = torch.tanh(x)
        elif kind == "dropout":
            pass  # eval mode
        elif kind == "down":  # Downsample: reflect pad 1, blur, stride 2
            x = F.pad(x, [1, 1, 1, 1], mode="reflect")
            x = F.conv2d(x, state[p + "filt"], stride=2, groups=x.shape[1])
        elif kind == "up":  # Upsample: replicate pad 1, transposed blur, [1:, 1:], then [:-1, :-1]
            x = F.pad(x, [1, 1, 1, 1], mode="replicate")
            x = F.conv_transpose2d(x, state[p + "filt"], stride=2, padding=2, groups=x.shape[1])
            x = x[:, :, 1:, 1:][:, :, :-1, :-1]
        elif kind == "block":
            x = x + _run(layer[1], state, p + "conv_block.", x, norm)
        elif kind == "unet":
            y = _run(layer[1], state, p + "model.", x, norm)
            x = y if layer[2] else torch.cat([x, y], 1)
        else:
            raise AssertionError(kind)
    return x
