"""Training in several processes (``torchrun``): the process group and what ranks must agree on.

A task never sees this module. The loop starts the group from torchrun's environment, the data
streams take each rank's slice of every global batch, ``tasks.base.optimizer_step`` averages
gradients, and rank 0 alone writes the run directory. The rules that make N processes give the
answer of one:

- **One random stream.** Every rank seeds its RNGs with the run's seed, so they hold the same
  state. A per-sample draw (noise, crop offsets, flips, DiffAugment) is made for the whole global
  batch on every rank, and each rank keeps its own rows (:func:`rank_rows`): N processes use
  exactly the numbers one process would. (Per-rank seeds would give a statistically equivalent
  run, but not the same one, and no test could tell a sync bug from noise.)
- **``train.batch_size`` is global**: each of N ranks trains on batch_size/N images per step, so a
  recipe means the same thing on any number of processes, learning rate included.
- **No DDP wrapper.** Parameters are broadcast from rank 0 once; after each backward, the
  gradients of exactly the optimizers being stepped are flattened into one buffer, all-reduced
  and divided by N (the stylegan3 / R3GAN pattern). A generator update therefore never reduces
  D's gradients, D's forward inside it waits for nothing, a gradient penalty (its
  ``create_graph`` gradients stay local) is reduced with the rest, and there is no reducer that
  another network's backward could service by mistake. ``benchmarks/ddp_scaling.py`` measures
  this against DDP wrappers.
- **Buffers** (BatchNorm statistics) are averaged over ranks after every step, so the EMA and
  the saved networks are identical everywhere; ``train.sync_bn=true`` normalises with the global
  batch's statistics instead (:class:`SyncBatchNorm`, which unlike ``torch.nn.SyncBatchNorm``
  also runs on the CPU).

The process group uses a fresh store per restart attempt: a file on one machine, a prefix of
torchrun's TCP store (``MASTER_ADDR:MASTER_PORT``) across machines (re-using torchrun's store as
it is after a restart failed 6 of 10 times on the 2-core CPU, a file store 0 of 5); each waits at most
``train.dist_timeout``.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gankit.errors import ConfigError, first_line

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the processes that train together."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    restart: int = 0
    """torchrun's restart attempt (``TORCHELASTIC_RESTART_COUNT``): > 0 after a lost worker."""
    run_id: str = ""
    """torchrun's job id (``TORCHELASTIC_RUN_ID``), the same in every attempt."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_WORLD = World()


def world() -> World:
    """The current process's :class:`World` (one process until :func:`start`)."""
    return _WORLD


def env_world(environ: dict[str, str] | None = None) -> World:
    """The :class:`World` that torchrun (or a launcher setting ``RANK``/``WORLD_SIZE``) describes."""
    env = os.environ if environ is None else environ

    def num(key: str, default: int) -> int:
        value = env.get(key, "")
        try:
            return int(value) if value != "" else default
        except ValueError:
            raise ConfigError(f"environment variable {key}={value!r} is not an integer") from None

    size = num("WORLD_SIZE", 1)
    rank = num("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK={rank} WORLD_SIZE={size}: need 0 <= RANK < WORLD_SIZE")
    return World(
        rank=rank,
        size=size,
        local_rank=num("LOCAL_RANK", rank if size == 1 else 0),
        local_size=num("LOCAL_WORLD_SIZE", size),
        restart=num("TORCHELASTIC_RESTART_COUNT", 0),
        run_id=env.get("TORCHELASTIC_RUN_ID", ""),
    )


def _store(w: World, timeout: datetime.timedelta) -> dist.Store:
    """A fresh store for this attempt: a file on one machine, torchrun's TCP endpoint across."""
    if w.local_size == w.size:
        port = os.environ.get("MASTER_PORT", "0")
        name = f"gankit-store-{w.run_id or 'job'}-{port}-{w.restart}"
        return dist.FileStore(str(Path(tempfile.gettempdir()) / name), w.size)
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not host or not port:
        raise ConfigError(
            "WORLD_SIZE > 1 across machines but MASTER_ADDR/MASTER_PORT are not set: launch with "
            "torchrun --nnodes=M --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT"
        )
    try:
        base = dist.TCPStore(
            host, int(port), w.size, is_master=False, timeout=timeout, wait_for_workers=False
        )
    except (RuntimeError, OSError) as e:
        raise ConfigError(
            f"cannot reach the rendezvous store at {host}:{port} within "
            f"{timeout.total_seconds():.0f} s ({type(e).__name__}): check the address, the port "
            "and the firewall, or raise train.dist_timeout"
        ) from None
    return dist.PrefixStore(f"gankit/{w.run_id}/{w.restart}", base)


