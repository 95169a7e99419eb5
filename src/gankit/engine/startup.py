"""From a locked run directory to the first step: the checkpoint to continue from, the data, the
settings that depend on it, the task, and its state restored (or another run's weights loaded).

Resume with changes: the run's checkpoint holds the config it was trained with. Structural keys
(``config.STRUCTURAL`` and the task's ``structural``) may not change; tunable ones apply from the
resume step on, because the task is built from the new config and its parts restore only state,
never hyperparameters. Each change is recorded as a ``config_change`` row in ``metrics.jsonl``, in
``changes.jsonl`` and in ``run.log``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gankit import seeds
from gankit.config import Config, changes, is_structural, to_dict
from gankit.data.sources import ImageData, labelled_subset, load_source
from gankit.data.stream import make_stream
from gankit.engine import distributed
from gankit.engine.checkpoint import (
    choose_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    read_best,
    read_resume_checkpoint,
)
from gankit.engine.runtime import Runtime
from gankit.errors import CheckpointError, ConfigError, DataError
from gankit.registries import from_dict
from gankit.tasks.base import Streams, Task

log = logging.getLogger("gankit")


def resume_changes(
    task_cls: type[Task], old: dict, cfg: Config
) -> list[tuple[str, object, object]]:
    """The tunable ``(key, old, new)`` changes from a checkpoint's config to ``cfg``.

    A structural change (see ``config.STRUCTURAL``, ``Task.structural_keys``) is a ConfigError naming
    the key, and so is one the task refuses in ``check_resume``.
    """
    found = changes(old, to_dict(cfg))
    for key, was, now in found:
        if is_structural(key, task_cls.structural_keys()):
            raise ConfigError(
                f"{key} cannot change when resuming ({was!r} -> {now!r}): it shapes the networks "
                "or the data; start a new run (with --init-from RUN to keep the weights)"
            )
    task_cls.check_resume(from_dict(old), cfg)
    return found


def load_data(cfg: Config, task_cls: type[Task], run_dir: Path) -> dict[str, ImageData]:
    datas = {}
    specs = task_cls.streams(cfg)
    per_class = cfg.data.labels_per_class
    if per_class is not None and (per_class <= 0 or not any(s.labels for s in specs.values())):
        raise ConfigError(
            f"data.labels_per_class={per_class}: needs a positive count and a task that reads "
            f"labels (this {cfg.task} run's streams carry none); remove it otherwise"
        )
    for name, spec in specs.items():
        data = load_source(spec.data, progress=cfg.train.progress, with_labels=spec.labels)
        if spec.labels and spec.data.labels_per_class:
            data = labelled_subset(data, spec.data.labels_per_class, cfg.seed)
            if len(data) < cfg.train.batch_size:
                raise DataError(
                    f"data.labels_per_class={per_class} leaves {len(data)} labelled images, "
                    f"fewer than train.batch_size={cfg.train.batch_size}: lower the batch size "
                    "or raise labels_per_class"
                )
        if data.skipped and distributed.world().is_main:
            listing = run_dir / ("data_skipped.txt" if not datas else f"data_skipped-{name}.txt")
            text = "\n".join(data.skipped) + "\n"
            # Scraped names may not be valid UTF-8: keep them readable rather than failing.
            listing.write_text(text, encoding="utf-8", errors="backslashreplace")
            msg = f"skipped {len(data.skipped)} unreadable image(s) of {len(data) + len(data.skipped)}; list in {listing}"
            log.warning(msg)
            tqdm.write(f"warning: {msg}")
        datas[name] = data
    return datas


def make_streams(
    cfg: Config, task_cls: type[Task], datas: dict[str, ImageData], runtime: Runtime
) -> Streams:
    streams = {}
    for i, (name, spec) in enumerate(task_cls.streams(cfg).items()):
        seed = cfg.seed + seeds.STREAM * i  # the first stream keeps the run's seed
        streams[name] = make_stream(
            datas[name], spec.data, cfg.train.batch_size, runtime.device, seed, spec.labels
        )
    return Streams(streams)


def init_from_run(task: Task, cfg: Config, source: Path, device: torch.device) -> dict:
    """Load another run's network weights into ``task``; the networks must be the same."""
    state = load_checkpoint(latest_checkpoint(source), device)
    if state.get("task") != cfg.task:
        raise ConfigError(f"--init-from {source} is a {state.get('task')} run, this is {cfg.task}")
    for k, theirs, ours in changes(state["config"], to_dict(cfg)):
        if k.startswith("nets.") or k in ("data.image_size", "data.channels"):
            raise ConfigError(
                f"--init-from {source}: {k} is {theirs!r} there and {ours!r} "
                "here; fine-tuning needs the same networks"
            )
    task.parts.load_state_dict(state["parts"], groups=("nets",))
    return {"event": "init_from", "run": str(source), "from_step": state["step"]}


