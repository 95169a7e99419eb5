"""What the loop does around the steps, one small object each: the metrics row, the preview grid,
the task's own scores, the evaluation of its generator (with the best checkpoint), checkpoints.

A hook says when it is due (every ``every`` steps, and at the run's last step unless
``at_end`` is off) and acts; the :class:`~gankit.engine.driver.Driver` calls the due ones in
order after each step, on every rank alike (a rank-local decision would split collectives). They
share a :class:`RunContext`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gankit import seeds
from gankit.config import Config, to_dict
from gankit.engine import distributed
from gankit.engine.checkpoint import (
    best_checkpoint,
    latest_or_none,
    prune_checkpoints,
    save_checkpoint,
    write_failed,
)
from gankit.engine.guard import FiniteGuard
from gankit.engine.health import HealthMonitor
from gankit.engine.runtime import Runtime
from gankit.errors import TrainingError
from gankit.inference.sampling import save_preview
from gankit.tasks.base import Streams, Task

log = logging.getLogger("gankit")


def checkpoint_state(task: Task, streams: Streams, rt: Runtime, cfg: Config, step: int) -> dict:
    """Everything a checkpoint holds: the task's parts, the streams' positions, the RNGs, the
    step and the config it was trained with."""
    return {
        "task": task.name,
        "step": step,
        "config": to_dict(cfg),
        "parts": task.parts.state_dict(),
        "streams": streams.state_dict(),
        "rng": rt.rng_state(),
    }


@dataclass
class RunContext:
    """What the hooks share: the run, its writers and monitors, and the training clock."""

    cfg: Config
    run_dir: Path
    task: Task
    streams: Streams
    rt: Runtime
    metrics: Any
    """A :class:`~gankit.engine.metrics_log.MetricsWriter` on rank 0, a null writer elsewhere."""
    health: HealthMonitor
    guard: FiniteGuard
    bar: tqdm | None = None
    t_last: float = field(default_factory=time.perf_counter)
    """Where the training clock stands (evaluations move it on: they are not training time)."""

    @property
    def main(self) -> bool:
        return self.rt.is_main

    def checked(self) -> None:
        """Stop here if a value became non-finite since the last check (one host sync)."""
        kept = lambda: latest_or_none(self.run_dir / "checkpoints")  # noqa: E731
        try:
            self.guard.check(self.task.info.nan_advice, kept)
        except TrainingError as e:
            self.health.non_finite(int(self.guard.bad_step), str(e))
            raise

    def say(self, text: str) -> None:
        if self.main:
            tqdm.write(text)

    def devices(self) -> list:
        """The devices whose RNG a side computation must leave as it found it."""
        return [self.rt.device] if self.rt.device.type == "cuda" else []

    def scores(self, step: int, evaluate: Callable[[], dict[str, float]]) -> dict[str, float]:
        """Run one evaluation and log it; its time is not counted as training time."""
        t0 = time.perf_counter()
        scores = evaluate()
        self.metrics.write(step, {**scores, "time": time.time()})
        text = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
        log.info("step %d: %s", step, text)
        self.say(f"step {step}: {text}")
        self.t_last += time.perf_counter() - t0
        return scores


class Hook:
    """Something done every ``every`` steps (0: never) and, if ``at_end``, at the last step."""

    every: int = 0
    at_end: bool = True

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def due(self, step: int, end: bool) -> bool:
        return bool(self.every) and (step % self.every == 0 or (end and self.at_end))

    def __call__(self, step: int) -> None:
        raise NotImplementedError


class LogRow(Hook):
    """``train.log_every``: the mean of every step output since the last row, images per second,
    to metrics.jsonl/TensorBoard, the health monitor and the progress bar."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.every = ctx.cfg.train.log_every
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}  # per key: lazy penalties report every k-th step only

    def add(self, out: dict[str, torch.Tensor]) -> None:
        """Accumulate one step's outputs on the device (no host synchronisation)."""
        for k, v in out.items():
            self.sums[k] = self.sums.get(k, 0) + v.detach().float()
            self.counts[k] = self.counts.get(k, 0) + 1

    def __call__(self, step: int) -> None:
        ctx = self.ctx
        ctx.checked()
        now = time.perf_counter()
        distributed.reduce_mean_(list(self.sums.values()))  # every rank logs the same row
        row = {k: (v / self.counts[k]).item() for k, v in self.sums.items()}
        images = ctx.streams.take_images() * ctx.rt.world
        row.update(img_per_s=images / max(now - ctx.t_last, 1e-9), time=time.time())
        ctx.metrics.write(step, row)
        ctx.health.observe_row(step, row)
        if ctx.bar is not None:
            keys = ctx.task.info.progress_keys
            ctx.bar.set_postfix({k: f"{row[k]:.3g}" for k in keys if k in row})
        self.sums, self.counts, ctx.t_last = {}, {}, now


