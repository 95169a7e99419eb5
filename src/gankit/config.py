"""Typed configuration: dataclasses with paper defaults, YAML recipes and dotted overrides.

A run's configuration is built in three layers: the dataclass defaults below, a named recipe from
``gankit/recipes/*.yaml`` (or a YAML file path), and ``key.sub=value`` overrides from the command
line. Every layer is checked against the dataclass fields: an unknown key fails with the closest
valid key, a value of the wrong type fails with the expected type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from gankit.errors import ConfigError


@dataclass
class DataConfig:
    """Where images come from and how they become tensors."""

    source: str = "builtin:mnist"
    """builtin:mnist | mnist | fashion-mnist | cifar10 | folder:PATH | lmdb:PATH"""
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
    workers: int = 2


@dataclass
class ModelConfig:
    """Generator and discriminator architecture."""

    arch: Literal["dcgan", "mlp", "mnist-dc"] = "dcgan"
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    n_extra_layers: int = 0
    g_norm: Literal["batch", "none"] = "batch"
    d_norm: Literal["batch", "none", "spectral"] = "batch"
    upsample: Literal["deconv", "nearest"] = "deconv"
    """deconv: transposed convolutions (Radford et al.); nearest: upsample + 3x3 conv (no checkerboard)."""
    g_hidden: int = 1024
    """Width of the MLP generator's hidden layers."""
    d_hidden: int = 256
    """Width of the MLP discriminator's hidden layers."""
    noise: Literal["normal", "uniform"] = "normal"
    """normal: N(0, I); uniform: U[-1, 1) (the cs231n assignment)."""
    init: Literal["normal02", "xavier", "default"] = "normal02"


@dataclass
class OptimConfig:
    """One network's optimizer."""

    name: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass
class GanConfig:
    """The adversarial game."""

    loss: str = "non-saturating"
    """minimax | non-saturating | lsgan | wgan | wgan-gp | hinge"""
    d_steps: int = 1
    """Critic (discriminator) steps per generator step."""
    d_schedule: Literal["constant", "wgan"] = "constant"
    """wgan: 100 critic steps for the first 25 generator steps and every 500th (Arjovsky et al.)."""
    clip: float | None = None
    """Weight clipping bound of the critic; None = the loss's default (0.01 for wgan)."""
    gp_weight: float | None = None
    """Gradient-penalty weight; None = the loss's default (10 for wgan-gp)."""
    label_smoothing: float = 0.0
    """One-sided: real targets become 1 - label_smoothing (Salimans et al. 2016)."""
    ema: float = 0.0
    """Decay of an exponential moving average of the generator used for sampling; 0 = off."""
    ema_start: int = 0
    """Generator step at which the EMA starts averaging (it copies G until then)."""
    augment: list[str] = field(default_factory=list)
    """DiffAugment policy for D's inputs, real and fake alike: translation, cutout, flip (Zhao et al. 2020)."""
    lr_decay_start: float | None = None
    """Fraction of train.steps after which both learning rates fall linearly to 0; None = constant."""


@dataclass
class ClassifierConfig:
    """An image classifier trained with SGD and a one-cycle schedule (``task: classifier``).

    Defaults are the fast.ai 2018 course's CIFAR-10 Darknet (``cifar10-darknet.ipynb``): lr 1.3,
    weight decay 1e-4, ``use_clr_beta=(20, 20, 0.95, 0.85)``, flips and reflect-pad-4 crops.
    """

    arch: Literal["darknet", "mnistnet"] = "darknet"
    num_blocks: tuple[int, ...] = (1, 2, 4, 6, 3)
    """Residual layers per Darknet group (one group per entry)."""
    nf: int = 32
    """Darknet stem width (doubled by every group); the first conv width of MnistNet."""
    num_classes: int | None = None
    """None = from the data (its class names, or the largest label + 1)."""
    classes: tuple[str, ...] | None = None
    """Class names in label order; filled in from the data when training starts."""
    lr: float = 1.3
    """Peak learning rate of the one-cycle schedule."""
    div: float = 20.0
    """The cycle starts and ends at lr / div, then anneals to lr / (div * 100)."""
    pct: float = 20.0
    """Percent of the steps spent in the final annealing (fastai use_clr_beta)."""
    mom_max: float = 0.95
    mom_min: float = 0.85
    weight_decay: float = 1e-4
    nesterov: bool = False
    label_smoothing: float = 0.0
    augment: bool = True
    """Random pad-and-crop (and flips, if ``flip``) of every training batch, on the device."""
    pad: int = 4
    """Reflect padding of the random crop; 0 = no crop."""
    flip: bool = True
    mean: tuple[float, ...] | None = None
    """Per-channel input mean in [0, 1]; None = CIFAR-10's for cifar10, else the data's own."""
    std: tuple[float, ...] | None = None
    tta_flip: bool = False
    """At evaluation, average the logits of each image and its mirror image."""
    eval_every: int | None = None
    """Steps between test-set evaluations; None = once per epoch, 0 = never."""
    eval_batch_size: int = 500


