"""The one training loop: any task, any device, resumable, interruptible, logged.

``train`` runs in named phases — set up the run directory, load data, build the task, restore a
checkpoint, step, finish — and knows nothing of the model beyond the task interface:
``step(batches) -> dict of scalar tensors``, ``sample()``, ``state_dict()``, ``load_state_dict()``
and ``images_per_step``. Optional capabilities, read off the task class: ``needs_labels`` (the
stream yields ``(images, labels)``), ``resolve_config(cfg, data)`` (settle data-dependent config
before the task is built), ``has_previews = False`` (no ``sample``), ``evaluate()`` every
``eval_every`` steps and at the end, ``nan_hint`` (advice when a value becomes non-finite), and
``d_is_probability`` / ``health_advice()`` for the training-health checks (``gankit.health``).

Best checkpoint: a task with ``evaluate()`` may name one of its scores in ``best_metric`` as
``(key, higher_is_better)`` (None: no best). Whenever an evaluation beats the best so far, the
loop writes the complete checkpoint of that step to ``checkpoints/best.pt`` (atomically; never
pruned, never used to resume) with ``{"key", "value", "step"}`` under ``"best"``; step checkpoints
carry the same record, and a resumed run reads it back from ``best.pt`` so that only a better
score replaces it. ``prepare_evaluation()``, if present, is called once before the first step so
that evaluation set-up (reference data, feature networks) fails at start-up, not mid-run.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

from gankit.checkpoint import (
    best_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    read_best,
    save_checkpoint,
)
from gankit.config import Config, save_config, to_dict
from gankit.data.sources import load_source
from gankit.data.stream import make_stream
from gankit.errors import TrainingError
from gankit.health import HealthMonitor, read_rows
from gankit.runtime import Runtime
from gankit.sampling import save_grid
from gankit.tasks import TASKS

log = logging.getLogger("gankit")


def new_run_dir(recipe: str, base: str | Path = "runs") -> Path:
    """``runs/<recipe>-<YYYYmmdd-HHMMSS>``, made unique with a suffix if needed."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{recipe}-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = Path(base) / f"{recipe}-{stamp}-{k}"
    return path


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


