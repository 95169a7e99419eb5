"""The config's typed sections: data, train, health, eval, optimizers and the run's ``Config``;
the keys a resumed run may not change; the keys of gankit 0.1 that moved; what parsing needs to
know of the registries (:class:`Schema`)."""

from __future__ import annotations

import fnmatch
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from gankit.errors import ConfigError

T = TypeVar("T")


@dataclass
class DataConfig:
    """Where images come from and how they become tensors."""

    source: str = "builtin:mnist"
    """builtin:mnist | mnist | fashion-mnist | cifar10 | folder:PATH | lmdb:PATH; paired data
    (pix2pix): aligned:PATH (A|B side by side) | paired:PATH_A,PATH_B (matching file names)"""
    root: str | None = None
    """Folder holding torchvision datasets (mnist, fashion-mnist, cifar10)."""
    split: Literal["train", "test"] = "train"
    image_size: int = 32
    channels: Literal[1, 3] = 1
    fit: Literal["resize", "pad"] = "resize"
    """resize: scale the shorter side and centre-crop; pad: centre-pad without scaling."""
    random_crop: bool = False
    """Store images at load_size and take a random image_size crop per sample each step."""
    load_size: int | None = None
    flip: bool = False
    """Random horizontal flips."""
    strict: bool = False
    """Fail on the first unreadable image instead of skipping and counting it."""
    in_memory: Literal["auto", "yes", "no"] = "auto"
    """Decode the whole dataset once into a uint8 tensor on the training device."""
    memory_limit_mb: int = 4096
    limit: int | None = None
    """Use only the first N images."""
    labels_per_class: int | None = None
    """Keep the labels of only N images per class (drawn with the run's seed) for the streams that
    read labels; the semi-supervised GAN (task ssgan) still sees every image, unlabelled."""
    workers: int = 2


@dataclass
class TrainConfig:
    """The loop: length, logging, checkpoints, device and speed switches."""

    steps: int = 2000
    """Training steps (for a GAN: generator updates)."""
    epochs: float | None = None
    """If set, overrides steps: ceil(epochs × dataset size / (batch_size × batches per step))."""
    minutes: float | None = None
    """Stop (with a checkpoint and a last preview) after this many minutes of steps in this
    process, or at train.steps, whichever comes first; schedules still count train.steps."""
    batch_size: int = 64
    """The global batch: under torchrun each of N processes trains on batch_size / N images."""
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 1000
    keep_ckpts: int = 3
    n_preview: int = 64
    device: str = "auto"
    """auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps"""
    channels_last: bool = False
    autocast: Literal["none", "bf16", "fp16"] = "none"
    compile: bool = False
    threads: int | None = None
    """torch CPU threads; None = torch's default."""
    progress: bool = True
    sync_bn: bool = False
    """Under torchrun: BatchNorm uses the statistics of the global batch (all processes)."""
    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Under torchrun: auto = NCCL on CUDA devices, gloo on CPUs."""
    dist_timeout: float = 300.0
    """Under torchrun: seconds to wait for the other processes (start-up, each collective)."""


@dataclass
class HealthConfig:
    """Training-health warnings during a run (``gankit.engine.health``): D winning, D too weak,
    collapse, NaN."""

    enabled: bool = True
    d_win_steps: int = 5
    """Logged steps in a row with D(x) > d_win_real and D(G(z)) < d_win_fake before warning."""
    d_win_real: float = 0.95
    d_win_fake: float = 0.05
    d_weak_steps: int = 20
    """Logged steps in a row with D(x) and D(G(z)) both near 0.5 before warning that D is too weak."""
    d_weak_margin: float = 0.05
    """How near 0.5 (the chance output of D) counts as near."""
    collapse_fraction: float = 0.3
    """Warn when the previews' diversity falls below this fraction of its early value."""
    collapse_warmup: int = 3
    """The early value is the maximum over this many first previews."""


@dataclass
class EvalConfig:
    """Scoring a GAN during training (``gankit.evaluation.evaluate``); the best score keeps ``checkpoints/best.pt``."""

    every: int = 0
    """Steps between evaluations (and once at the end); 0 = never."""
    metric: Literal["fid", "kid", "precision", "recall", "density", "coverage"] = "fid"
    """The score logged as eval_<metric> and used for best.pt; fid and kid: lower is better."""
    n: int = 1000
    """Samples per evaluation (from fixed noise) and reference images."""
    ref: str | None = None
    """Reference data.source; None = the training data.source (without data.limit)."""
    root: str | None = None
    """data.root of the reference; None = the training data.root."""
    features: str = "inception"
    """inception (the FID Inception) or classifier:RUN (a gankit classifier run's features)."""
    inception: str | None = None
    """Path of the FID Inception; None = $GANKIT_INCEPTION or the cache folder (downloaded)."""
    resizer: Literal["legacy-tensorflow", "clean", "legacy-pytorch", "pil-bilinear"] = (
        "legacy-tensorflow"
    )
    """How images are brought to the Inception's 299x299, as ``gankit evaluate --resizer``
    (gankit.evaluation.metrics.resize); only with ``features=inception``."""
    ema: bool = True
    """Sample with the EMA generator when the run has one."""


