"""The Task protocol: the page to read first.

Every job is *data → task → loop → run directory*. A task owns its networks, optimizers and
losses and knows how to do one training step; the loop (:mod:`gankit.engine.loop`) drives any task and
knows nothing of GANs or classifiers. A task declares, as class attributes and classmethods:

- ``name`` and ``Options``: the task's own config section (``cfg.<name>``, a dataclass);
- ``networks``: ``{part: (kind, default arch)}``, built from ``nets.<part>`` by the registry
  :data:`gankit.nets.NETS`; ``optimizers``: ``{part: default OptimConfig}`` for ``optim.<part>``;
- ``streams(cfg)``: the named batch streams a step draws from (``real``; ``A`` and ``B``;
  ``labelled`` ...), each built by the data layer from its own :class:`StreamSpec`;
- ``structural``: its config keys that a resumed run may not change (see ``config.STRUCTURAL``);
- ``roles``: which of :mod:`gankit.inference.roles` its loaded runs implement (``load_model``).

An instance is built with ``(cfg, runtime, first)`` — ``first`` holds the first batches of every
stream (at least one batch and ``train.n_preview`` images) when ``needs_first_batch`` is set, for
parts that can only be sized from data and for fixed preview inputs — and then offers:

- ``step(batches) -> {name: 0-dim tensor}``: one training step, drawing with
  ``next(batches["real"])``; the values stay on the device (the loop averages them and reads
  them only at log steps);
- ``parts``: a :class:`Parts` of everything its state is made of, which the checkpoint code saves
  and restores generically (hyperparameters come from the config, state from the checkpoint, so
  a resume with a changed learning rate uses the new one);
- ``info``: a :class:`TaskInfo` of progress keys, NaN advice and health hints;
- ``previews()``: named rows of images for ``samples/step-*.png``;
- ``evaluate()``: its own scores every ``info.eval_every`` steps (a classifier's test accuracy);
- ``generative()``: a :class:`~gankit.inference.roles.Generative` view, if it generates images, for
  evaluation during training (``eval.every``).

``tests/test_task_protocol.py`` holds a complete toy task with three networks, two optimizers and
a buffer; docs/design.md walks through it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor, nn

from gankit.config import Config, DataConfig, OptimConfig, TaskSchema
from gankit.config.options import structural_keys
from gankit.engine.runtime import Runtime
from gankit.errors import CheckpointError, ConfigError, first_line
from gankit.nets.base import WeightLayer

if TYPE_CHECKING:
    from gankit.data.sources import ImageData

OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class StreamSpec:
    """One named stream of batches: its source and whether batches carry labels."""

    data: DataConfig
    labels: bool = False
    """Yield ``(uint8 images, int64 labels)`` instead of float images in [-1, 1]."""


@dataclass
class TaskInfo:
    """What the loop shows and checks for a task, so that the loop itself holds no task wording."""

    progress_keys: tuple[str, ...] = ()
    """Step outputs shown on the progress bar."""
    nan_advice: str = "lower the learning rate"
    """Appended to the error when a value becomes non-finite."""
    probabilities: bool = False
    """Whether ``d_real``/``d_fake`` are probabilities (the D-winning health check)."""
    health_advice: dict[str, str] | None = None
    """Config changes to suggest per health event (see :mod:`gankit.engine.health`)."""
    eval_every: int = 0
    """Steps between the task's own ``evaluate()`` calls (0 = never)."""
    diversity_row: str | None = None
    """The preview row whose diversity the collapse check watches."""

    def report_fields(self) -> dict[str, object]:
        """What ``gankit report`` reads of the task (written once into metrics.jsonl)."""
        return {"probabilities": self.probabilities}


GROUPS = ("nets", "ema", "optims", "scheds", "scalers", "buffers", "rngs")


