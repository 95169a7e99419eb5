"""The runtime a task is handed: device, mixed precision and how to prepare a network.

Tasks never ask whether they run on a GPU, in bf16 or compiled: they call ``runtime.prepare(net)``
for the callable to train with and run forward passes inside ``runtime.autocast()``. Under
torchrun the runtime also knows its rank, puts each rank on its own GPU and (``train.sync_bn``)
makes BatchNorm global; gradient averaging lives in :func:`optimizer_step` and per-sample
randomness of a global batch in :meth:`Runtime.rank_rows` (see :mod:`gankit.engine.distributed`), so
tasks never know they are distributed and never import that module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gankit.config import TrainConfig
from gankit.engine import distributed
from gankit.errors import ConfigError

_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda, then mps, then cpu; otherwise the named device, checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"train.device={name!r} is not a device: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "train.device=cuda but no CUDA GPU is visible: use train.device=cpu or auto"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device=mps but MPS is not available: use train.device=cpu or auto")
    return dev


@dataclass
class Runtime:
    """Where and how networks run."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    rank: int = 0
    """This process's rank (0 in a single-process run)."""
    world: int = 1
    """Number of processes training together."""
    sync_bn: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory (one writer per run)."""
        return self.rank == 0

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Runtime:
        w = distributed.world()
        dev = resolve_device(cfg.device)
        if dev.type == "cuda" and w.size > 1 and dev.index is None:
            if w.local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    f"local rank {w.local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                    "start at most one process per GPU (torchrun --nproc_per_node)"
                )
            dev = torch.device("cuda", w.local_rank)
            torch.cuda.set_device(dev)
        if cfg.autocast == "fp16" and dev.type == "cpu":
            raise ConfigError("train.autocast=fp16 needs a GPU: use bf16 on the CPU, or none")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return cls(
            dev,
            _DTYPES[cfg.autocast],
            cfg.channels_last,
            cfg.compile,
            rank=w.rank,
            world=w.size,
            sync_bn=cfg.sync_bn and w.size > 1,
        )

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def prepare(self, net: nn.Module) -> nn.Module:
        """Move ``net`` to the device (in place) and return the callable to train with."""
        if self.sync_bn:
            distributed.convert_sync_batchnorm(net)
        net.to(self.device, memory_format=self.memory_format)
        if self.compile:
            return torch.compile(net)  # type: ignore[return-value]
        return net

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, active only for fp16 (bf16 and fp32 need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def rank_rows(self, draw: Callable[[int], Tensor], n: int) -> Tensor:
        """This rank's ``n`` rows of the global batch's draws (:func:`distributed.rank_rows`)."""
        return distributed.rank_rows(draw, n)

    def mean_over_ranks(self, t: Tensor) -> Tensor:
        """``t`` averaged over the ranks, in place (itself in a single process)."""
        distributed.reduce_mean_([t])
        return t

    def rng_state(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)


def optimizer_step(
    loss: Tensor,
    opt: torch.optim.Optimizer | list[torch.optim.Optimizer],
    scaler: torch.amp.GradScaler,
) -> None:
    """Zero the gradients, backpropagate ``loss`` (scaled for fp16), step ``opt`` (one optimizer
    or several that share the loss, such as CUT's G and its projection heads).

    Under torchrun the gradients of exactly these optimizers' parameters are averaged over the
    processes between the backward and the step (:func:`gankit.engine.distributed.average_gradients`):
    each phase of a GAN step synchronises its own network and nothing else.
    """
    opts = opt if isinstance(opt, list) else [opt]
    for o in opts:
        o.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    distributed.average_gradients(p for o in opts for g in o.param_groups for p in g["params"])
    for o in opts:
        scaler.step(o)
    scaler.update()
