"""The reference translation checkpoints, read and fitted onto gankit's networks.

pytorch-CycleGAN-and-pix2pix (Zhu et al. 2017, Isola et al. 2017) and CUT (Park et al. 2020)
save each network as a plain ``state_dict`` (``latest_net_G_A.pth``, ``latest_net_G.pth``,
``latest_net_D.pth``, ...; the published pretrained models are such files). Their networks are
the ones gankit's :mod:`~gankit.nets.resnet`, :mod:`~gankit.nets.unet` and
:mod:`~gankit.nets.patchgan` rebuild layer for layer, so the keys map one to one:

- ``ResnetGenerator``: the same ``model.<i>`` indices; a residual block's ``conv_block`` is
  gankit's ``block`` (``model.10.conv_block.1.weight`` → ``model.10.block.1.weight``); CUT's
  antialiased layout (its default) stores each blur filter as ``model.<i>.filt``, a constant that
  is checked and dropped.
- ``UnetGenerator`` (``model.model.1.model.3...``) and ``NLayerDiscriminator`` (``model.<i>``):
  the same names.

Files are read with ``torch.load(weights_only=True)``: no code in them runs. As the reference's
own loader (``__patch_instance_norm_state_dict``) does, the ``running_mean``, ``running_var`` and
``num_batches_tracked`` entries of instance-norm layers, which PyTorch 0.3/0.4 saved, are dropped;
a batch-norm layer without ``num_batches_tracked`` (saved before PyTorch 0.4.1) gets 0, as
PyTorch's own loading of such files does. ``ngf``/``ndf``, the channels and the PatchGAN's depth
are read from the weights' shapes; the architecture and norm are asked (they are what the file
must fit), and a file that does not fit is refused in one line naming the first key that
differs and, where another architecture fits, the options that would import it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.errors import ConfigError, first_line
from gankit.nets.patchgan import NLayerDiscriminator
from gankit.nets.resnet import BlurDown, BlurUp, ResnetGenerator
from gankit.nets.unet import UnetGenerator

__all__ = [
    "GENERATORS",
    "NORMS",
    "DLayout",
    "Fitted",
    "GLayout",
    "fit_discriminator",
    "fit_generator",
    "read_state_dict",
]

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")
"""The reference's ``--netG`` choices that gankit has."""
NORMS = ("instance", "batch")
"""The reference's ``--norm`` choices with weights to tell apart (``none`` is not imported)."""
_STATS = ("running_mean", "running_var", "num_batches_tracked")


# --- reading -----------------------------------------------------------------------------------


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a saved ``state_dict``, or a one-line ConfigError saying what the file is."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise ConfigError(
                f"{path}: not a state dict: it pickles Python objects{what}, which gankit does "
                "not run (torch.load weights_only=True); save the network's state_dict() instead"
            ) from None
        raise ConfigError(
            f"{path}: truncated or not a PyTorch file ({first_line(e, 80)})"
        ) from None
    except Exception as e:  # zip errors, EOF, a foreign format: torch says it in many ways
        raise ConfigError(
            f"{path}: truncated or not a PyTorch file ({type(e).__name__}: {first_line(e, 80)})"
        ) from None
    if not isinstance(obj, dict) or not obj:
        raise ConfigError(
            f"{path}: holds a {type(obj).__name__}, not a state dict (a dict of tensors, as the "
            "reference's latest_net_G.pth)"
        )
    others = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if others:
        keys = ", ".join(map(str, list(obj)[:4])) + (", ..." if len(obj) > 4 else "")
        raise ConfigError(
            f"{path}: not a network's state dict (a flat dict of tensors, as the reference's "
            f"latest_net_*.pth): its {others[0]!r} is a {type(obj[others[0]]).__name__} "
            f"(keys: {keys})"
        )
    if all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return dict(obj)


# --- layouts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GLayout:
    """A reference generator: ``--netG``, ``--norm`` and CUT's two antialias switches."""

    arch: str
    norm: str
    antialias: bool = False
    antialias_up: bool = False
    dropout: bool = False
    """Dropout in the residual blocks shifts their keys, so it is read from the file; in a U-Net
    it leaves no trace and is the task's default."""

    @property
    def resnet(self) -> bool:
        return self.arch.startswith("resnet")

    def describe(self) -> str:
        words = f"{self.arch} with {self.norm} norm"
        if self.resnet and (self.antialias or self.antialias_up):
            which = {(True, True): "", (True, False): " down", (False, True): " up"}
            words += f", antialiased{which[(self.antialias, self.antialias_up)]} (CUT's)"
        return words

    def build(self, ngf: int, channels: int) -> nn.Module:
        """The gankit network, on the meta device (shapes only)."""
        with torch.device("meta"):
            if self.resnet:
                blocks = 6 if self.arch == "resnet_6blocks" else 9
                return ResnetGenerator(
                    channels, channels, ngf, blocks, self.norm, self.dropout, "reflect",
                    self.antialias, self.antialias_up,
                )  # fmt: skip
            downs = 7 if self.arch == "unet_128" else 8
            return UnetGenerator(channels, channels, downs, ngf, self.norm, self.dropout)

    def stem(self) -> str:
        """The reference key whose shape is (ngf, channels, k, k)."""
        return "model.1.weight" if self.resnet else "model.model.0.weight"


