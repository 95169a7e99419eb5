"""Typed configuration: dataclasses with paper defaults, YAML recipes and dotted overrides.

A run's configuration is built in three layers: the dataclass defaults, a named recipe from
``gankit/recipes/*.yaml`` (or a YAML file path), and ``key.sub=value`` overrides from the command
line. Every layer is checked against the dataclass fields: an unknown key fails with the closest
valid key, a value of the wrong type fails with the expected type.

This module owns the core sections (data, train, health, eval, optimizers) and the machinery; it
imports no task or network. The shape of ``nets.*`` and of the task sections comes from a
:class:`Schema`, which :mod:`gankit.registries` implements over the registries
(``gankit.tasks.TASKS``, ``gankit.nets.NETS``). The coercion is our own ~60 lines rather than
pydantic or OmegaConf: it gives one-line errors with the closest key, reads tuples, literals and
comma lists from the command line, and adds no dependency (see docs/design.md, 'Config').
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from gankit.errors import ConfigError, did_you_mean


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
    """Training-health warnings during a run (``gankit.engine.health``): D winning, collapse, NaN."""

    enabled: bool = True
    d_win_steps: int = 5
    """Logged steps in a row with D(x) > d_win_real and D(G(z)) < d_win_fake before warning."""
    d_win_real: float = 0.95
    d_win_fake: float = 0.05
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
    own sections (``gan``, ``classifier``, ...) live in ``options`` and read as attributes:
    ``cfg.gan`` is ``cfg.options["gan"]``.
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

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a task section such as cfg.gan.
        options = self.__dict__.get("options") or {}
        if name in options:
            return options[name]
        raise AttributeError(f"config has no section {name!r} (task {self.__dict__.get('task')})")


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


# --- building from dicts ---------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(str(a) for a in typing.get_args(tp))
    if origin is tuple and typing.get_args(tp)[-1:] == (Ellipsis,):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert one YAML value to the annotated type, or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
    elif origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool):  # YAML 1.1 reads yes/no/on/off as booleans
            spellings = ("yes", "on", "true") if value else ("no", "off", "false")
            value = next((c for c in choices if str(c).lower() in spellings), value)
        for c in choices:
            if value == c or str(value) == str(c):
                return c
        raise ConfigError(
            f"{key}={value!r} is not allowed: choose one of {', '.join(map(str, choices))}"
        )
    elif origin is list:
        (arg,) = typing.get_args(tp)
        if isinstance(value, str):  # gan.augment=translation,cutout
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            return [_coerce(v, arg, key) for v in value]
    elif origin is tuple:
        args = typing.get_args(tp)
        if args[-1:] == (Ellipsis,) and isinstance(value, list | tuple):  # tuple[int, ...]
            return tuple(_coerce(v, args[0], key) for v in value)
        if isinstance(value, list | tuple) and len(value) == len(args):
            return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    elif tp is type(None):
        if value is None or value == "null":
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key}={value!r} has the wrong type: expected {_type_name(tp)}")


def _merge(obj: Any, updates: dict, prefix: str = "") -> None:
    """Apply a nested dict of updates to a dataclass instance in place, checking every key."""
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in updates.items():
        full = f"{prefix}{key}"
        if key not in names:
            hint = _close(str(key), names, prefix)
            raise ConfigError(f"unknown config key {full!r}{hint} (valid: {', '.join(names)})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} is a section: set its keys, e.g. {full}.{names[0]}=...")
            _merge(current, value, f"{full}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def apply_values(obj: Any, values: dict, prefix: str = "") -> None:
    """Set a dataclass's fields from a nested dict, checked and coerced as config keys are."""
    _merge(obj, values, prefix)