def device_type(name: str) -> str:
    """``cuda``, ``cpu`` or ``mps`` for a ``train.device`` / ``--device`` value (``auto`` included)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name.split(":")[0]


def start(backend: str = "auto", device_type: str = "cpu", timeout_s: float = 300.0) -> World:
    """Join the process group torchrun describes (no-op for one process); returns the World.

    ``backend``: ``auto`` (NCCL for CUDA devices, gloo otherwise), ``nccl`` or ``gloo``.
    Idempotent: a second call returns the group already started.
    """
    global _WORLD
    w = env_world()
    if w.size == 1 or (dist.is_available() and dist.is_initialized()):
        _WORLD = w
        return w
    if backend not in ("auto", "nccl", "gloo"):
        raise ConfigError(f"train.dist_backend={backend!r}: use auto, nccl or gloo")
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError(
            "train.dist_backend=nccl needs CUDA GPUs and none is visible: use "
            "train.dist_backend=gloo (or auto) to train on CPUs"
        )
    if backend == "nccl" and device_type != "cuda":
        raise ConfigError(
            "train.dist_backend=nccl with a CPU device: use train.device=cuda, or gloo on CPUs"
        )
    timeout = datetime.timedelta(seconds=timeout_s)
    store = _store(w, timeout)
    try:
        dist.init_process_group(
            backend, store=store, rank=w.rank, world_size=w.size, timeout=timeout
        )
    except (RuntimeError, ValueError) as e:
        first = first_line(e)
        raise ConfigError(
            f"could not start the {backend} process group of {w.size} processes within "
            f"{timeout_s:.0f} s ({first}): check that every rank started"
        ) from None
    _WORLD = w
    return w


def stop() -> None:
    """Leave the process group (end of a run); the next :func:`start` joins afresh."""
    global _WORLD
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _WORLD = World()


def active() -> bool:
    """Whether this process trains together with others."""
    return _WORLD.size > 1


def rank_rows(draw: Callable[[int], Tensor], n: int) -> Tensor:
    """``draw(k)`` makes k rows of per-sample randomness; return this rank's ``n`` rows of the
    global batch's ``n · world`` (the same numbers one process would draw for the whole batch)."""
    w = _WORLD
    if w.size == 1:
        return draw(n)
    return draw(n * w.size)[w.rank * n : (w.rank + 1) * n]


def per_rank(total: int, what: str = "train.batch_size") -> int:
    """``total`` split over the ranks: a ConfigError if it does not divide evenly."""
    w = _WORLD
    if total % w.size:
        raise ConfigError(
            f"{what}={total} is the global batch and does not split over {w.size} processes: "
            f"use a multiple of {w.size}"
        )
    return total // w.size


def _flat_mean_(tensors: list[Tensor]) -> None:
    """All-reduce ``tensors`` as one flat buffer per dtype and divide by the world size."""
    by_dtype: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault((t.dtype, t.device), []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat.div_(_WORLD.size)
        offset = 0
        for t in group:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the ranks (those without a gradient are skipped,
    as an optimizer skips them; every rank runs the same code, so the sets agree)."""
    if _WORLD.size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        _flat_mean_(grads)


def average_buffers(modules: Iterable[nn.Module]) -> None:
    """Average every floating-point buffer (BatchNorm statistics) of ``modules`` over the ranks."""
    if _WORLD.size == 1:
        return
    bufs = [b for m in modules for b in m.buffers() if b.is_floating_point()]
    if bufs:
        with torch.no_grad():
            _flat_mean_(bufs)


def broadcast_modules(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if _WORLD.size == 1:
        return
    with torch.no_grad():
        for m in modules:
            for t in [*m.parameters(), *m.buffers()]:
                dist.broadcast(t.data, 0)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable value)."""
    if _WORLD.size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]