class Preview(Hook):
    """``train.sample_every``: the task's preview rows as ``samples/step-N.png`` (rank 0), and
    the collapse check on the row the task names."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.every = ctx.cfg.train.sample_every

    def __call__(self, step: int) -> None:
        ctx = self.ctx
        ctx.checked()  # before drawing anything that could hold a NaN (and on every rank)
        if not ctx.main:
            return
        with torch.random.fork_rng(devices=ctx.devices()):  # the RNGs of all ranks stay equal
            rows = ctx.task.previews()
        if rows:
            save_preview(rows, ctx.run_dir / "samples" / f"step-{step:06d}.png")
            row = ctx.task.info.diversity_row
            if row in rows:
                ctx.health.observe_previews(step, rows[row])


class TaskScores(Hook):
    """The task's own ``evaluate()`` every ``info.eval_every`` steps: rank 0, no RNG moved."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.every = ctx.task.info.eval_every

    def __call__(self, step: int) -> None:
        ctx = self.ctx
        if ctx.main:
            with torch.random.fork_rng(devices=ctx.devices()):
                ctx.scores(step, ctx.task.evaluate)


class Checkpoints(Hook):
    """``train.ckpt_every``: a complete checkpoint, written atomically (rank 0), older ones
    pruned to ``train.keep_ckpts``; :meth:`write` also serves the best checkpoint and the last."""

    at_end = False  # the driver writes the last step's checkpoint once the loop has ended

    def __init__(self, ctx: RunContext, step: int) -> None:
        super().__init__(ctx)
        self.every, self.last = ctx.cfg.train.ckpt_every, step
        self.best: dict | None = None

    def __call__(self, step: int) -> None:
        self.write(step)
        self.last = step

    def write(self, step: int, path: Path | None = None) -> None:
        ctx = self.ctx
        ctx.checked()
        distributed.check_agree({**ctx.task.parts.nets, **ctx.task.parts.ema})
        if not ctx.main:
            return
        state = checkpoint_state(ctx.task, ctx.streams, ctx.rt, ctx.cfg, step)
        target = path or ctx.run_dir / "checkpoints" / f"step-{step:06d}.pt"
        try:
            save_checkpoint({**state, "best": self.best}, target)
        except (OSError, RuntimeError) as e:  # a full disk: torch raises RuntimeError
            raise write_failed(target, state, e) from None
        if path is None:
            prune_checkpoints(ctx.run_dir / "checkpoints", ctx.cfg.train.keep_ckpts)


class Evaluate(Hook):
    """``eval.every``: score the task's Generative (FID, KID, ...); a better score than the best
    so far writes the complete checkpoint of that step to ``checkpoints/best.pt``."""

    def __init__(self, ctx: RunContext, evaluator: Any, checkpoints: Checkpoints) -> None:
        super().__init__(ctx)
        self.every = ctx.cfg.eval.every
        self.evaluator, self.checkpoints = evaluator, checkpoints
        self.gen = ctx.task.generative()

    def __call__(self, step: int) -> None:
        from gankit.inference.sampling import generate

        ctx = self.ctx
        ctx.checked()
        ev, seed, ema = self.evaluator, ctx.cfg.seed + seeds.EVALUATION, ctx.cfg.eval.ema

        def score() -> dict[str, float]:
            with torch.random.fork_rng(devices=[]):
                return ev(lambda n: generate(self.gen, n, seed=seed, ema=ema))

        scores = ctx.scores(step, score)
        best = self.checkpoints.best
        if improves(scores, (ev.key, ev.higher_is_better), best):
            self.checkpoints.best = {"key": ev.key, "value": scores[ev.key], "step": step}
            self.checkpoints.write(step, best_checkpoint(ctx.run_dir))


def improves(scores: dict[str, float], best_metric: tuple[str, bool], best: dict | None) -> bool:
    """Whether ``scores`` beat the ``best`` record (a record for another key does not count)."""
    key, higher = best_metric
    value = scores.get(key)
    if value is None or not math.isfinite(value):
        return False
    if not best or best.get("key") != key:
        return True
    return value > best["value"] if higher else value < best["value"]