@dataclass
class OptimConfig:
    """One network's optimizer (``optim.<net>``)."""

    name: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.0
    weight_decay: float = 0.0
    eps: float = 1e-8
    """Adam's ε, added to √v̂ (Theano-era code that adds 1e-8 under the root acts like 1e-4)."""


@dataclass
class Config:
    """Everything a run needs; written to ``RUN/config.yaml``.

    ``nets`` and ``optim`` are named by the task (``nets.G``, ``optim.D``, ...): each ``nets.X``
    holds the options dataclass of its architecture, registered in :mod:`gankit.nets`. The task's
    own sections (``gan``, ``classifier``, ...) live in ``options``, by name; code reads one
    typed with :meth:`section` (``cfg.section(GanOptions)``), or ``Task.options(cfg)``.
    """

    recipe: str = "custom"
    description: str = ""
    task: str = "gan"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    nets: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, OptimConfig] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def section(self, kind: type[T]) -> T:
        """The task section of type ``kind`` (``cfg.section(GanOptions)``), typed; a ConfigError
        when this run's task has none."""
        for value in self.options.values():
            if isinstance(value, kind):
                return value
        raise ConfigError(f"a {self.task} run's config has no {kind.__name__} section")


CORE_SECTIONS = ("recipe", "description", "task", "seed", "data", "train", "health", "eval")
"""Top-level keys every config has; ``nets``, ``optim`` and the task sections come from the schema."""


STRUCTURAL = (
    "task",
    "seed",
    "nets.*",
    "optim.*.name",
    "data.source",
    "data.root",
    "data.split",
    "data.image_size",
    "data.channels",
    "data.fit",
    "data.load_size",
    "data.random_crop",
    "data.limit",
    "data.in_memory",
    "data.memory_limit_mb",
    "train.batch_size",
)
"""Keys (fnmatch patterns) a resumed run cannot change: they shape the parts or the data order.

Everything else is tunable on resume and applies from the resume step on; a task adds its own
structural keys in ``Task.structural``.
"""


MOVED = {
    "model.arch": "nets.G.arch and nets.D.arch",
    "model.nz": "nets.G.nz",
    "model.ngf": "nets.G.ngf",
    "model.ndf": "nets.D.ndf",
    "model.n_extra_layers": "nets.G.n_extra_layers and nets.D.n_extra_layers",
    "model.g_norm": "nets.G.norm",
    "model.d_norm": "nets.D.norm",
    "model.upsample": "nets.G.upsample",
    "model.g_hidden": "nets.G.hidden",
    "model.d_hidden": "nets.D.hidden",
    "model.noise": "gan.noise",
    "model.init": "nets.G.init and nets.D.init",
    "optim_g": "optim.G",
    "optim_d": "optim.D",
    "classifier.arch": "nets.net.arch",
    "classifier.num_blocks": "nets.net.num_blocks",
    "classifier.nf": "nets.net.nf",
}
"""Keys of gankit 0.1 and their new names: an old key fails with a one-line pointer to the new one."""


@dataclass
class TaskSchema:
    """What parsing needs to know of one task: its sections, networks and optimizers."""

    sections: dict[str, type]
    """Section name -> options dataclass (e.g. ``{"gan": GanOptions}``)."""
    nets: dict[str, tuple[str, str]]
    """Network name -> (kind, default arch), e.g. ``{"G": ("generator", "dcgan")}``."""
    optims: dict[str, OptimConfig]
    """Optimizer name -> its default settings."""


class Schema(typing.Protocol):
    """The registries, as config parsing sees them (implemented by :mod:`gankit.registries`)."""

    def task(self, name: str) -> TaskSchema: ...
    def net_options(self, kind: str, arch: str, key: str) -> type: ...
    def owner(self, section: str) -> str | None: ...


def is_structural(key: str, extra: typing.Iterable[str] = ()) -> bool:
    """Whether ``key`` (dotted) matches :data:`STRUCTURAL` or the task's ``extra`` patterns."""
    return any(fnmatch.fnmatchcase(key, p) for p in (*STRUCTURAL, *extra))
