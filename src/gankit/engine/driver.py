"""The loop proper: step the task, run the hooks that are due, stop on a signal or the clock.

The driver holds no model logic and no bookkeeping of its own: a step is ``task.step(streams)``,
everything around it is a hook (:mod:`gankit.engine.hooks`), and stopping is a signal
(:class:`StopFlag`) or ``train.minutes``, agreed on by every rank.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from pathlib import Path

import torch
from tqdm import tqdm

from gankit.config import Config
from gankit.engine import distributed
from gankit.engine.guard import FiniteGuard
from gankit.engine.health import HealthMonitor
from gankit.engine.hooks import (
    Checkpoints,
    Evaluate,
    Hook,
    LogRow,
    Preview,
    RunContext,
    TaskScores,
)
from gankit.engine.metrics_log import MetricsWriter, NullMetrics
from gankit.engine.runtime import Runtime
from gankit.tasks.base import Streams, Task

log = logging.getLogger("gankit")

GO, OUT_OF_TIME, SIGNALLED = 0, 1, 2
"""Why the loop halts (``Driver.halt``), in the order of precedence of distributed.reduce_max."""


class StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class Driver:
    """Steps from a start step to ``train.steps``, the hooks after each, until a stop."""

    def __init__(
        self, ctx: RunContext, log_row: LogRow, hooks: list[Hook], ckpts: Checkpoints
    ) -> None:
        self.ctx, self.log_row, self.hooks, self.ckpts = ctx, log_row, hooks, ckpts
        self.synced = [*ctx.task.parts.nets.values(), *ctx.task.parts.ema.values()]
        self.deadline: float | None = None  # train.minutes, counted from run()'s first step
        self.halt = GO

    def stopping(self, stop: StopFlag) -> bool:
        """Whether a signal asked to stop or ``train.minutes`` ran out; under torchrun, whether
        that happened on any rank (all ranks then stop after the same step). ``self.halt`` keeps
        why: SIGNALLED (on any rank) wins over OUT_OF_TIME."""
        if stop.requested is not None:
            code = SIGNALLED
        else:
            out = self.deadline is not None and time.monotonic() >= self.deadline
            code = OUT_OF_TIME if out else GO
        self.halt = distributed.reduce_max(code) if distributed.active() else code
        return self.halt != GO

    def run(self, step: int) -> tuple[int, str | None]:
        """Steps from ``step`` to ``train.steps`` or a stop: (last step, the signal if any)."""
        ctx, total = self.ctx, self.ctx.cfg.train.steps
        minutes = ctx.cfg.train.minutes
        self.deadline = None if minutes is None else time.monotonic() + 60 * minutes
        ctx.bar = tqdm(
            total=total,
            initial=step,
            desc=ctx.cfg.recipe,
            unit="step",
            disable=not ctx.cfg.train.progress or not ctx.main,
            dynamic_ncols=True,
        )
        try:
            with StopFlag() as stop:
                step = self._steps(step, total, stop)
                if step != self.ckpts.last:
                    self.ckpts.write(step)
                return step, self._stopped_by(step, total, stop)
        finally:
            ctx.bar.close()
            ctx.metrics.close()

    def _steps(self, step: int, total: int, stop: StopFlag) -> int:
        ctx = self.ctx
        halt = self.stopping(stop)
        while step < total and not halt:
            out = ctx.task.step(ctx.streams)
            distributed.average_buffers(self.synced)  # BatchNorm statistics
            step += 1
            ctx.guard.observe(step, out)
            self.log_row.add(out)
            ctx.bar.update(1)
            halt = self.stopping(stop)  # self.halt: the same on every rank
            # the last step (log, preview, evaluate) also when train.minutes ran out, decided
            # on every rank alike: a rank-local test would split collectives
            end = step == total or self.halt == OUT_OF_TIME
            for hook in self.hooks:
                if hook.due(step, end):
                    hook(step)
        return step

    def _stopped_by(self, step: int, total: int, stop: StopFlag) -> str | None:
        """The signal that stopped the run early (said, with how to continue), else None."""
        ctx, stopped_by = self.ctx, stop.requested
        resume = f"continue with: gankit train --resume {ctx.run_dir}"
        if step < total and stopped_by is None and self.halt == OUT_OF_TIME:
            msg = f"train.minutes={ctx.cfg.train.minutes:g} reached at step {step}; {resume}"
            log.info(msg)
            ctx.say(msg)
        elif step < total and stopped_by is None:
            stopped_by = "SIGTERM"  # another rank was signalled
        if stopped_by:
            msg = f"stopped by {stopped_by} at step {step}; {resume}"
            log.info(msg)
            ctx.say(msg)
        return stopped_by


def make_driver(
    cfg: Config,
    run_dir: Path,
    task: Task,
    streams: Streams,
    rt: Runtime,
    step: int,
    purge_step: int | None = None,
) -> Driver:
    """The driver of a run at ``step``, with its hooks in the order they run after a step: the
    metrics row, the preview, the task's scores, the generator's evaluation, the checkpoint."""
    metrics = MetricsWriter(run_dir, purge_step) if rt.is_main else NullMetrics()
    health_cfg = cfg.health if rt.is_main else dataclasses.replace(cfg.health, enabled=False)
    info = task.info
    health = HealthMonitor(health_cfg, metrics, info.probabilities, info.health_advice)
    ctx = RunContext(cfg, run_dir, task, streams, rt, metrics, health, FiniteGuard(rt.device))
    log_row, ckpts = LogRow(ctx), Checkpoints(ctx, step)
    hooks: list[Hook] = [log_row, Preview(ctx), TaskScores(ctx)]
    if cfg.eval.every and task.generative() is not None:
        from gankit.evaluation.evaluate import TrainingEvaluator

        # Reading a folder reference seeds DataLoader workers from the global RNG; the training
        # RNG must not move, or a resumed run would differ from a straight one.
        with torch.random.fork_rng(devices=[]):
            evaluator = TrainingEvaluator(cfg, rt.device)
        hooks.append(Evaluate(ctx, evaluator, ckpts))
    hooks.append(ckpts)
    return Driver(ctx, log_row, hooks, ckpts)
