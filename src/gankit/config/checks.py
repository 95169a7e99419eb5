"""Checks of the core sections that need more than a field's type: sources, positive sizes,
optimizers, evaluation settings."""

from __future__ import annotations

from gankit.config.sections import Config, EvalConfig, OptimConfig
from gankit.errors import ConfigError

SOURCES = ("builtin:mnist", "mnist", "fashion-mnist", "cifar10", "stacked-mnist")
"""Named data sources; besides them, ``folder:PATH``, ``lmdb:PATH``, ``aligned:PATH``, ``paired:A,B``."""


def check_source(key: str, src: str) -> None:
    """A ConfigError unless ``src`` is a known source form."""
    if src not in SOURCES and not (
        src.startswith(("folder:", "lmdb:", "aligned:", "paired:", "stacked-mnist:"))
        and src.split(":", 1)[1]
    ):
        raise ConfigError(
            f"{key}={src!r} is unknown: use builtin:mnist, mnist, fashion-mnist, cifar10, "
            "stacked-mnist[:N], folder:PATH or lmdb:PATH"
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
    if h.d_win_steps <= 0 or h.d_weak_steps <= 0 or h.collapse_warmup <= 0:
        raise ConfigError(
            "health.d_win_steps, health.d_weak_steps and health.collapse_warmup must be positive"
        )
    if not 0 < h.d_weak_margin < 0.5:
        raise ConfigError(f"health.d_weak_margin={h.d_weak_margin} must be in (0, 0.5), e.g. 0.05")
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
    if e.resizer != EvalConfig.resizer and e.features != "inception":
        raise ConfigError(
            f"eval.resizer={e.resizer} resizes for the Inception only, and eval.features="
            f"{e.features}: drop eval.resizer or use eval.features=inception"
        )
    check_source("eval.ref", e.ref or cfg.data.source)