@dataclass
class TrainConfig:
    """The loop: length, logging, checkpoints, device and speed switches."""

    steps: int = 2000
    """Training steps (for a GAN: generator updates)."""
    epochs: float | None = None
    """If set, overrides steps: ceil(epochs × dataset size / (batch_size × batches per step))."""
    batch_size: int = 64
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


@dataclass
class HealthConfig:
    """Training-health warnings during a run (``gankit.health``): D winning, collapse, NaN."""

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
    """Scoring a GAN during training (``gankit.evaluation``); the best score keeps ``checkpoints/best.pt``."""

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
class Config:
    """Everything a run needs; written to ``RUN/config.yaml``."""

    recipe: str = "custom"
    description: str = ""
    task: Literal["gan", "classifier"] = "gan"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    optim_g: OptimConfig = field(default_factory=OptimConfig)
    optim_d: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


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
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            raise ConfigError(f"unknown config key {full!r}{hint} (valid: {', '.join(names)})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} is a section: set its keys, e.g. {full}.{names[0]}=...")
            _merge(current, value, f"{full}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


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
            close = difflib.get_close_matches(name_or_path, names, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
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


def from_dict(data: dict) -> Config:
    """A validated Config from a (possibly partial) nested dict."""
    cfg = Config()
    _merge(cfg, data)
    validate(cfg)
    return cfg


def build_config(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← recipe (default ``dcgan-mnist``) ← ``key=value`` overrides, validated."""
    data = load_recipe(recipe or "dcgan-mnist")
    merge_dicts(data, parse_overrides(overrides or []))
    return from_dict(data)


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists) for YAML and checkpoints."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} not found: is this a gankit run directory?")
    return from_dict(yaml.safe_load(path.read_text()) or {})


# --- validation ------------------------------------------------------------------------------


def validate(cfg: Config) -> None:
    """Impossible values and combinations fail here, at start-up, with the allowed choices."""
    from gankit.nets import check_image_size
    from gankit.nets.mnist_dc import check_mnist_dc_size
    from gankit.objectives import OBJECTIVES

    positive = {
        "train.steps": cfg.train.steps,
        "train.batch_size": cfg.train.batch_size,
        "train.log_every": cfg.train.log_every,
        "train.sample_every": cfg.train.sample_every,
        "train.ckpt_every": cfg.train.ckpt_every,
        "train.keep_ckpts": cfg.train.keep_ckpts,
        "train.n_preview": cfg.train.n_preview,
        "gan.d_steps": cfg.gan.d_steps,
        "data.image_size": cfg.data.image_size,
        "model.nz": cfg.model.nz,
        "model.ngf": cfg.model.ngf,
        "model.ndf": cfg.model.ndf,
        "model.g_hidden": cfg.model.g_hidden,
        "model.d_hidden": cfg.model.d_hidden,
    }
    for key, v in positive.items():
        if v <= 0:
            raise ConfigError(f"{key}={v} must be positive")
    for key, opt in (("optim_g", cfg.optim_g), ("optim_d", cfg.optim_d)):
        if not opt.lr > 0:
            raise ConfigError(f"{key}.lr={opt.lr} must be positive")
        if not all(0 <= b < 1 for b in opt.betas):
            raise ConfigError(f"{key}.betas={list(opt.betas)} must be in [0, 1)")
    if cfg.gan.loss not in OBJECTIVES:
        close = difflib.get_close_matches(cfg.gan.loss, list(OBJECTIVES), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"gan.loss={cfg.gan.loss!r} is unknown: {hint}choose one of {', '.join(OBJECTIVES)}"
        )
    if not 0 <= cfg.gan.label_smoothing < 0.5:
        raise ConfigError(f"gan.label_smoothing={cfg.gan.label_smoothing} must be in [0, 0.5)")
    from gankit.augment import DIFF_AUGMENTS

    for name in cfg.gan.augment:
        if name not in DIFF_AUGMENTS:
            raise ConfigError(
                f"gan.augment: {name!r} is unknown: choose from {', '.join(DIFF_AUGMENTS)}"
            )
    if cfg.gan.lr_decay_start is not None and not 0 <= cfg.gan.lr_decay_start < 1:
        raise ConfigError(
            f"gan.lr_decay_start={cfg.gan.lr_decay_start} must be in [0, 1), or null for a constant lr"
        )
    if not 0 <= cfg.gan.ema < 1:
        raise ConfigError(f"gan.ema={cfg.gan.ema} must be in [0, 1), e.g. 0.999; 0 turns it off")
    h = cfg.health
    if h.d_win_steps <= 0 or h.collapse_warmup <= 0:
        raise ConfigError("health.d_win_steps and health.collapse_warmup must be positive")
    if not (0 < h.d_win_fake < h.d_win_real < 1 and 0 < h.collapse_fraction < 1):
        raise ConfigError(
            f"health: need 0 < d_win_fake ({h.d_win_fake}) < d_win_real ({h.d_win_real}) < 1 "
            f"and 0 < collapse_fraction ({h.collapse_fraction}) < 1"
        )
    if cfg.model.n_extra_layers < 0:
        raise ConfigError(f"model.n_extra_layers={cfg.model.n_extra_layers} must be >= 0")
    if cfg.model.arch == "dcgan" and cfg.task != "classifier":
        check_image_size(cfg.data.image_size)
    if cfg.model.arch == "mnist-dc" and cfg.task != "classifier":
        check_mnist_dc_size(cfg.data.image_size)
    if cfg.data.load_size is not None and cfg.data.load_size < cfg.data.image_size:
        raise ConfigError(
            f"data.load_size={cfg.data.load_size} is smaller than data.image_size={cfg.data.image_size}"
        )
    if cfg.train.epochs is not None and cfg.train.epochs <= 0:
        raise ConfigError(
            f"train.epochs={cfg.train.epochs} must be positive (or null to use train.steps)"
        )
    if cfg.data.limit is not None and cfg.data.limit <= 0:
        raise ConfigError(f"data.limit={cfg.data.limit} must be positive (or null for all images)")
    src = cfg.data.source
    kinds = ("builtin:", "folder:", "lmdb:")
    if src not in ("mnist", "fashion-mnist", "cifar10", "builtin:mnist") and not src.startswith(
        kinds[1:]
    ):
        raise ConfigError(
            f"data.source={src!r} is unknown: use builtin:mnist, mnist, fashion-mnist, cifar10, "
            "folder:PATH or lmdb:PATH"
        )
    from gankit.tasks.classifier import validate_classifier

    validate_classifier(cfg)
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
    ref = e.ref or cfg.data.source
    if ref not in ("mnist", "fashion-mnist", "cifar10", "builtin:mnist") and not ref.startswith(
        ("folder:", "lmdb:")
    ):
        raise ConfigError(
            f"eval.ref={ref!r} is unknown: use builtin:mnist, mnist, fashion-mnist, cifar10, "
            "folder:PATH or lmdb:PATH"
        )
    if e.every and cfg.task != "gan":
        raise ConfigError(f"eval.every is for GAN runs; a {cfg.task} run evaluates itself")