def from_main(fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0 and handed to every rank; an exception there is raised on
    every rank (so no rank waits for a value that never comes)."""
    if _WORLD.size == 1:
        return fn()
    if _WORLD.rank == 0:
        try:
            value = fn()
        except Exception as e:
            broadcast_object(("error", e))
            raise
        broadcast_object(("ok", value))
        return value
    kind, value = broadcast_object(None)
    if kind == "error":
        raise value
    return value


def all_gather_rows(x: Tensor) -> Tensor:
    """Every rank's ``x`` (N_r, ...) concatenated in rank order, on every rank (CPU tensors); a
    rank with no rows may pass any empty tensor."""
    if _WORLD.size == 1:
        return x
    parts: list[Any] = [None] * _WORLD.size
    dist.all_gather_object(parts, x.cpu())
    rows = [p for p in parts if p.numel()]
    return torch.cat(rows) if rows else x.cpu()


def reduce_any(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (every rank learns the same answer)."""
    return bool(reduce_max(int(flag)))


def reduce_max(value: int) -> int:
    """The largest ``value`` over the ranks."""
    return _reduce_int(value, dist.ReduceOp.MAX)


def reduce_mean_(tensors: list[Tensor]) -> None:
    """Average ``tensors`` over the ranks in place (logged losses, accuracies)."""
    if _WORLD.size == 1 or not tensors:
        return
    _flat_mean_(tensors)


def reduce_min(value: int) -> int:
    """The smallest ``value`` over the ranks."""
    return _reduce_int(value, dist.ReduceOp.MIN)


def _reduce_int(value: int, op: dist.ReduceOp) -> int:
    if _WORLD.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=op)
    return int(t.item())


def check_agree(modules: dict[str, nn.Module]) -> None:
    """Raise if the ranks' parameters differ (a checksum per module, gathered on every rank)."""
    if _WORLD.size == 1:
        return
    sums = torch.stack(
        [
            torch.stack([t.detach().double().sum() for t in m.state_dict().values()]).sum()
            if m.state_dict()
            else torch.zeros((), dtype=torch.float64)
            for m in modules.values()
        ]
    ).cpu()
    every = all_gather_rows(sums[None])
    bad = [
        k
        for k, col in zip(modules, every.T, strict=True)
        if not torch.equal(col, col[:1].expand_as(col))
    ]
    if bad:
        raise RuntimeError(f"ranks disagree on {', '.join(bad)}: a synchronisation bug")


class _AllSum(torch.autograd.Function):
    """Sum over the ranks, differentiable: the gradient of a sum over ranks is the sum over ranks
    of the gradients (each rank's loss depends on every rank's statistics)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        g = grad.clone()
        dist.all_reduce(g)
        return g


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the global batch of all ranks, on any device (gloo or NCCL).

    Two all-reduces per call: the global mean, then the global sum of squared deviations (the
    two-pass form, as exact as one process's BatchNorm). The reductions are differentiable, so
    their backward all-reduces the gradients of the statistics and the whole batch's gradient
    matches one process's. State and names are BatchNorm2d's, so
    checkpoints load in either.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and active()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        n_local = x.numel() // x.shape[1]
        count = n_local * _WORLD.size
        mean = _AllSum.apply(x.float().sum(dims)) / count
        centred = x.float() - mean.view(1, -1, *([1] * (x.dim() - 2)))
        var = _AllSum.apply(centred.pow(2).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
                self.running_mean.mul_(1 - m).add_(m * mean.detach())  # type: ignore[union-attr]
                unbiased = var.detach() * count / max(count - 1, 1)
                self.running_var.mul_(1 - m).add_(m * unbiased)  # type: ignore[union-attr]
        shape = (1, -1, *([1] * (x.dim() - 2)))
        y = centred / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(net: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d of ``net`` (in place) by :class:`SyncBatchNorm`, keeping the
    same parameter and buffer objects (optimizers built earlier stay valid)."""
    for name, child in list(net.named_children()):
        if isinstance(child, nn.BatchNorm1d | nn.BatchNorm2d) and not isinstance(
            child, SyncBatchNorm
        ):
            new = SyncBatchNorm.__new__(SyncBatchNorm)
            nn.Module.__init__(new)
            new.num_features, new.eps, new.momentum = child.num_features, child.eps, child.momentum
            new.affine, new.track_running_stats = child.affine, child.track_running_stats
            new._parameters = child._parameters
            new._buffers = child._buffers
            new.train(child.training)
            setattr(net, name, new)
        else:
            convert_sync_batchnorm(child)
    return net