@dataclass
class Parts:
    """Everything a task's state is made of, by name; saved and loaded generically.

    ``scheds`` are position-only schedules (:mod:`gankit.engine.schedules`): loading restores their step
    and re-applies the learning rate they give with the optimizer's current base values.
    ``buffers`` are tensors restored in place (fixed noise, image pools, counters, ADA's p).
    """

    nets: dict[str, nn.Module] = field(default_factory=dict)
    ema: dict[str, nn.Module] = field(default_factory=dict)
    optims: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    scheds: dict[str, Any] = field(default_factory=dict)
    scalers: dict[str, torch.amp.GradScaler] = field(default_factory=dict)
    buffers: dict[str, Tensor] = field(default_factory=dict)
    rngs: dict[str, torch.Generator] = field(default_factory=dict)

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
            "ema": {k: m.state_dict() for k, m in self.ema.items()},
            "optims": {k: o.state_dict() for k, o in self.optims.items()},
            "scheds": {k: s.state_dict() for k, s in self.scheds.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "buffers": {k: t.detach().cpu().clone() for k, t in self.buffers.items()},
            "rngs": {k: g.get_state() for k, g in self.rngs.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any], groups: Iterable[str] = GROUPS) -> None:
        """Restore ``groups`` from ``state``; a CheckpointError names the first part that differs."""
        for group in groups:
            mine, theirs = getattr(self, group), state.get(group, {})
            if mine.keys() != theirs.keys():
                raise CheckpointError(
                    f"checkpoint {group} are {sorted(theirs) or 'none'}, this task has "
                    f"{sorted(mine) or 'none'}: the run was trained with other settings"
                )
            for name, obj in mine.items():
                try:
                    _load_part(group, obj, theirs[name])
                except (KeyError, RuntimeError, ValueError, TypeError) as e:
                    first = first_line(e)
                    raise CheckpointError(
                        f"checkpoint part {group}.{name} does not match this model "
                        f"({type(e).__name__}: {first})"
                    ) from None


def _load_part(group: str, obj: Any, state: Any) -> None:
    if group == "optims":
        # State (moments, step counts) from the checkpoint; hyperparameters from the config the
        # optimizer was just built with, so that `--resume RUN optim.G.lr=...` takes effect.
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in obj.param_groups]
        obj.load_state_dict(state)
        for g, f in zip(obj.param_groups, fresh, strict=True):
            g.update(f)
    elif group == "buffers":
        obj.copy_(state)
    elif group == "rngs":
        obj.set_state(state)
    else:
        obj.load_state_dict(state)