@dataclass(frozen=True)
class DLayout:
    """A reference ``NLayerDiscriminator``: its norm and whether it is CUT's antialiased one."""

    norm: str
    antialias: bool = False

    def describe(self, n_layers: int = 3) -> str:
        name = "the basic PatchGAN" if n_layers == 3 else f"a {n_layers}-layer PatchGAN"
        aa = ", antialiased (CUT's)" if self.antialias else ""
        return f"{name} with {self.norm} norm{aa}"


@dataclass
class Fitted:
    """A file's weights under gankit's names, and what was read from their shapes."""

    state: dict[str, Tensor]
    width: int
    """ngf of a generator, ndf of a discriminator."""
    channels: int
    """Input channels."""
    n_layers: int = 3
    dropped: int = 0
    """Instance-norm statistics dropped (old PyTorch versions saved them)."""


class Mismatch(Exception):
    """The first key where a file and a layout differ (internal: becomes a ConfigError)."""


# --- fitting -----------------------------------------------------------------------------------


def _reference_name(ours: str) -> str:
    """gankit's key → the reference's (a residual block's ``block`` is its ``conv_block``)."""
    return re.sub(r"(^|\.)block\.", r"\1conv_block.", ours)


def _owner(net: nn.Module, key: str) -> nn.Module | None:
    prefix = key.rpartition(".")[0]
    try:
        return net.get_submodule(prefix)
    except AttributeError:
        return None


def _fit(net: nn.Module, file: dict[str, Tensor], what: str) -> tuple[dict[str, Tensor], int]:
    """``file`` under ``net``'s names, or Mismatch naming the first key that differs."""
    ours = net.state_dict()
    theirs = {_reference_name(k): k for k in ours}
    by_ours = {k: _reference_name(k) for k in ours}
    state: dict[str, Tensor] = {}
    dropped = 0
    for key, tensor in file.items():
        mapped = theirs.get(key, re.sub(r"(^|\.)conv_block\.", r"\1block.", key))
        owner = _owner(net, mapped)
        leaf = key.rpartition(".")[2]
        if isinstance(owner, nn.InstanceNorm2d) and leaf in _STATS:
            dropped += 1
            continue
        if isinstance(owner, BlurDown | BlurUp) and leaf == "filt":
            expected = owner.filt
            if tensor.shape != expected.shape or not _is_filter(tensor, owner):
                raise Mismatch(f"{key} is not CUT's blur filter of {what}")
            continue
        state[mapped] = tensor
    for name, tensor in ours.items():
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = torch.zeros((), dtype=torch.long)  # saved before PyTorch 0.4.1
        if name not in state:
            raise Mismatch(f"{by_ours[name]} is missing")
        if state[name].shape != tensor.shape:
            raise Mismatch(
                f"{by_ours[name]} has shape {list(state[name].shape)}, {what} needs "
                f"{list(tensor.shape)}"
            )
    for name in state:
        if name not in ours:
            raise Mismatch(f"{_reference_name(name)} is unexpected")
    return state, dropped


def _is_filter(tensor: Tensor, owner: nn.Module) -> bool:
    """Whether a saved ``filt`` is the constant ``owner`` builds (rebuilt off the meta device)."""
    c = tensor.shape[0]
    with torch.device("cpu"):
        reference = type(owner)(c).filt
    return torch.allclose(tensor.float(), reference, atol=1e-6)


def _width(file: dict[str, Tensor], key: str, kernel: int) -> tuple[int, int]:
    """(out, in) channels of the conv ``key``, or Mismatch."""
    w = file.get(key)
    if w is None:
        raise Mismatch(f"{key} is missing")
    if w.ndim != 4 or tuple(w.shape[2:]) != (kernel, kernel):
        raise Mismatch(f"{key} has shape {list(w.shape)}, not a {kernel}×{kernel} conv's")
    return int(w.shape[0]), int(w.shape[1])


def _try_generator(file: dict[str, Tensor], layout: GLayout) -> tuple[Fitted, GLayout]:
    """The file fitted onto ``layout`` (a ResNet's with or without dropout), or Mismatch."""
    ngf, channels = _width(file, layout.stem(), 7 if layout.resnet else 4)
    what = layout.describe()
    try:
        state, dropped = _fit(layout.build(ngf, channels), file, what)
    except Mismatch as first:
        if not layout.resnet:
            raise
        # Dropout moves the second conv of each residual block from index 5 to 6.
        layout = replace(layout, dropout=not layout.dropout)
        try:
            state, dropped = _fit(layout.build(ngf, channels), file, what)
        except Mismatch:
            raise first from None
    return Fitted(state, ngf, channels, dropped=dropped), layout