def parse_overrides(items: list[str]) -> dict:
    """``["train.steps=10", "gan.loss=hinge"]`` → nested dict; values are parsed as YAML."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} must look like key.sub=value, e.g. train.steps=500"
            )
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def merge_dicts(base: dict, new: dict) -> dict:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_dicts(base[k], v)
        else:
            base[k] = v
    return base


def apply_overrides(data: dict, overrides: dict) -> dict:
    """:func:`merge_dicts`, except that ``nets.X.arch=OTHER`` starts ``nets.X`` afresh.

    A recipe's network options belong to its architecture (``num_blocks`` is a darknet's); when
    the command line picks another architecture, the options start from that one's defaults plus
    whatever else the command line sets for ``nets.X``.
    """
    base_nets = data.get("nets") if isinstance(data.get("nets"), dict) else {}
    for name, net in (overrides.get("nets") or {}).items():
        base = base_nets.get(name)
        if (
            isinstance(net, dict)
            and isinstance(base, dict)
            and base.get("arch") != net.get("arch", base.get("arch"))
        ):
            base_nets[name] = {}
    return merge_dicts(data, overrides)


# --- recipes ---------------------------------------------------------------------------------


def recipe_names() -> list[str]:
    """Names of the built-in recipes, sorted."""
    folder = resources.files("gankit") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> dict:
    """A recipe's YAML as a dict, by built-in name or by path to a YAML file."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) and path.exists():
        text = path.read_text()
    else:
        res = resources.files("gankit") / "recipes" / f"{name_or_path}.yaml"
        if not res.is_file():
            names = recipe_names()
            hint = did_you_mean(name_or_path, names)
            raise ConfigError(
                f"unknown recipe {name_or_path!r}: {hint}run `gankit recipes` to list them, "
                "or pass a path to a .yaml file"
            )
        text = res.read_text()
        path = Path(name_or_path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(
            f"recipe {name_or_path} is not valid YAML: {e}".replace("\n", " ")
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {name_or_path} must be a YAML mapping of config sections")
    data.setdefault("recipe", path.stem)
    return data


def _moved(data: dict) -> None:
    """Fail on a gankit 0.1 key with its new name."""
    for section, value in data.items():
        keys = [section] + ([f"{section}.{k}" for k in value] if isinstance(value, dict) else [])
        for key in keys:
            if key in MOVED:
                raise ConfigError(
                    f"config key {key} was renamed: use {MOVED[key]} (see docs/design.md, 'Config')"
                )


def _close(key: str, names: list[str], prefix: str = "") -> str:
    """``"; did you mean PREFIX.KEY?"`` after an unknown key's name, or ``""``."""
    hint = did_you_mean(key, names, prefix, cutoff=0.5).strip()
    return f"; {hint}" if hint else ""


def _named(data: Any, key: str) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{key} is a section: set its keys, e.g. {key}.NAME.KEY=...")
    return data


def _build_net(name: str, kind: str, default_arch: str, raw: Any, schema: Schema) -> Any:
    key = f"nets.{name}"
    raw = dict(_named(raw, key))
    arch = str(raw.pop("arch", default_arch))
    opts = schema.net_options(kind, arch, f"{key}.arch")()
    _merge(opts, raw, f"{key}.")
    opts.arch = arch
    return opts


def parse(data: dict, schema: Schema) -> Config:
    """A Config from a (possibly partial) nested dict; every key is checked, nothing validated."""
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of sections")
    _moved(data)
    task = data.get("task", Config.task)
    if not isinstance(task, str):
        raise ConfigError(f"task={task!r} must be a task name")
    ts = schema.task(task)
    valid = [*CORE_SECTIONS, "nets", "optim", *ts.sections]
    for key in data:
        if key in valid:
            continue
        owner = schema.owner(str(key))
        if owner:
            raise ConfigError(
                f"section {key!r} belongs to task {owner}, but this config's task is {task}: "
                f"remove it or set task={owner}"
            )
        raise ConfigError(
            f"unknown config key {key!r}{_close(str(key), valid)} (valid: {', '.join(valid)})"
        )
    cfg = Config()
    _merge(cfg, {k: v for k, v in data.items() if k in CORE_SECTIONS})
    for group, names in (("nets", ts.nets), ("optim", ts.optims)):
        for name in _named(data.get(group), group):
            if name not in names:
                have = ", ".join(names) or "none"
                raise ConfigError(
                    f"{group}.{name}: task {task} has no such part{_close(str(name), list(names), f'{group}.')} "
                    f"(its {group}: {have})"
                )
    raw_nets = _named(data.get("nets"), "nets")
    cfg.nets = {
        name: _build_net(name, kind, arch, raw_nets.get(name), schema)
        for name, (kind, arch) in ts.nets.items()
    }
    raw_optim = _named(data.get("optim"), "optim")
    for name, default in ts.optims.items():
        opt = dataclasses.replace(default)
        _merge(opt, _named(raw_optim.get(name), f"optim.{name}"), f"optim.{name}.")
        cfg.optim[name] = opt
    for section, cls in ts.sections.items():
        opts = cls()
        _merge(opts, _named(data.get(section), section), f"{section}.")
        cfg.options[section] = opts
    return cfg


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists) for YAML and checkpoints, in reading order."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    out: dict = {
        k: plain(getattr(cfg, k)) for k in ("recipe", "description", "task", "seed", "data")
    }
    if cfg.nets:
        out["nets"] = plain(cfg.nets)
    if cfg.optim:
        out["optim"] = plain(cfg.optim)
    out.update(plain(cfg.options))
    out.update({k: plain(getattr(cfg, k)) for k in ("train", "health", "eval")})
    return out


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changes(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for every dotted key whose value differs between two config dicts."""
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def is_structural(key: str, extra: typing.Iterable[str] = ()) -> bool:
    """Whether ``key`` (dotted) matches :data:`STRUCTURAL` or the task's ``extra`` patterns."""
    return any(fnmatch.fnmatchcase(key, p) for p in (*STRUCTURAL, *extra))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``config.yaml`` atomically (a crash never leaves half a config)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    os.replace(tmp, path)


def read_config_file(path: str | Path) -> dict:
    """The mapping in a run's ``config.yaml``, or a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: is this a gankit run directory?")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        first = str(e).replace("\n", " ")[:160]
        raise ConfigError(
            f"{path} is not valid YAML ({first}): restore it or fix it by hand"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a YAML mapping of config sections")
    return data


# --- validation ------------------------------------------------------------------------------


SOURCES = ("builtin:mnist", "mnist", "fashion-mnist", "cifar10")
"""Named data sources; besides them, ``folder:PATH``, ``lmdb:PATH``, ``aligned:PATH``, ``paired:A,B``."""


def check_source(key: str, src: str) -> None:
    """A ConfigError unless ``src`` is a known source form."""
    if src not in SOURCES and not (
        src.startswith(("folder:", "lmdb:", "aligned:", "paired:")) and src.split(":", 1)[1]
    ):
        raise ConfigError(
            f"{key}={src!r} is unknown: use builtin:mnist, mnist, fashion-mnist, cifar10, "
            "folder:PATH or lmdb:PATH"
        )


def check_positive(values: dict[str, float]) -> None:
    """A ConfigError for the first ``{key: value}`` that is not positive."""
    for key, v in values.items():
        if v is None or v <= 0:
            raise ConfigError(f"{key}={v} must be positive")


def check_optim(key: str, opt: OptimConfig) -> None:
    if not opt.lr > 0:
        raise ConfigError(f"{key}.lr={opt.lr} must be positive")
    if not all(0 <= b < 1 for b in opt.betas):
        raise ConfigError(f"{key}.betas={list(opt.betas)} must be in [0, 1)")
    if opt.momentum < 0 or opt.weight_decay < 0:
        raise ConfigError(f"{key}.momentum and {key}.weight_decay must be >= 0")


def validate(cfg: Config) -> None:
    """The core sections' impossible values fail here, at start-up, with the allowed choices.

    Task sections and networks are checked where their registries live (:mod:`gankit.registries`).
    """
    t = cfg.train
    check_positive(
        {
            "train.steps": t.steps,
            "train.batch_size": t.batch_size,
            "train.log_every": t.log_every,
            "train.sample_every": t.sample_every,
            "train.ckpt_every": t.ckpt_every,
            "train.keep_ckpts": t.keep_ckpts,
            "train.n_preview": t.n_preview,
            "data.image_size": cfg.data.image_size,
            "train.dist_timeout": t.dist_timeout,
        }
    )
    for name, opt in cfg.optim.items():
        check_optim(f"optim.{name}", opt)
    h = cfg.health
    if h.d_win_steps <= 0 or h.collapse_warmup <= 0:
        raise ConfigError("health.d_win_steps and health.collapse_warmup must be positive")
    if not (0 < h.d_win_fake < h.d_win_real < 1 and 0 < h.collapse_fraction < 1):
        raise ConfigError(
            f"health: need 0 < d_win_fake ({h.d_win_fake}) < d_win_real ({h.d_win_real}) < 1 "
            f"and 0 < collapse_fraction ({h.collapse_fraction}) < 1"
        )
    if cfg.data.load_size is not None and cfg.data.load_size < cfg.data.image_size:
        raise ConfigError(
            f"data.load_size={cfg.data.load_size} is smaller than data.image_size={cfg.data.image_size}"
        )
    if t.minutes is not None and t.minutes <= 0:
        raise ConfigError(f"train.minutes={t.minutes} must be positive (or null for no limit)")
    if t.epochs is not None and t.epochs <= 0:
        raise ConfigError(f"train.epochs={t.epochs} must be positive (or null to use train.steps)")
    if cfg.data.limit is not None and cfg.data.limit <= 0:
        raise ConfigError(f"data.limit={cfg.data.limit} must be positive (or null for all images)")
    check_source("data.source", cfg.data.source)
    validate_eval(cfg)


def validate_eval(cfg: Config) -> None:
    """The ``eval`` section: ranges, the features spec and the reference source's form."""
    e = cfg.eval
    if e.every < 0:
        raise ConfigError(f"eval.every={e.every} must be >= 0 (0 = no evaluation during training)")
    if e.n < 10:
        raise ConfigError(f"eval.n={e.n} is too small: use at least 10 (1000 or more for FID)")
    if e.features != "inception" and not (
        e.features.startswith("classifier:") and e.features.split(":", 1)[1]
    ):
        raise ConfigError(f"eval.features={e.features!r}: use inception or classifier:RUN")
    check_source("eval.ref", e.ref or cfg.data.source)
