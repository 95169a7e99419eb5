"""The one training loop: any task, any device, resumable, interruptible, logged.

``train`` runs in named phases — set up the run directory, restore a checkpoint (or a run to start
from), load each of the task's data streams, build the task, step, finish — and knows nothing of
the model beyond the :class:`~gankit.tasks.base.Task` protocol: ``streams``, ``step``, ``parts``,
``previews``, ``info``, ``evaluate`` and ``generative``.

Resume with changes: the run's checkpoint holds the config it was trained with. Structural keys
(``config.STRUCTURAL`` and the task's ``structural``) may not change; tunable ones apply from the
resume step on, because the task is built from the new config and its parts restore only state,
never hyperparameters. Each change is recorded as a ``config_change`` row in ``metrics.jsonl``, in
``changes.jsonl`` and in ``run.log``.

Non-finite values are detected on the device without a host synchronisation per step: the loop
keeps the first bad step in a device tensor and reads it at log, preview, evaluation and
checkpoint steps, so a NaN stops the run within ``train.log_every`` steps, before any checkpoint
could save it.

Best checkpoint (``eval.every`` of a task with a Generative): whenever an evaluation beats the
best so far, the complete checkpoint of that step goes to ``checkpoints/best.pt`` (atomically;
never pruned, never used to resume) with ``{"key", "value", "step"}`` under ``"best"``; "higher is
better" comes from the metrics registry (``evaluation.TRAINING_METRICS``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gankit import seeds
from gankit.config import Config, changes, is_structural, save_config, to_dict
from gankit.data.sources import ImageData, labelled_subset, load_source
from gankit.data.stream import make_stream
from gankit.engine import distributed
from gankit.engine.checkpoint import (
    best_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    read_best,
    save_checkpoint,
)
from gankit.engine.health import HealthMonitor, read_rows
from gankit.engine.locks import exclusive
from gankit.engine.rundir import (
    LOCK_NAME,
    MetricsWriter,
    NullMetrics,
    StopFlag,
    check_room,
    choose_checkpoint,
    latest_or_none,
    make_run_dir,
    new_run_dir,
    read_resume_checkpoint,
    record_events,
    refuse_existing_run,
    remove_orphans,
    report_stale,
    run_busy,
    setup_logging,
    supersede_later,
    trim_history,
    write_failed,
)
from gankit.engine.runtime import Runtime
from gankit.errors import CheckpointError, ConfigError, DataError, TrainingError
from gankit.inference.sampling import save_preview
from gankit.registries import from_dict, task_class
from gankit.tasks.base import Streams, Task

log = logging.getLogger("gankit")


def _improves(scores: dict[str, float], best_metric: tuple[str, bool], best: dict | None) -> bool:
    """Whether ``scores`` beat the ``best`` record (a record for another key does not count)."""
    key, higher = best_metric
    value = scores.get(key)
    if value is None or not math.isfinite(value):
        return False
    if not best or best.get("key") != key:
        return True
    return value > best["value"] if higher else value < best["value"]


def resume_changes(
    task_cls: type[Task], old: dict, cfg: Config
) -> list[tuple[str, object, object]]:
    """The tunable ``(key, old, new)`` changes from a checkpoint's config to ``cfg``.

    A structural change (see ``config.STRUCTURAL``, ``Task.structural``) is a ConfigError naming
    the key, and so is one the task refuses in ``check_resume``.
    """
    found = changes(old, to_dict(cfg))
    for key, was, now in found:
        if is_structural(key, task_cls.structural):
            raise ConfigError(
                f"{key} cannot change when resuming ({was!r} -> {now!r}): it shapes the networks "
                "or the data; start a new run (with --init-from RUN to keep the weights)"
            )
    task_cls.check_resume(from_dict(old), cfg)
    return found


def _load_data(cfg: Config, task_cls: type[Task], run_dir: Path) -> dict[str, ImageData]:
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


def _make_streams(
    cfg: Config, task_cls: type[Task], datas: dict[str, ImageData], runtime: Runtime
) -> Streams:
    streams = {}
    for i, (name, spec) in enumerate(task_cls.streams(cfg).items()):
        seed = cfg.seed + seeds.STREAM * i  # the first stream keeps the run's seed
        streams[name] = make_stream(
            datas[name], spec.data, cfg.train.batch_size, runtime.device, seed, spec.labels
        )
    return Streams(streams)


def _checkpoint_state(
    task: Task, streams: Streams, runtime: Runtime, cfg: Config, step: int
) -> dict:
    return {
        "task": task.name,
        "step": step,
        "config": to_dict(cfg),
        "parts": task.parts.state_dict(),
        "streams": streams.state_dict(),
        "rng": runtime.rng_state(),
    }


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


def _init_from(task: Task, cfg: Config, source: Path, device: torch.device) -> dict:
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


def _train(
    cfg: Config, run_dir: Path, resume: bool, init_from: str | Path | None, checkpoint: str | None
) -> TrainOutcome:
    """Phases 2-4 of :func:`train_run`, in a run directory that is locked and logged to (under
    torchrun: by rank 0; the other ranks run the same phases and write nothing)."""
    torch.manual_seed(cfg.seed)  # the same on every rank: see gankit.engine.distributed
    runtime = Runtime.from_config(cfg.train)
    main = runtime.rank == 0
    task_cls = task_class(cfg.task)
    if runtime.world > 1:
        per_rank = distributed.per_rank(cfg.train.batch_size)
        log.info(
            "%d processes (%s) x %d images = global batch train.batch_size=%d",
            runtime.world,
            runtime.device,
            per_rank,
            cfg.train.batch_size,
        )

    # Phase 2: the checkpoint to continue from, checked before any data is read.
    state: dict | None = None
    if resume:
        ckpt = Path(distributed.from_main(lambda: str(choose_checkpoint(run_dir, checkpoint))))
        state = read_resume_checkpoint(run_dir, ckpt, runtime.device)
        if state.get("task") != cfg.task:
            raise CheckpointError(f"{ckpt} holds a {state.get('task')!r} run, not {cfg.task!r}")
        resume_changes(task_cls, state["config"], cfg)

    # Phase 3: data, the settings that depend on it, the task.
    datas = _load_data(cfg, task_cls, run_dir)
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
    streams = _make_streams(cfg, task_cls, datas, runtime)
    first = streams.peek(cfg.train.n_preview) if task_cls.needs_first_batch else {}
    task = task_cls(cfg, runtime, first)

    step, best, events = 0, None, []
    if state is not None:
        events = [
            {"event": "config_change", "key": k, "old": was, "new": now}
            for k, was, now in resume_changes(task_cls, state["config"], cfg)
        ]
        task.parts.load_state_dict(state.get("parts", {}))
        streams.load_state_dict(state.get("streams", {}))
        runtime.set_rng_state(state["rng"])
        step = state["step"]
        best = distributed.from_main(lambda: read_best(run_dir) or state.get("best"))
    else:  # what the report needs to know of the task, so that it names none
        events.append({"event": "start", "task": task.name, **task.info.report_fields()})
    if init_from:
        events.append(_init_from(task, cfg, Path(init_from), runtime.device))
    # Every rank starts from rank 0's networks (built from one seed, they agree already).
    distributed.broadcast_modules([*task.parts.nets.values(), *task.parts.ema.values()])
    if main:
        check_room(run_dir / "checkpoints", _checkpoint_state(task, streams, runtime, cfg, step))

    # Only now is the run directory changed: a refused resume leaves it byte for byte as it was.
    if state is not None and main:
        supersede_later(run_dir / "checkpoints", ckpt)
        trim_history(run_dir, step)
        log.info("resumed from %s at step %d", ckpt, step)
    if main:
        save_config(cfg, run_dir / "config.yaml")

    # Phase 4: the steps.
    loop = _Loop(cfg, run_dir, task, streams, runtime, purge_step=step if state else None)
    loop.best = best
    if main:
        if runtime.world > 1:
            events.append(
                {"event": "distributed", "world": runtime.world, "per_rank_batch": per_rank}
            )
        record_events(run_dir, loop.metrics, step, events)
        changed = [f"{e['key']} {e['old']!r} -> {e['new']!r}" for e in events if "key" in e]
        if changed:
            tqdm.write(f"resuming at step {step} with: {'; '.join(changed)}")
        if resume:
            loop.health.replay(read_rows(run_dir / "metrics.jsonl"), until=step)
    step, stopped_by = loop.run(step)
    return TrainOutcome(run_dir, step, stopped_by, main)


class _FiniteGuard:
    """Remembers, on the device, the first step whose outputs were not all finite.

    ``observe`` costs no host synchronisation; ``check`` (one ``.item()``) raises TrainingError
    naming the step, the keys and their values.
    """

    def __init__(self, device: torch.device) -> None:
        self.bad_step = torch.zeros((), dtype=torch.int64, device=device)
        self.keys: tuple[str, ...] = ()
        self.snapshot: torch.Tensor | None = None

    def observe(self, step: int, out: dict[str, torch.Tensor]) -> None:
        keys = tuple(out)
        values = torch.stack(
            [v.detach().float().reshape(()).to(self.bad_step.device) for v in out.values()]
        )
        if keys != self.keys:  # the step's outputs changed: settle the old record first
            if self.snapshot is not None:
                self.check()
            self.keys, self.snapshot = keys, torch.zeros_like(values)
        first = (self.bad_step == 0) & ~torch.isfinite(values).all()
        self.bad_step = torch.where(first, step, self.bad_step)
        self.snapshot = torch.where(first, values, self.snapshot)

    def check(self, advice: str = "", kept: Callable[[], Path | None] = lambda: None) -> None:
        """Raise if a value was non-finite; ``kept()`` names the last good checkpoint, if any.

        Under torchrun every rank calls this at the same steps and all raise together, naming the
        first bad step of any rank.
        """
        bad = int(self.bad_step)
        if distributed.active():
            never = 2**62
            first_bad = distributed.reduce_min(bad or never)
            if first_bad == never:
                return
            if bad != first_bad:
                raise TrainingError(
                    f"a value became non-finite at step {first_bad} in another process: {advice}"
                )
        if not bad:
            return
        assert self.snapshot is not None
        where = kept()  # looked up only when there is something to report
        vals = self.snapshot.tolist()
        names = [k for k, v in zip(self.keys, vals, strict=True) if not math.isfinite(v)]
        first = vals[self.keys.index(names[0])]
        kept = (
            f"; the last good checkpoint, {where}, is kept"
            if where
            else "; no checkpoint had been written yet"
        )
        raise TrainingError(f"{', '.join(names)} became {first} at step {bad}{kept}: {advice}")


_GO, _OUT_OF_TIME, _SIGNALLED = 0, 1, 2
"""Why the loop halts (_Loop.halt), in the order of precedence of distributed.reduce_max."""


class _Loop:
    """Phase 4: the steps, and around them logging, previews, evaluation and checkpoints."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        task: Task,
        streams: Streams,
        rt: Runtime,
        purge_step: int | None = None,
    ):
        self.cfg, self.run_dir, self.task, self.streams, self.rt = cfg, run_dir, task, streams, rt
        self.info, self.ckpts = task.info, run_dir / "checkpoints"
        self.main = rt.rank == 0  # the one writer of the run directory
        self.synced = [*task.parts.nets.values(), *task.parts.ema.values()]
        self.best: dict | None = None
        self.evaluator, self.gen = None, task.generative()
        if cfg.eval.every and self.gen is not None:
            from gankit.evaluation.evaluate import TrainingEvaluator

            # Reading a folder reference seeds DataLoader workers from the global RNG; the
            # training RNG must not move, or a resumed run would differ from a straight one.
            with torch.random.fork_rng(devices=[]):
                self.evaluator = TrainingEvaluator(cfg, rt.device)
        self.metrics = MetricsWriter(run_dir, purge_step) if self.main else NullMetrics()
        health = cfg.health if self.main else dataclasses.replace(cfg.health, enabled=False)
        self.health = HealthMonitor(
            health, self.metrics, self.info.probabilities, self.info.health_advice
        )
        self.guard = _FiniteGuard(rt.device)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}  # per key: lazy penalties report every k-th step only
        self.t_last = time.perf_counter()
        self.deadline: float | None = None  # train.minutes, counted from run()'s first step
        self.halt = _GO

    def checked(self) -> None:
        """Stop here if a value became non-finite since the last check (one host sync)."""
        try:
            self.guard.check(self.info.nan_advice, lambda: latest_or_none(self.ckpts))
        except TrainingError as e:
            self.health.non_finite(int(self.guard.bad_step), str(e))
            raise

    def say(self, text: str) -> None:
        if self.main:
            tqdm.write(text)

    def checkpoint(self, step: int, path: Path | None = None) -> None:
        self.checked()
        distributed.check_agree({**self.task.parts.nets, **self.task.parts.ema})
        if not self.main:
            return
        state = _checkpoint_state(self.task, self.streams, self.rt, self.cfg, step)
        target = path or self.ckpts / f"step-{step:06d}.pt"
        try:
            save_checkpoint({**state, "best": self.best}, target)
        except (OSError, RuntimeError) as e:  # a full disk: torch raises RuntimeError
            raise write_failed(target, state, e) from None
        if path is None:
            prune_checkpoints(self.ckpts, self.cfg.train.keep_ckpts)

    def log_row(self, step: int, bar: tqdm) -> None:
        self.checked()
        now = time.perf_counter()
        distributed.reduce_mean_(list(self.sums.values()))  # every rank logs the same row
        row = {k: (v / self.counts[k]).item() for k, v in self.sums.items()}
        images = self.streams.take_images() * self.rt.world
        row.update(img_per_s=images / max(now - self.t_last, 1e-9), time=time.time())
        self.metrics.write(step, row)
        self.health.observe_row(step, row)
        bar.set_postfix({k: f"{row[k]:.3g}" for k in self.info.progress_keys if k in row})
        self.sums, self.counts, self.t_last = {}, {}, now

    def preview(self, step: int) -> None:
        self.checked()  # before drawing anything that could hold a NaN (and on every rank)
        if not self.main:
            return
        with torch.random.fork_rng(devices=self._devices()):  # the RNGs of all ranks stay equal
            rows = self.task.previews()
        if rows:
            save_preview(rows, self.run_dir / "samples" / f"step-{step:06d}.png")
            if self.info.diversity_row in rows:
                self.health.observe_previews(step, rows[self.info.diversity_row])

    def scores(self, step: int, evaluate) -> dict[str, float]:
        """Run one evaluation and log it; its time is not counted as training time."""
        t0 = time.perf_counter()
        scores = evaluate()
        self.metrics.write(step, {**scores, "time": time.time()})
        text = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
        log.info("step %d: %s", step, text)
        self.say(f"step {step}: {text}")
        self.t_last += time.perf_counter() - t0
        return scores

    def _devices(self) -> list:
        return [self.rt.device] if self.rt.device.type == "cuda" else []

    def task_scores(self, step: int) -> None:
        """The task's own ``evaluate()``: on rank 0 only, without moving any RNG."""
        if self.main:
            with torch.random.fork_rng(devices=self._devices()):
                self.scores(step, self.task.evaluate)

    def stopping(self, stop: StopFlag) -> bool:
        """Whether a signal asked to stop or ``train.minutes`` ran out; under torchrun, whether
        that happened on any rank (all ranks then stop after the same step). ``self.halt`` keeps
        why: _SIGNALLED (on any rank) wins over _OUT_OF_TIME."""
        if stop.requested is not None:
            code = _SIGNALLED
        else:
            code = _OUT_OF_TIME if self.out_of_time() else _GO
        self.halt = distributed.reduce_max(code) if distributed.active() else code
        return self.halt != _GO

    def out_of_time(self) -> bool:
        """Whether this process has trained for ``train.minutes`` (never when unset)."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def evaluate_generative(self, step: int) -> None:
        """``eval.every``: score the task's Generative; a better score keeps ``best.pt``."""
        from gankit.inference.sampling import generate

        self.checked()
        ev, seed, ema = self.evaluator, self.cfg.seed + seeds.EVALUATION, self.cfg.eval.ema
        assert ev is not None

        def score() -> dict[str, float]:
            with torch.random.fork_rng(devices=[]):
                return ev(lambda n: generate(self.gen, n, seed=seed, ema=ema))

        scores = self.scores(step, score)
        if _improves(scores, (ev.key, ev.higher_is_better), self.best):
            self.best = {"key": ev.key, "value": scores[ev.key], "step": step}
            self.checkpoint(step, best_checkpoint(self.run_dir))

    def run(self, step: int) -> tuple[int, str | None]:
        """Steps from ``step`` to ``train.steps`` or a stop signal: (last step, the signal)."""
        cfg, info, total, last_ckpt = self.cfg, self.info, self.cfg.train.steps, step
        minutes = cfg.train.minutes
        self.deadline = None if minutes is None else time.monotonic() + 60 * minutes
        bar = tqdm(
            total=total,
            initial=step,
            desc=cfg.recipe,
            unit="step",
            disable=not cfg.train.progress or not self.main,
            dynamic_ncols=True,
        )
        try:
            with StopFlag() as stop:
                halt = self.stopping(stop)
                while step < total and not halt:
                    out = self.task.step(self.streams)
                    distributed.average_buffers(self.synced)  # BatchNorm statistics
                    step += 1
                    self.guard.observe(step, out)
                    for k, v in out.items():
                        self.sums[k] = self.sums.get(k, 0) + v.detach().float()
                        self.counts[k] = self.counts.get(k, 0) + 1
                    bar.update(1)
                    halt = self.stopping(stop)  # self.halt: the same on every rank
                    # the last step (log, preview, evaluate) also when train.minutes ran out,
                    # decided on every rank alike: a rank-local test would split collectives
                    end = step == total or self.halt == _OUT_OF_TIME
                    if step % cfg.train.log_every == 0 or end:
                        self.log_row(step, bar)
                    if step % cfg.train.sample_every == 0 or end:
                        self.preview(step)
                    if info.eval_every and (step % info.eval_every == 0 or end):
                        self.task_scores(step)
                    if self.evaluator is not None and (step % cfg.eval.every == 0 or end):
                        self.evaluate_generative(step)
                    if step % cfg.train.ckpt_every == 0:
                        self.checkpoint(step)
                        last_ckpt = step
                if step != last_ckpt:
                    self.checkpoint(step)
                stopped_by = stop.requested
                if step < total and stopped_by is None and self.halt == _OUT_OF_TIME:
                    msg = (
                        f"train.minutes={minutes:g} reached at step {step}; continue with: "
                        f"gankit train --resume {self.run_dir}"
                    )
                    log.info(msg)
                    self.say(msg)
                elif step < total and stopped_by is None:
                    stopped_by = "SIGTERM"  # another rank was signalled
                if stopped_by:
                    msg = f"stopped by {stopped_by} at step {step}; continue with: gankit train --resume {self.run_dir}"
                    log.info(msg)
                    self.say(msg)
        finally:
            bar.close()
            self.metrics.close()
        return step, stopped_by