def _candidates(asked: GLayout, cut: bool) -> list[GLayout]:
    """Every other generator layout, the asked architecture's first."""
    flags = [(False, False)] + ([(True, True), (True, False), (False, True)] if cut else [])
    out = []
    for arch in sorted(GENERATORS, key=lambda a: a != asked.arch):
        for norm in sorted(NORMS, key=lambda n: n != asked.norm):
            for aa, aa_up in flags if arch.startswith("resnet") else [(False, False)]:
                layout = GLayout(arch, norm, aa, aa_up, asked.dropout)
                if layout != asked:
                    out.append(layout)
    if not cut:  # a CUT generator given to cyclegan or pix2pix: say which command reads it
        out += [GLayout(a, n, True, True) for a in GENERATORS[:2] for n in NORMS]
    return out


def options_for(layout: GLayout, fmt: str) -> str:
    """The ``gankit import`` options that ask for ``layout``."""
    if layout.resnet and (layout.antialias or layout.antialias_up) and fmt != "cut":
        return f"it fits {layout.describe()}: import it with gankit import cut"
    words = [f"--netG {layout.arch}", f"--norm {layout.norm}"]
    if fmt == "cut" and layout.resnet:
        words += ["--no-antialias"] * (not layout.antialias)
        words += ["--no-antialias-up"] * (not layout.antialias_up)
    return f"it fits {layout.describe()}: add {' '.join(words)}"


def fit_generator(
    path: Path, file: dict[str, Tensor], layout: GLayout, fmt: str, part: str
) -> tuple[Fitted, GLayout]:
    """The file's weights fitted onto ``layout`` (dropout read from a ResNet's keys), or a
    one-line ConfigError naming the first key that differs and a layout that fits."""
    try:
        fitted, layout = _try_generator(file, layout)
    except Mismatch as e:
        problem = str(e)
    else:
        _check_channels(path, fitted.channels, part)
        return fitted, layout
    for other in _candidates(layout, fmt == "cut"):
        try:
            _try_generator(file, other)
        except Mismatch:
            continue
        hint = options_for(other, fmt)
        break
    else:
        aa = ", antialiased or not" if fmt == "cut" else ""
        hint = (
            "no other reference generator fits either (resnet_9blocks, resnet_6blocks, "
            f"unet_256, unet_128 with instance or batch norm{aa})"
        )
    raise ConfigError(f"{path} ({part}) does not fit {layout.describe()}: {problem}; {hint}")


def _check_channels(path: Path, channels: int, part: str) -> None:
    if channels not in (1, 3):
        raise ConfigError(
            f"{path} ({part}) takes {channels}-channel images: gankit's translation runs take 1 "
            "or 3 channels"
        )


def fit_discriminator(
    path: Path, file: dict[str, Tensor], layout: DLayout, channels: int, part: str, cut: bool
) -> Fitted:
    """A reference ``NLayerDiscriminator`` (``--netD basic`` or ``n_layers``) fitted onto gankit's,
    its depth and width read from the file, or a one-line ConfigError."""
    convs = sorted(
        int(m.group(1))
        for k, v in file.items()
        if (m := re.fullmatch(r"model\.(\d+)\.weight", k)) and v.ndim == 4
    )
    n_layers = max(len(convs) - 2, 1)

    w = file.get("model.0.weight")
    if w is not None and w.ndim == 4 and w.shape[1] != channels:
        paired = " (pix2pix's judges the input and the output side by side)" if channels > 3 else ""
        raise ConfigError(
            f"{path} ({part}) takes {w.shape[1]}-channel images; {part} here takes {channels}"
            f"{paired}"
        )

    def attempt(d: DLayout) -> Fitted:
        ndf, _ = _width(file, "model.0.weight", 4)
        with torch.device("meta"):
            net = NLayerDiscriminator(channels, ndf, n_layers, d.norm, d.antialias)
        state, dropped = _fit(net, file, d.describe(n_layers))
        return Fitted(state, ndf, channels, n_layers, dropped)

    try:
        return attempt(layout)
    except Mismatch as e:
        problem = str(e)
    hint = "it is not a basic or n_layers PatchGAN (gankit imports those, not pixel ones)"
    for other in (DLayout(n, aa) for n in NORMS for aa in (False, True)):  # norm first
        if other == layout:
            continue
        try:
            attempt(other)
        except Mismatch:
            continue
        if other.norm != layout.norm:
            hint = f"it is {other.describe(n_layers)}: the reference's --norm is G's and D's alike"
        elif not cut:
            hint = f"it is {other.describe(n_layers)}: import it with gankit import cut"
        else:
            hint = (
                f"it is {other.describe(n_layers)}: CUT's --no_antialias is G's and D's alike "
                f"({'leave out' if other.antialias else 'add'} --no-antialias)"
            )
        break
    raise ConfigError(
        f"{path} ({part}) does not fit {layout.describe(n_layers)}: {problem}; {hint}"
    )
