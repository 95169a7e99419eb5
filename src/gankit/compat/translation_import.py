"""The reference's translation checkpoints as a gankit run directory (``gankit import cyclegan|
pix2pix|cut FILE.pth [FILE2.pth] --out RUN``).

The files are pytorch-CycleGAN-and-pix2pix's and CUT's saved networks (``latest_net_G_A.pth``,
``latest_net_G.pth``, the published ``horse2zebra.pth``, ...), read and fitted onto gankit's
networks by :mod:`gankit.compat.translation_reference`. Each becomes one network of a run of the
matching task: CycleGAN's first file is ``G_A`` (A → B), its second ``G_B`` (B → A); pix2pix's
and CUT's one file is ``G``. Discriminators come only from ``--netD-file`` (the published models
have none); every network not given keeps the initialisation of the run's seed and is listed as
new, so that fine-tuning trains it from the start.

The run is written as training writes one (the format's reference recipe with the file's
networks and ``data.image_size`` = ``--size``; the step-0 checkpoint and ``config.yaml`` by the
engine's own functions), so ``gankit translate``, ``evaluate`` and ``train --init-from RUN`` read
it like any translation run. With ``--data-root`` the data is loaded as a new run loads it, so
that ``gankit train --resume RUN`` works too (``data.root`` cannot change on resume).
``imported.json`` records the files, their sha256 and what was read from them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit import __version__
from gankit.compat.run_writing import check_out, move_into_place, sha256
from gankit.compat.translation_reference import (
    GENERATORS,
    DLayout,
    Fitted,
    GLayout,
    fit_discriminator,
    fit_generator,
    read_state_dict,
)
from gankit.config import Config, load_recipe, save_config
from gankit.engine.checkpoint import save_checkpoint
from gankit.engine.hooks import checkpoint_state
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError
from gankit.registries import from_dict, task_class
from gankit.tasks.base import Streams, Task

__all__ = ["FORMATS", "IMPORTED_FILE", "Format", "ImportedRun", "import_translation"]

IMPORTED_FILE = "imported.json"  # the provenance record next to config.yaml


@dataclass(frozen=True)
class Format:
    """One of the reference's models: its task, networks and defaults."""

    repository: str
    generators: tuple[str, ...]
    """The run's generators, in the order the files are given."""
    discriminators: tuple[str, ...]
    """The discriminator judging each generator's output, in the same order."""
    netG: str
    norm: str
    antialias: bool
    """CUT's default generator and PatchGAN are antialiased; the others have strided convs."""
    unet_dropout: bool
    """A U-Net's dropout (its weights do not show it): the reference's default for the model."""


