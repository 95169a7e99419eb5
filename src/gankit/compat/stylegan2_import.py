"""A stylegan2-ada-pytorch network snapshot as a gankit run directory (``gankit import
stylegan2-ada PKL --out RUN``).

The pickle is read by :func:`gankit.compat.stylegan2_pickle.load_snapshot` only: no code from it
runs. Its networks become gankit's StyleGAN2 (``nets.G.arch=stylegan2``,
``nets.D.arch=stylegan2``), whose state_dict keys are the reference's: the snapshot's ``G`` goes
to the run's G, ``D`` to its D and ``G_ema`` to its EMA generator (``gan.ema_kimg``), each loaded
with ``strict=True``. The reference also stores its FIR filters (``*.resample_filter``) as
persistent buffers; gankit's are not saved, so each is checked to be the normalised outer product
of [1, 3, 3, 1] and dropped.

The run is written as training writes one: the task is built from the config
(:class:`~gankit.tasks.gan.GANTask`), and its checkpoint at step 0 and ``config.yaml`` are written
by the engine's own functions, so ``gankit sample``, ``evaluate``, ``export`` and ``gankit train
... --init-from RUN`` read it like any GAN run. ``imported.json`` records where it came from.

The config is stylegan2-ada's ``auto`` configuration for the snapshot's resolution (Adam lr
0.0025, betas (0, 0.99), lazy R1 with γ = 0.0002·res²/batch every 16 steps, path length 2 every
4, style mixing 0.9, EMA half-life batch·10/32 kimg ramped by 0.05): the snapshot does not keep
its training options. Fine-tuning may change any of them, but not ``nets.*``, ``data.image_size``
or ``data.channels``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gankit import __version__
from gankit.compat.run_writing import check_out, move_into_place, sha256
from gankit.compat.stylegan2_pickle import Snapshot, SnapshotNetwork, describe, load_snapshot
from gankit.config import Config, save_config
from gankit.engine.checkpoint import save_checkpoint
from gankit.engine.hooks import checkpoint_state
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError, first_line
from gankit.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from gankit.nets.stylegan2.layers import fir_filter
from gankit.registries import from_dict
from gankit.tasks.base import Streams
from gankit.tasks.gan import GANTask

__all__ = ["IMPORTED_FILE", "SOURCE_PLACEHOLDER", "ImportedRun", "import_stylegan2_ada"]

IMPORTED_FILE = "imported.json"
"""The provenance record next to ``config.yaml``."""
SOURCE_PLACEHOLDER = "folder:SET-data.source-TO-YOUR-IMAGES"
"""``data.source`` of a run whose snapshot names no training set: override it to fine-tune."""
MAPPING_LR = 0.01
"""The mapping networks' learning-rate multiplier, fixed in gankit's StyleGAN2 (the reference's
default); another changes the images."""


@dataclass(frozen=True)
class ImportedRun:
    """What :func:`import_stylegan2_ada` wrote."""

    run_dir: Path
    resolution: int
    channels: int
    classes: tuple[str, ...] | None
    g_params: int
    d_params: int
    data_source: str
    sha256: str


def import_stylegan2_ada(
    pkl: str | os.PathLike[str],
    out: str | os.PathLike[str],
    force: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> ImportedRun:
    """Write the run directory ``out`` from the stylegan2-ada-pytorch snapshot ``pkl``.

    One-line errors (:class:`~gankit.errors.GankitError`) for a missing or foreign file (the
    loader's), an architecture gankit does not have, weights that do not fit it, and an ``out``
    that exists and is not empty (with ``force``: replaced, if it is a run directory that no
    training holds). Nothing is written before everything has been read and checked. ``say``
    hears what is being done (a large file takes a while).
    """
    pkl, out = Path(pkl), Path(out)
    check_out(out, force)
    say(f"reading {pkl} (no code from it runs) ...")
    snapshot = load_snapshot(pkl)
    facts = _supported(snapshot)
    cfg = _config(snapshot, facts)
    task, rng = _build_task(cfg, snapshot)
    digest = sha256(pkl)
    record = {
        "imported_from": "stylegan2-ada-pytorch",
        "description": f"imported from stylegan2-ada-pytorch: {pkl.name}",
        "source": str(pkl.resolve()),
        "sha256": digest,
        "networks": _sources(snapshot),
        "architecture": facts,
        "training_set_kwargs": snapshot.training_set_kwargs,
        "gankit_version": __version__,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write(out, force, cfg, task, rng, record)
    return ImportedRun(
        run_dir=out,
        resolution=cfg.data.image_size,
        channels=cfg.data.channels,
        classes=task.model.classes,
        g_params=sum(p.numel() for p in task.G.parameters()),
        d_params=sum(p.numel() for p in task.D.parameters()),
        data_source=cfg.data.source,
        sha256=digest,
    )


# --- checks ------------------------------------------------------------------------------------


def _supported(snapshot: Snapshot) -> dict[str, Any]:
    """describe(snapshot), refused in one line where gankit's StyleGAN2 cannot be the same net."""
    if snapshot.D is None:
        raise ConfigError(
            f"{snapshot.path}: it holds no discriminator (D): gankit imports snapshots with G "
            "(or G_ema) and D"
        )
    facts = describe(snapshot)
    why = _why_not(facts["G"], facts["D"])
    if why:
        raise ConfigError(f"{snapshot.path}: {why}")
    return facts


def _why_not(g: dict[str, Any], d: dict[str, Any]) -> str | None:
    arch = g["synthesis_kwargs"].get("architecture")
    if arch != "skip":
        return f"its generator's architecture is {arch!r}: gankit has the 'skip' generator only"
    if d["architecture"] not in ("resnet", "orig"):
        return (
            f"its discriminator's architecture is {d['architecture']!r}: gankit has 'resnet' and "
            "'orig' only"
        )
    if g["img_channels"] not in (1, 3):
        return f"its images have {g['img_channels']} channels: gankit runs have 1 or 3"
    if any(d[k] != g[k] for k in ("c_dim", "img_resolution", "img_channels")):
        return "its G and D disagree on the classes, the resolution or the channels"
    if d["mbstd_group_size"] is None:
        return (
            "its D's minibatch stddev spans the whole batch (mbstd_group_size None): not supported"
        )
    for name, kwargs in (("generator", g), ("discriminator", d)):
        lr = kwargs["mapping_kwargs"].get("lr_multiplier", MAPPING_LR)
        if lr != MAPPING_LR:
            return (
                f"its {name}'s mapping lr_multiplier is {lr}: gankit's StyleGAN2 has {MAPPING_LR}"
            )
    return None


# --- the config --------------------------------------------------------------------------------


def _nets(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``nets.G`` and ``nets.D`` of the snapshot's architecture."""
    g, d = facts["G"], facts["D"]
    syn = g["synthesis_kwargs"]
    return {
        "G": {
            "arch": "stylegan2",
            "nz": g["z_dim"],
            "w_dim": g["w_dim"],
            "mapping_layers": g["mapping_kwargs"]["num_layers"],
            "fmaps": syn["channel_base"] / 32768,
            "channel_max": syn["channel_max"],
            "num_fp16_res": syn["num_fp16_res"],
            "conv_clamp": float(syn["conv_clamp"] or 0),
        },
        "D": {
            "arch": "stylegan2",
            "architecture": d["architecture"],
            "fmaps": d["channel_base"] / 32768,
            "channel_max": d["channel_max"],
            "mbstd_group": d["mbstd_group_size"],
            "mbstd_channels": d["mbstd_num_channels"],
            "mapping_layers": d["mapping_kwargs"].get("num_layers", 8),
            "num_fp16_res": d["num_fp16_res"],
            "conv_clamp": float(d["conv_clamp"] or 0),
        },
    }


def _training(resolution: int) -> dict[str, Any]:
    """stylegan2-ada's ``auto`` configuration on one GPU (train.py, ``cfg_specs['auto']``)."""
    batch = max(1, min(4096 // resolution, 32))
    adam = {"name": "adam", "lr": 0.0025, "betas": [0.0, 0.99], "eps": 1e-8}
    return {
        "optim": {"G": dict(adam), "D": dict(adam)},
        "gan": {
            "loss": "non-saturating",
            "r1": 0.0002 * resolution**2 / batch,
            "reg_every": 16,
            "lazy_reg": "separate",
            "penalties": ["path-length:2:4"],
            "style_mixing": 0.9,
            "ema": 0.0,
            "ema_kimg": batch * 10 / 32,
            "ema_rampup": 0.05,  # also: a fine-tuned run's EMA starts from the imported G
            "label_smoothing": 0.0,
        },
        "train": {"batch_size": batch},
    }


def _config(snapshot: Snapshot, facts: dict[str, Any]) -> Config:
    """The run's config: the snapshot's networks and data shape, stylegan2-ada's training."""
    g = facts["G"]
    res, k = g["img_resolution"], g["c_dim"]
    base = _training(res)
    data: dict[str, Any] = {"image_size": res, "channels": g["img_channels"]}
    kwargs = snapshot.training_set_kwargs or {}
    if kwargs.get("xflip"):
        data["flip"] = True
    base["gan"]["conditional"] = "projection" if k else "none"
    if k:
        base["gan"]["classes"] = [str(i) for i in range(k)]
    config = {
        "recipe": "stylegan2-ada-import",
        "description": f"{snapshot.path.name}, imported from stylegan2-ada-pytorch",
        "task": "gan",
        "data": data,
        "nets": _nets(facts),
        **base,
    }
    path = kwargs.get("path")
    if isinstance(path, str) and path:
        data["source"] = f"folder:{path}"
        try:
            return from_dict(config)
        except ConfigError:  # not a source here (a flat folder for a conditional run, say)
            pass
    data["source"] = SOURCE_PLACEHOLDER
    return from_dict(config)


# --- the weights -------------------------------------------------------------------------------


def _sources(snapshot: Snapshot) -> dict[str, str]:
    """The snapshot's network for each of the run's: its G (else G_ema), D, G_ema (else G)."""
    g = "G" if snapshot.G is not None else "G_ema"
    ema = "G_ema" if snapshot.G_ema is not None else "G"
    return {"nets.G": g, "nets.D": "D", "ema.G": ema}


def _build_task(cfg: Config, snapshot: Snapshot) -> tuple[GANTask, dict]:
    """The GAN task of ``cfg`` on the CPU with the snapshot's weights, and the RNG state to save
    (the task is built from the run's seed, leaving the caller's RNG as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        task = GANTask(cfg, Runtime(torch.device("cpu")), {})
        rng = task.rt.rng_state()
    if not isinstance(task.G, StyleGAN2Generator) or not isinstance(task.D, StyleGAN2Discriminator):
        raise AssertionError(f"the config built {type(task.G).__name__}/{type(task.D).__name__}")
    assert task.ema is not None  # gan.ema_kimg > 0
    nets, sources = snapshot.networks(), _sources(snapshot)
    targets = {"nets.G": task.G, "nets.D": task.D, "ema.G": task.ema.module}
    for part, key in sources.items():
        _fit(targets[part], nets[key], key, snapshot.path)
    task.ema.n_averaged.fill_(1)  # an average that holds G_ema: sampling uses it
    for net in (task.G, task.D, task.ema.module):
        net.eval()
    return task, rng


def _fit(net: nn.Module, source: SnapshotNetwork, key: str, path: Path) -> None:
    """Load ``source``'s weights into ``net`` (strict), its FIR filters checked and dropped."""
    fir = fir_filter()
    state: dict[str, Tensor] = {}
    for name, tensor in source.state.items():
        if name == "resample_filter" or name.endswith(".resample_filter"):
            if tensor.shape != fir.shape or not torch.allclose(tensor.float(), fir):
                raise ConfigError(
                    f"{path}: its {key}.{name} is not the normalised [1, 3, 3, 1] filter: "
                    "another resample_filter is not supported"
                )
            continue
        state[name] = tensor
    ours = net.state_dict()
    what = f"{path}: its {key} does not fit gankit's StyleGAN2 {type(net).__name__}"
    missing = [name for name in ours if name not in state]
    if missing:
        raise ConfigError(f"{what}: {missing[0]} is missing ({len(missing)} in all)")
    unexpected = [name for name in state if name not in ours]
    if unexpected:
        raise ConfigError(f"{what}: {unexpected[0]} is unexpected ({len(unexpected)} in all)")
    for name, tensor in ours.items():
        if state[name].shape != tensor.shape:
            raise ConfigError(
                f"{what}: {name} has shape {list(state[name].shape)}, gankit's {list(tensor.shape)}"
            )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"{what} ({first_line(e, 120)})") from None


# --- writing -----------------------------------------------------------------------------------


def _write(
    out: Path, force: bool, cfg: Config, task: GANTask, rng: dict, record: dict[str, Any]
) -> None:
    """The run directory, written beside ``out`` and moved into place: a failure leaves none."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.import-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed import of this process id left
    tmp.mkdir()
    try:
        for sub in ("samples", "checkpoints"):
            (tmp / sub).mkdir()
        save_config(cfg, tmp / "config.yaml")
        state = checkpoint_state(task, Streams({}), task.rt, cfg, 0)
        state["rng"] = rng
        save_checkpoint({**state, "best": None}, tmp / "checkpoints" / "step-000000.pt")
        text = json.dumps(record, indent=2, default=str)
        (tmp / IMPORTED_FILE).write_text(text + "\n", encoding="utf-8")
        move_into_place(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