class Streams:
    """The named batch streams handed to ``Task.step``; counts the images drawn."""

    def __init__(self, streams: Mapping[str, Any]) -> None:
        self.streams = dict(streams)
        self._counted = {k: _Counted(v) for k, v in self.streams.items()}

    def __getitem__(self, name: str) -> Iterator:
        try:
            return self._counted[name]
        except KeyError:
            raise KeyError(
                f"no stream {name!r}: the task declared {', '.join(self.streams)}"
            ) from None

    def take_images(self) -> int:
        """Images drawn since the last call."""
        total = sum(c.images for c in self._counted.values())
        for c in self._counted.values():
            c.images = 0
        return total

    def peek(self, images: int = 0) -> dict[str, Any]:
        """The first batches of every stream, at least one and ``images`` images in all (joined),
        leaving every stream where it was."""
        out = {}
        for name, s in self.streams.items():
            state = s.state_dict()
            got = [next(s)]
            while _count(got[-1]) * len(got) < images:
                got.append(next(s))
            s.load_state_dict(state)
            if len(got) == 1:
                out[name] = got[0]
            elif isinstance(got[0], tuple | list):
                out[name] = tuple(torch.cat(parts) for parts in zip(*got, strict=True))
            else:
                out[name] = torch.cat(got)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {k: s.state_dict() for k, s in self.streams.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.keys() != self.streams.keys():
            raise CheckpointError(
                f"checkpoint streams are {sorted(state)}, this task draws from {sorted(self.streams)}"
            )
        for k, s in self.streams.items():
            s.load_state_dict(state[k])


def _count(batch: Any) -> int:
    return (batch[0] if isinstance(batch, tuple | list) else batch).shape[0]


class _Counted:
    def __init__(self, it: Iterator) -> None:
        self.it, self.images = it, 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        batch = next(self.it)
        self.images += _count(batch)
        return batch


def make_optimizer(params: Iterable, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam, RMSprop or SGD from an ``optim.<part>`` section."""
    if cfg.name == "adam":
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, eps=cfg.eps
        )
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    """Switch gradients of every parameter of ``nets`` on or off (off: D inside a G update);
    parameters frozen by :func:`freeze_first_layers` stay off."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag and not getattr(p, "gankit_frozen", False))


_WEIGHT_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def _is_weight_layer(m: nn.Module) -> bool:
    """A torch conv/linear layer, or gankit's own kind (StyleGAN2's equalised layers)."""
    return isinstance(m, (*_WEIGHT_LAYERS, WeightLayer))


def freeze_first_layers(net: nn.Module, k: int, key: str = "gan.freeze_d") -> list[str]:
    """Freeze the first ``k`` weight layers of ``net`` (convolutions and linear layers in
    registration order) with the normalisation layers that follow each (FreezeD, Mo et al.
    2020); returns the names of the frozen modules. Build the optimizer afterwards from the
    parameters that still require gradients."""
    if k <= 0:
        return []
    names = [n for n, m in net.named_modules() if _is_weight_layer(m)]
    if k >= len(names):
        raise ConfigError(
            f"{key}={k} would freeze all {len(names)} weight layers of the discriminator: "
            f"use at most {len(names) - 1}"
        )
    frozen, count = [], 0
    for name, module in net.named_modules():
        if _is_weight_layer(module):
            count += 1
            if count > k:
                break
            params = list(module.parameters())  # with a spectral-norm parametrization's
        elif count:
            params = list(module.parameters(recurse=False))  # a norm layer after it
        else:
            continue
        if params and not all(getattr(p, "gankit_frozen", False) for p in params):
            frozen.append(name)
        for p in params:
            p.requires_grad_(False)
            p.gankit_frozen = True  # type: ignore[attr-defined]
    return frozen


class Task(ABC, Generic[OptionsT]):
    """Base class of every task: declarations with defaults, and the two things to implement.

    Generic over its options dataclass: ``class GANTask(Task[GanOptions])`` reads its section
    typed, ``GANTask.options(cfg).loss``. A section key's default, check and structural flag are
    declared on its field (:func:`gankit.config.options.option`)."""

    name: ClassVar[str]
    Options: ClassVar[type | None] = None
    """The dataclass of the task's config section ``cfg.<name>`` (None: no section)."""
    networks: ClassVar[dict[str, tuple[str, str]]] = {}
    optimizers: ClassVar[dict[str, OptimConfig]] = {}
    structural: ClassVar[tuple[str, ...]] = ()
    """Structural keys outside the task's own section (``train.n_preview`` for a fixed preview
    batch); those of the section are its fields declared ``structural=True``."""
    roles: ClassVar[tuple[type, ...]] = ()
    needs_first_batch: ClassVar[bool] = False

    @classmethod
    def schema(cls) -> TaskSchema:
        sections = {cls.name: cls.Options} if cls.Options is not None else {}
        optims = {k: dataclasses.replace(v) for k, v in cls.optimizers.items()}
        return TaskSchema(sections, dict(cls.networks), optims)

    @classmethod
    def options(cls, cfg: Config) -> OptionsT:
        """This task's section of ``cfg``, typed."""
        return cfg.options[cls.name]

    @classmethod
    def structural_keys(cls) -> tuple[str, ...]:
        """Every key a resumed run may not change, beyond ``config.STRUCTURAL``."""
        return (*cls.structural, *structural_keys(cls.name, cls.Options))

    @classmethod
    def validate(cls, cfg: Config) -> None:
        """Impossible combinations in the task's section (each field's own range is checked from
        its declaration before this is called): raise a one-line ConfigError."""
        return None

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        return {"real": StreamSpec(cfg.data)}

    @classmethod
    def resolve(cls, cfg: Config, data: dict[str, ImageData]) -> None:
        """Settle config values that depend on the data (class names, statistics), in place."""
        return None

    @classmethod
    def batches_per_step(cls, cfg: Config) -> int:
        """Batches one step draws from its first stream (sizes ``train.epochs`` in steps)."""
        return 1

    @classmethod
    def check_resume(cls, old: Config, new: Config) -> None:
        """Refuse, with a ConfigError, a change that ``structural`` patterns cannot express."""
        return None

    @classmethod
    def build_nets(cls, cfg: Config) -> dict[str, nn.Module]:
        """The task's networks by part name (those of ``networks``), freshly initialised, on the
        CPU; ``__init__`` and ``load_model`` both build them here."""
        raise NotImplementedError(f"task {cls.name} builds no networks")

    @classmethod
    def load_model(cls, cfg: Config, parts: dict[str, Any], device: torch.device) -> Any:
        """The run's model for the commands (see ``roles``): only networks, fp32, eval mode."""
        raise ConfigError(f"a {cls.name} run has nothing to load for sampling or evaluation")

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        self.cfg, self.rt = cfg, rt
        self.parts = Parts()
        self.info = TaskInfo()

    @abstractmethod
    def step(self, batches: Streams) -> dict[str, Tensor]:
        """One training step; detached 0-dim tensors, still on the device."""

    def previews(self) -> dict[str, Tensor]:
        """Named rows of images in [-1, 1] for the preview grid (none by default)."""
        return {}

    def evaluate(self) -> dict[str, float]:
        """The task's own scores (called every ``info.eval_every`` steps)."""
        return {}

    def generative(self) -> Any:
        """A :class:`~gankit.inference.roles.Generative` of the task's current networks, or None."""
        return None
