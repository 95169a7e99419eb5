"""The one training loop: any task, any device, resumable, interruptible, logged.

``train`` runs in named phases, each in its own module, and knows nothing of the model beyond the
:class:`~gankit.tasks.base.Task` protocol:

1. the run directory, its lock and its log (here, :mod:`gankit.engine.rundir`);
2. the checkpoint to continue from, checked before any data is read
   (:func:`gankit.engine.startup.read_resume`);
3. the data, the settings that depend on it, the task and its restored state
   (:func:`~gankit.engine.startup.build_task`, :func:`~gankit.engine.startup.restore`);
4. the steps, with hooks for metrics, previews, evaluations and checkpoints
   (:mod:`gankit.engine.driver`, :mod:`gankit.engine.hooks`).

Under torchrun, rank 0 sets the run directory up and tells the other ranks where it is; all ranks
run phases 2-4 and only rank 0 writes (:mod:`gankit.engine.distributed`).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gankit.config import Config, save_config
from gankit.engine import distributed
from gankit.engine.checkpoint import check_room, latest_or_none, remove_orphans, supersede_later
from gankit.engine.driver import make_driver
from gankit.engine.health import read_rows
from gankit.engine.hooks import RunContext, checkpoint_state
from gankit.engine.locks import exclusive
from gankit.engine.metrics_log import record_events, trim_history
from gankit.engine.rundir import (
    LOCK_NAME,
    make_run_dir,
    new_run_dir,
    refuse_existing_run,
    report_stale,
    run_busy,
    setup_logging,
)
from gankit.engine.runtime import Runtime
from gankit.engine.startup import build_task, read_resume, restore
from gankit.errors import ConfigError
from gankit.registries import task_class

log = logging.getLogger("gankit")


@dataclass
class TrainOutcome:
    """How a training process ended: its run directory, last step and the signal that stopped it."""

    run_dir: Path
    step: int
    stopped_by: str | None = None
    """``SIGINT`` or ``SIGTERM`` after a clean stop (checkpoint written), else None."""
    main: bool = True
    """Whether this process was the one that wrote the run directory (rank 0)."""


def train(
    cfg: Config,
    run_dir: str | Path | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    checkpoint: str | None = None,
) -> Path:
    """Train ``cfg`` in ``run_dir`` (new, or existing with ``resume``); return the run directory.

    See :func:`train_run`, which also says whether a signal stopped the run.
    """
    return train_run(cfg, run_dir, resume, init_from, checkpoint).run_dir


def train_run(
    cfg: Config,
    run_dir: str | Path | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    checkpoint: str | None = None,
) -> TrainOutcome:
    """Train ``cfg`` in ``run_dir``: a new run, or with ``resume`` the run already there.

    ``init_from``: start from another run's network weights (fine-tuning; optimizers fresh).
    ``checkpoint``: with ``resume``, the checkpoint to continue from (default the newest); later
    ones are moved to ``checkpoints/superseded-*/``. The run directory is locked for the life of
    the process (a second writer fails at once). Stops early, after writing a checkpoint, on
    SIGINT/SIGTERM. A non-finite loss raises TrainingError and leaves the last good checkpoint. A
    directory that already holds a run is refused unless ``resume``; a failed resume leaves the
    run as it was.

    Under torchrun every process calls this: rank 0 sets up and writes the run directory and
    tells the others where it is; after a restart (``--max-restarts``) the job continues its own
    run from the newest checkpoint (see :mod:`gankit.engine.distributed`).
    """
    t = cfg.train
    w = distributed.start(t.dist_backend, distributed.device_type(t.device), t.dist_timeout)
    try:
        if not w.is_main:
            return _follow(cfg, init_from)
        run_dir, resume, checkpoint = _attempt_run_dir(cfg, run_dir, resume, checkpoint, w)
        return _lead(cfg, run_dir, resume, init_from, checkpoint, w)
    finally:
        if w.size > 1:
            distributed.stop()


def _attempt_run_dir(
    cfg: Config,
    run_dir: str | Path | None,
    resume: bool,
    checkpoint: str | None,
    w: distributed.World,
) -> tuple[Path, bool, str | None]:
    """The run directory of this torchrun attempt and whether it resumes.

    The first attempt of a job records its run directory under ``runs/.torchrun/<job id>``; a
    restarted attempt (a worker was lost) continues that run from its newest checkpoint, or
    starts it again if none was written yet.
    """
    if not w.run_id:  # not under torchrun
        return (Path(run_dir) if run_dir else new_run_dir(cfg.recipe)), resume, checkpoint
    record = Path("runs") / ".torchrun" / w.run_id
    if w.restart == 0:
        path = Path(run_dir) if run_dir else new_run_dir(cfg.recipe)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(str(path.resolve()) + "\n")
        return path, resume, checkpoint
    path = Path(run_dir) if run_dir else Path(record.read_text().strip())
    if latest_or_none(path / "checkpoints") is not None:
        log.info("torchrun restart %d: resuming %s from its newest checkpoint", w.restart, path)
        tqdm.write(f"torchrun restart {w.restart}: resuming {path} from its newest checkpoint")
        return path, True, None
    if not resume and path.exists():
        shutil.rmtree(path)  # only what the lost attempt wrote before its first checkpoint
    return path, resume, checkpoint


def _follow(cfg: Config, init_from: str | Path | None) -> TrainOutcome:
    """A process other than rank 0: learn the run directory from rank 0, then train, writing
    nothing."""
    kind, *value = distributed.broadcast_object(None)
    if kind == "error":
        raise ConfigError(f"rank 0 could not set up the run: {value[0]}")
    run_dir, resume, checkpoint = value
    cfg.train.progress = False
    return _train(cfg, Path(run_dir), resume, init_from, checkpoint)


def _lead(
    cfg: Config,
    run_dir: Path,
    resume: bool,
    init_from: str | Path | None,
    checkpoint: str | None,
    w: distributed.World,
) -> TrainOutcome:
    """Rank 0 (or the only process): set up the run directory, then train."""
    told = False

    def tell(*message) -> None:
        nonlocal told
        if w.size > 1 and not told:
            distributed.broadcast_object(message)
            told = True

    # Phase 1: run directory, its lock, its log.
    created = not run_dir.exists()
    try:
        if resume and not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml in it)")
        if checkpoint and not resume:
            raise ConfigError(
                "--checkpoint chooses where a resumed run continues: use it with --resume"
            )
        make_run_dir(run_dir)
        with exclusive(run_dir / LOCK_NAME, lambda h: run_busy(run_dir, h)) as stale:
            if not resume:
                refuse_existing_run(run_dir)
            for sub in ("samples", "checkpoints"):
                (run_dir / sub).mkdir(exist_ok=True)
            removed = remove_orphans(run_dir / "checkpoints")
            if not resume:
                save_config(cfg, run_dir / "config.yaml")
            handler = setup_logging(run_dir)
            try:
                if stale:
                    report_stale(run_dir, stale)
                if removed:
                    log.info("removed %d orphan temporary checkpoint file(s)", removed)
                tell("ok", str(run_dir), resume, checkpoint)
                return _train(cfg, run_dir, resume, init_from, checkpoint)
            finally:
                log.removeHandler(handler)
                handler.close()
    except BaseException as e:
        tell("error", str(e) or type(e).__name__)
        if created and not (run_dir / "metrics.jsonl").exists():
            # A new run that failed while setting up (bad data, missing device, ...) holds only
            # its config; leaving it would clutter runs/. Once steps ran (metrics.jsonl exists),
            # everything is kept for the post-mortem.
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _train(
    cfg: Config, run_dir: Path, resume: bool, init_from: str | Path | None, checkpoint: str | None
) -> TrainOutcome:
    """Phases 2-4 of :func:`train_run`, in a run directory that is locked and logged to (under
    torchrun: by rank 0; the other ranks run the same phases and write nothing)."""
    torch.manual_seed(cfg.seed)  # the same on every rank: see gankit.engine.distributed
    runtime = Runtime.from_config(cfg.train)
    main, task_cls = runtime.is_main, task_class(cfg.task)
    events: list[dict] = []
    if runtime.world > 1:
        per_rank = distributed.per_rank(cfg.train.batch_size)
        log.info(
            "%d processes (%s) x %d images = global batch train.batch_size=%d",
            *(runtime.world, runtime.device, per_rank, cfg.train.batch_size),
        )
        events.append({"event": "distributed", "world": runtime.world, "per_rank_batch": per_rank})
    resumed = read_resume(run_dir, checkpoint, runtime, task_cls, cfg) if resume else None
    task, streams = build_task(cfg, task_cls, runtime, run_dir)
    step, best, restored = restore(task, streams, runtime, cfg, resumed, init_from, run_dir)
    if main:
        check_room(run_dir / "checkpoints", checkpoint_state(task, streams, runtime, cfg, step))
    # Only now is the run directory changed: a refused resume leaves it byte for byte as it was.
    if resumed is not None and main:
        supersede_later(run_dir / "checkpoints", resumed.path)
        trim_history(run_dir, step)
        log.info("resumed from %s at step %d", resumed.path, step)
    if main:
        save_config(cfg, run_dir / "config.yaml")
    # Phase 4: the steps.
    purge = step if resumed is not None else None
    driver = make_driver(cfg, run_dir, task, streams, runtime, step, purge)
    driver.ckpts.best = best
    if main:
        _record(driver.ctx, step, [*restored, *events], resume)
    step, stopped_by = driver.run(step)
    return TrainOutcome(run_dir, step, stopped_by, main)


def _record(ctx: RunContext, step: int, events: list[dict], resume: bool) -> None:
    """Write the start, resume and fine-tuning events; a resumed run's health state replayed."""
    record_events(ctx.run_dir, ctx.metrics, step, events)
    changed = [f"{e['key']} {e['old']!r} -> {e['new']!r}" for e in events if "key" in e]
    if changed:
        tqdm.write(f"resuming at step {step} with: {'; '.join(changed)}")
    if resume:
        ctx.health.replay(read_rows(ctx.run_dir / "metrics.jsonl"), until=step)