class MetricsWriter:
    """One JSON object per logged step in ``metrics.jsonl``, mirrored to TensorBoard."""

    def __init__(self, run_dir: Path):
        self.file = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tb"))

    def write(self, step: int, values: dict[str, float]) -> None:
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if k != "time":
                self.tb.add_scalar(k, v, step)

    def event(self, step: int, record: dict) -> None:
        """A non-scalar row, such as a training-health event (JSONL only)."""
        self.file.write(json.dumps({"step": step, **record}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def _improves(scores: dict[str, float], best_metric: tuple[str, bool], best: dict | None) -> bool:
    """Whether ``scores`` beat the ``best`` record (a record for another key does not count)."""
    key, higher = best_metric
    value = scores.get(key)
    if value is None or not math.isfinite(value):
        return False
    if not best or best.get("key") != key:
        return True
    return value > best["value"] if higher else value < best["value"]


def _checkpoint_state(task, stream, runtime: Runtime, cfg: Config, step: int) -> dict:
    return {
        "task": task.name,
        "step": step,
        "config": to_dict(cfg),
        "task_state": task.state_dict(),
        "data": stream.state_dict(),
        "rng": runtime.rng_state(),
    }


def train(cfg: Config, run_dir: str | Path | None = None, resume: bool = False) -> Path:
    """Train ``cfg`` in ``run_dir`` (new, or existing with ``resume``); return the run directory.

    Stops early, after writing a checkpoint, on SIGINT/SIGTERM. A non-finite loss raises
    TrainingError and leaves the last good checkpoint untouched.
    """
    # Phase 1: run directory and reproducibility.
    run_dir = Path(run_dir) if run_dir else new_run_dir(cfg.recipe)
    created = not run_dir.exists()
    for sub in ("samples", "checkpoints"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    handler = _setup_logging(run_dir)
    try:
        try:
            return _train(cfg, run_dir, resume)
        finally:
            log.removeHandler(handler)
            handler.close()
    except BaseException:
        if created and not (run_dir / "metrics.jsonl").exists():
            # A new run that failed while setting up (bad data, missing device, ...) holds only
            # its config; leaving it would clutter runs/. Once steps ran (metrics.jsonl exists),
            # everything is kept for the post-mortem.
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _train(cfg: Config, run_dir: Path, resume: bool) -> Path:
    """Phases 2-4 of :func:`train`, in a run directory that exists and is logged to."""
    torch.manual_seed(cfg.seed)
    runtime = Runtime.from_config(cfg.train)

    # Phase 2: data.
    task_cls = TASKS[cfg.task]
    labelled = getattr(task_cls, "needs_labels", False)
    data = load_source(cfg.data, progress=cfg.train.progress, with_labels=labelled)
    if data.skipped:
        (run_dir / "data_skipped.txt").write_text("\n".join(data.skipped) + "\n")
        msg = f"skipped {len(data.skipped)} unreadable image(s) of {len(data) + len(data.skipped)}; list in {run_dir / 'data_skipped.txt'}"
        log.warning(msg)
        tqdm.write(f"warning: {msg}")
    stream = make_stream(
        data, cfg.data, cfg.train.batch_size, runtime.device, cfg.seed, with_labels=labelled
    )

    # Phase 3: task, and the checkpoint to continue from.
    if hasattr(task_cls, "resolve_config"):
        task_cls.resolve_config(cfg, data)
        save_config(cfg, run_dir / "config.yaml")
    task = task_cls(cfg, runtime)
    previews = getattr(task, "has_previews", True)
    evaluate = getattr(task, "evaluate", None)
    eval_every = getattr(task, "eval_every", 0) if evaluate else 0
    best_metric = getattr(task, "best_metric", None) if eval_every else None
    best: dict | None = None
    nan_hint = getattr(
        task, "nan_hint", "lower the learning rates or try gan.loss=wgan-gp / model.d_norm=spectral"
    )
    if cfg.train.epochs:
        per_step = cfg.train.batch_size * task.batches_per_step
        cfg.train.steps = math.ceil(cfg.train.epochs * len(data) / per_step)
        save_config(cfg, run_dir / "config.yaml")
        log.info(
            "train.epochs=%s over %d images: %d steps", cfg.train.epochs, len(data), cfg.train.steps
        )
    step = 0
    if resume:
        ckpt = latest_checkpoint(run_dir)
        state = load_checkpoint(ckpt, runtime.device)
        task.load_state_dict(state["task_state"])
        stream.load_state_dict(state["data"])
        runtime.set_rng_state(state["rng"])
        step = state["step"]
        log.info("resumed from %s at step %d", ckpt, step)
        best = read_best(run_dir) or state.get("best")

    def checkpoint(at: int) -> None:
        save_checkpoint(
            {**_checkpoint_state(task, stream, runtime, cfg, at), "best": best},
            run_dir / "checkpoints" / f"step-{at:06d}.pt",
        )
        prune_checkpoints(run_dir / "checkpoints", cfg.train.keep_ckpts)

    if eval_every and hasattr(task, "prepare_evaluation"):
        task.prepare_evaluation()

    # Phase 4: the steps.
    metrics = MetricsWriter(run_dir)
    advice = getattr(task, "health_advice", None)
    health = HealthMonitor(
        cfg.health,
        metrics,
        probabilities=getattr(task, "d_is_probability", False),
        advice=advice() if advice else None,
    )
    if resume:
        health.replay(read_rows(run_dir / "metrics.jsonl"), until=step)
    sums: dict[str, torch.Tensor] = {}
    n_sum, images, t_last, last_ckpt = 0, 0, time.perf_counter(), step
    bar = tqdm(
        total=cfg.train.steps,
        initial=step,
        desc=cfg.recipe,
        unit="step",
        disable=not cfg.train.progress,
        dynamic_ncols=True,
    )
    try:
        with _StopFlag() as stop:
            while step < cfg.train.steps and not stop.requested:
                images += task.images_per_step
                out = task.step(stream)
                step += 1
                values = torch.stack([v.float() for v in out.values()])
                if not bool(torch.isfinite(values).all()):
                    bad = [
                        k for k, v in zip(out, values.tolist(), strict=True) if not math.isfinite(v)
                    ]
                    msg = (
                        f"{', '.join(bad)} became {values[list(out).index(bad[0])].item()} at step {step}; "
                        f"the last good checkpoint is kept in {run_dir / 'checkpoints'}: {nan_hint}"
                    )
                    health.non_finite(step, msg)
                    raise TrainingError(msg)
                for k, v in out.items():
                    sums[k] = sums.get(k, 0) + v.float()
                n_sum += 1
                bar.update(1)
                if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                    now = time.perf_counter()
                    row = {k: (v / n_sum).item() for k, v in sums.items()}
                    row.update(img_per_s=images / max(now - t_last, 1e-9), time=time.time())
                    metrics.write(step, row)
                    health.observe_row(step, row)
                    bar.set_postfix(
                        {
                            k: f"{v:.3g}"
                            for k, v in row.items()
                            if k in ("loss_d", "loss_g", "d_real", "d_fake", "loss", "acc")
                        }
                    )
                    sums, n_sum, images, t_last = {}, 0, 0, now
                if previews and (step % cfg.train.sample_every == 0 or step == cfg.train.steps):
                    grid = task.sample()
                    save_grid(grid, run_dir / "samples" / f"step-{step:06d}.png")
                    health.observe_previews(step, grid)
                if eval_every and (step % eval_every == 0 or step == cfg.train.steps):
                    t_eval = time.perf_counter()
                    scores = evaluate()
                    metrics.write(step, {**scores, "time": time.time()})
                    text = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
                    log.info("step %d: %s", step, text)
                    tqdm.write(f"step {step}: {text}")
                    if best_metric and _improves(scores, best_metric, best):
                        best = {
                            "key": best_metric[0],
                            "value": scores[best_metric[0]],
                            "step": step,
                        }
                        save_checkpoint(
                            {**_checkpoint_state(task, stream, runtime, cfg, step), "best": best},
                            best_checkpoint(run_dir),
                        )
                    t_last += time.perf_counter() - t_eval  # img_per_s counts training only
                if step % cfg.train.ckpt_every == 0:
                    checkpoint(step)
                    last_ckpt = step
            if step != last_ckpt:
                checkpoint(step)
            if stop.requested:
                msg = f"stopped by {stop.requested} at step {step}; continue with: gankit train --resume {run_dir}"
                log.info(msg)
                tqdm.write(msg)
    finally:
        bar.close()
        metrics.close()
    return run_dir