FORMATS = {
    "cyclegan": Format(
        "junyanz/pytorch-CycleGAN-and-pix2pix", ("G_A", "G_B"), ("D_A", "D_B"),
        "resnet_9blocks", "instance", antialias=False, unet_dropout=False,
    ),
    "pix2pix": Format(
        "junyanz/pytorch-CycleGAN-and-pix2pix", ("G",), ("D",), "unet_256", "batch",
        antialias=False, unet_dropout=True,
    ),
    "cut": Format(
        "taesungp/contrastive-unpaired-translation", ("G",), ("D",), "resnet_9blocks",
        "instance", antialias=True, unet_dropout=False,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ImportedPart:
    """One network of the run: where its weights came from (None: newly initialised)."""

    name: str
    file: Path | None
    sha256: str | None
    described: str
    parameters: int
    dropped: int = 0


@dataclass(frozen=True)
class ImportedRun:
    """What :func:`import_translation` wrote."""

    run_dir: Path
    task: str
    size: int
    channels: int
    parts: tuple[ImportedPart, ...]
    direction: str | None  # pix2pix's and CUT's one direction; None for CycleGAN (both)
    data_root: str | None


def import_translation(
    fmt: str,
    files: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    netG: str | None = None,
    norm: str | None = None,
    size: int = 256,
    d_files: Sequence[str | os.PathLike[str]] = (),
    direction: str = "AtoB",
    antialias: bool | None = None,
    antialias_up: bool | None = None,
    data_root: str | os.PathLike[str] | None = None,
    force: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> ImportedRun:
    """Write the run directory ``out`` from the reference checkpoint(s) ``files``.

    ``fmt`` is ``cyclegan`` (one or two generator files: G_A, then G_B), ``pix2pix`` or ``cut``
    (one). ``netG``/``norm`` default to the reference's for the model (CycleGAN and CUT
    ``resnet_9blocks`` with instance norm, pix2pix ``unet_256`` with batch norm); ``antialias``
    and ``antialias_up`` (CUT only; default on, as CUT's) are the negations of its
    ``--no_antialias`` and ``--no_antialias_up``. One-line errors (:class:`~gankit.errors.
    GankitError`) for missing, truncated or foreign files, weights that do not fit, and an
    ``out`` that exists and is not empty (with ``force``: replaced, if it is a run directory no
    training holds). Nothing is written before every file has been read and fitted.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    paths, d_paths, out = [Path(f) for f in files], [Path(f) for f in d_files], Path(out)
    _check_counts(fmt, spec, paths, d_paths)
    check_out(out, force)
    layout = _asked(fmt, spec, netG, norm, antialias, antialias_up)
    d_layout = DLayout(layout.norm, layout.antialias if fmt == "cut" else False)

    fitted, layouts, channels = _read_all(fmt, spec, paths, d_paths, layout, d_layout, say)
    cfg = _config(fmt, spec, fitted, layouts, d_layout, size, channels, direction,
                  data_root, paths)  # fmt: skip
    digests = {name: sha256(path) for name, (_, path, _) in fitted.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.import-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed import of this process id left
    tmp.mkdir()
    try:
        task = _write(tmp, cfg, fmt, fitted, data_root is not None, say)
        parts = _parts(task, fitted, digests)
        record = _record(spec, fmt, cfg.description, parts)
        text = json.dumps(record, indent=2, default=str)
        (tmp / IMPORTED_FILE).write_text(text + "\n", encoding="utf-8")
        move_into_place(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    one_way = cfg.options[fmt].direction if fmt != "cyclegan" else None
    return ImportedRun(out, fmt, size, channels, parts, one_way, cfg.data.root)


def _read_all(
    fmt: str,
    spec: Format,
    paths: list[Path],
    d_paths: list[Path],
    layout: GLayout,
    d_layout: DLayout,
    say: Callable[[str], None],
) -> tuple[dict[str, tuple[Fitted, Path, str]], dict[str, GLayout], int]:
    """Every file read and fitted: ``({part: (fitted, file, described)}, G layouts, channels)``."""
    fitted: dict[str, tuple[Fitted, Path, str]] = {}
    layouts: dict[str, GLayout] = {}
    for name, path in zip(spec.generators, paths, strict=False):
        say(f"reading {path} ({name}; no code from it runs) ...")
        got, layouts[name] = fit_generator(path, read_state_dict(path), layout, fmt, name)
        fitted[name] = (got, path, layouts[name].describe())
    channels = _one_channel_count(fitted)
    for name, path in zip(spec.discriminators, d_paths, strict=False):
        say(f"reading {path} ({name}) ...")
        d_channels = 2 * channels if fmt == "pix2pix" else channels
        file = read_state_dict(path)
        got = fit_discriminator(path, file, d_layout, d_channels, name, fmt == "cut")
        fitted[name] = (got, path, d_layout.describe(got.n_layers))

    return fitted, layouts, channels


def _record(spec: Format, fmt: str, description: str, parts: list[ImportedPart]) -> dict:
    """``imported.json``: where each network came from."""
    return {
        "imported_from": spec.repository,
        "format": fmt,
        "description": description,
        "networks": {
            p.name: {
                "file": str(p.file.resolve()) if p.file else None,
                "sha256": p.sha256,
                "architecture": p.described,
                "instance_norm_statistics_dropped": p.dropped,
            }
            for p in parts
        },
        "gankit_version": __version__,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# --- checks ------------------------------------------------------------------------------------


def _check_counts(fmt: str, spec: Format, paths: list[Path], d_paths: list[Path]) -> None:
    gens, discs = spec.generators, spec.discriminators
    if not paths or len(paths) > len(gens):
        what = (
            "one or two generator files (G_A: A→B, then G_B: B→A)"
            if len(gens) > 1
            else "one generator file (latest_net_G.pth)"
        )
        raise ConfigError(f"gankit import {fmt} takes {what}; got {len(paths)}")
    if len(d_paths) > len(discs):
        raise ConfigError(
            f"gankit import {fmt} takes at most {len(discs)} --netD-file ({', '.join(discs)}); "
            f"got {len(d_paths)}"
        )


def _asked(
    fmt: str,
    spec: Format,
    netG: str | None,
    norm: str | None,
    antialias: bool | None,
    antialias_up: bool | None,
) -> GLayout:
    """The generator layout the files must fit: the options, else the format's defaults."""
    arch = netG or spec.netG
    if arch not in GENERATORS:
        raise ConfigError(f"--netG {arch}: choose one of {', '.join(GENERATORS)}")
    if fmt != "cut" and (antialias or antialias_up):
        raise ConfigError("antialiased generators are CUT's: use gankit import cut")
    aa = spec.antialias if antialias is None else antialias
    aa_up = spec.antialias if antialias_up is None else antialias_up
    if not arch.startswith("resnet"):
        aa = aa_up = False
        if fmt == "cut":
            raise ConfigError(f"--netG {arch}: CUT's generator is a ResNet (its encoder is tapped)")
    dropout = spec.unet_dropout and not arch.startswith("resnet")
    return GLayout(arch, norm or spec.norm, aa, aa_up, dropout)


def _one_channel_count(fitted: dict[str, tuple[Fitted, Path, str]]) -> int:
    counts = {name: f.channels for name, (f, _, _) in fitted.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{n} {c}" for n, c in counts.items())
        raise ConfigError(f"the generators take different channels ({listed}): one run has one")
    return next(iter(counts.values()))


# --- the config --------------------------------------------------------------------------------


def _g_options(fitted: Fitted, layout: GLayout) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "arch": layout.arch,
        "ngf": fitted.width,
        "norm": layout.norm,
        "dropout": layout.dropout,
    }
    if layout.resnet:
        opts |= {"antialias": layout.antialias, "antialias_up": layout.antialias_up}
    return opts


def _d_options(fitted: Fitted | None, layout: DLayout) -> dict[str, Any]:
    if fitted is None:  # a new PatchGAN, the reference's default
        return {"arch": "basic", "ndf": 64, "norm": layout.norm, "antialias": layout.antialias}
    arch = "basic" if fitted.n_layers == 3 else "n_layers"
    return {
        "arch": arch,
        "ndf": fitted.width,
        "n_layers": fitted.n_layers,
        "norm": layout.norm,
        "antialias": layout.antialias,
    }


def _config(
    fmt: str,
    spec: Format,
    fitted: dict[str, tuple[Fitted, Path, str]],
    layouts: dict[str, GLayout],
    d_layout: DLayout,
    size: int,
    channels: int,
    direction: str,
    data_root: str | os.PathLike[str] | None,
    paths: list[Path],
) -> Config:
    """The format's reference recipe with the files' networks, ``--size`` and ``--data-root``."""
    data = load_recipe(fmt)
    # A generator not in the files (CycleGAN's G_B) is new, the other's twin.
    first = spec.generators[0]
    nets: dict[str, Any] = {}
    for name in spec.generators:
        got = fitted.get(name, fitted[first])[0]
        nets[name] = _g_options(got, layouts.get(name, layouts[first]))
    for name in spec.discriminators:
        got = fitted.get(name)
        nets[name] = _d_options(got[0] if got else None, d_layout)
    data["nets"] = nets
    data["data"] |= {
        "image_size": size,
        "load_size": round(size * 286 / 256),  # the reference's 286 → crop 256, in proportion
        "channels": channels,
        "root": str(data_root) if data_root is not None else None,
    }
    if fmt != "cyclegan":
        data[fmt]["direction"] = direction
    names = " and ".join(p.name for p in paths)
    data["recipe"] = f"{fmt}-import"
    data["description"] = f"{names}, imported from {spec.repository} (gankit import {fmt})"
    try:
        return from_dict(data)
    except ConfigError as e:
        if "image_size" not in str(e):
            raise
        raise ConfigError(f"--size {size}: {e}") from None


# --- the weights and the run -------------------------------------------------------------------


def _first_batches(cfg: Config, fmt: str) -> dict[str, Tensor]:
    """Grey stand-ins for the first batches a task is built from, without data."""
    n, c, s = cfg.train.n_preview, cfg.data.channels, cfg.data.image_size
    if fmt == "pix2pix":
        return {"pair": torch.zeros(n, 2 * c, s, s)}
    return {"A": torch.zeros(n, c, s, s), "B": torch.zeros(n, c, s, s)}


def _write(
    tmp: Path,
    cfg: Config,
    fmt: str,
    fitted: dict[str, tuple[Fitted, Path, str]],
    with_data: bool,
    say: Callable[[str], None],
) -> Task:
    """The task of ``cfg`` with the files' weights, its step-0 checkpoint and ``config.yaml``
    written into ``tmp`` (built from the run's seed, leaving the caller's RNG as it was)."""
    from gankit.engine.startup import build_task

    task_cls = task_class(cfg.task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        rt = Runtime(torch.device("cpu"))
        if with_data:
            say(f"loading the training data under {cfg.data.root} (for --resume) ...")
            task, streams = build_task(cfg, task_cls, rt, tmp)
        else:
            task, streams = task_cls(cfg, rt, _first_batches(cfg, fmt)), Streams({})
        rng = rt.rng_state()
    for name, (got, _, _) in fitted.items():
        task.parts.nets[name].load_state_dict(got.state, strict=True)
    for sub in ("samples", "checkpoints"):
        (tmp / sub).mkdir(exist_ok=True)
    save_config(cfg, tmp / "config.yaml")
    state = checkpoint_state(task, streams, rt, cfg, 0)
    state["rng"] = rng
    save_checkpoint({**state, "best": None}, tmp / "checkpoints" / "step-000000.pt")
    return task


def _parts(
    task: Task, fitted: dict[str, tuple[Fitted, Path, str]], digests: dict[str, str]
) -> tuple[ImportedPart, ...]:
    """Each network of the task: its file, digest and architecture, or new."""
    out = []
    for name, net in task.parts.nets.items():
        count = sum(p.numel() for p in net.parameters())
        if name in fitted:
            got, path, described = fitted[name]
            out.append(ImportedPart(name, path, digests[name], described, count, got.dropped))
        else:
            out.append(ImportedPart(name, None, None, "new", count))
    return tuple(out)