@dataclass
class Resumed:
    """The checkpoint a resumed run continues from, read and checked before any data."""

    path: Path
    state: dict


def read_resume(
    run_dir: Path, checkpoint: str | None, rt: Runtime, task_cls: type[Task], cfg: Config
) -> Resumed:
    """Phase 2: the checkpoint to continue from (the newest, or ``checkpoint``), refused in one
    line when it holds another task or a structural change."""
    ckpt = Path(distributed.from_main(lambda: str(choose_checkpoint(run_dir, checkpoint))))
    state = read_resume_checkpoint(run_dir, ckpt, rt.device)
    if state.get("task") != cfg.task:
        raise CheckpointError(f"{ckpt} holds a {state.get('task')!r} run, not {cfg.task!r}")
    resume_changes(task_cls, state["config"], cfg)
    return Resumed(ckpt, state)


def build_task(
    cfg: Config, task_cls: type[Task], rt: Runtime, run_dir: Path
) -> tuple[Task, Streams]:
    """Phase 3: the data of every stream, the settings that depend on it (class names,
    ``train.epochs`` in steps), the streams and the task."""
    datas = load_data(cfg, task_cls, run_dir)
    task_cls.resolve(cfg, datas)
    if cfg.train.epochs:
        first = next(iter(datas.values()))
        per_step = cfg.train.batch_size * task_cls.batches_per_step(cfg)
        cfg.train.steps = math.ceil(cfg.train.epochs * len(first) / per_step)
        log.info(
            "train.epochs=%s over %d images: %d steps",
            cfg.train.epochs,
            len(first),
            cfg.train.steps,
        )
    streams = make_streams(cfg, task_cls, datas, rt)
    first = streams.peek(cfg.train.n_preview) if task_cls.needs_first_batch else {}
    return task_cls(cfg, rt, first), streams


def restore(
    task: Task,
    streams: Streams,
    rt: Runtime,
    cfg: Config,
    resumed: Resumed | None,
    init_from: str | Path | None,
    run_dir: Path,
) -> tuple[int, dict | None, list[dict]]:
    """The step to start at, the best evaluation so far and the events to record: a resumed
    run's parts, streams and RNGs from its checkpoint (its config changes as events), or a new
    run's start row; then ``--init-from`` weights. Every rank ends with rank 0's networks."""
    step, best, events = 0, None, []
    if resumed is not None:
        state = resumed.state
        events = [
            {"event": "config_change", "key": k, "old": was, "new": now}
            for k, was, now in resume_changes(type(task), state["config"], cfg)
        ]
        task.parts.load_state_dict(state.get("parts", {}))
        streams.load_state_dict(state.get("streams", {}))
        rt.set_rng_state(state["rng"])
        step = state["step"]
        best = distributed.from_main(lambda: read_best(run_dir) or state.get("best"))
    else:  # what the report needs to know of the task, so that it names none
        events.append({"event": "start", "task": task.name, **task.info.report_fields()})
    if init_from:
        events.append(init_from_run(task, cfg, Path(init_from), rt.device))
    # Every rank starts from rank 0's networks (built from one seed, they agree already).
    distributed.broadcast_modules([*task.parts.nets.values(), *task.parts.ema.values()])
    return step, best, events
