"""Configs over the registries: recipes and overrides into a validated :class:`Config`.

:mod:`gankit.config` knows the core sections and the parsing; this module supplies what it cannot
know without importing tasks and networks — each task's sections, networks and optimizers
(``gankit.tasks.TASKS``) and each architecture's options (``gankit.nets.NETS``) — and runs the
checks that need them. Everything that builds a config from text goes through here.
"""

from __future__ import annotations

import copy
from pathlib import Path

from gankit.config import (
    Config,
    TaskSchema,
    apply_overrides,
    load_recipe,
    merge_dicts,
    parse,
    parse_overrides,
    read_config_file,
    validate,
)
from gankit.config.options import check_options
from gankit.errors import ConfigError, did_you_mean
from gankit.gan.presets import derive
from gankit.inference.roles import Generative
from gankit.nets import NETS, entry
from gankit.tasks import TASKS
from gankit.tasks.base import Task

__all__ = ["build_config", "from_dict", "load_config", "task_class"]


def task_class(name: str) -> type[Task]:
    """The task registered as ``name``, or a ConfigError listing the tasks."""
    if name not in TASKS:
        hint = did_you_mean(name, TASKS)
        raise ConfigError(f"task={name!r} is unknown: {hint}choose one of {', '.join(TASKS)}")
    return TASKS[name]


class _Registries:
    """The :class:`gankit.config.Schema` of the registered tasks and networks."""

    def task(self, name: str) -> TaskSchema:
        return task_class(name).schema()

    def net_options(self, kind: str, arch: str, key: str) -> type:
        return entry(kind, arch, key).options

    def owner(self, section: str) -> str | None:
        return next((n for n, t in TASKS.items() if t.Options and t.name == section), None)


SCHEMA = _Registries()


def check(cfg: Config) -> None:
    """Every check: the core sections, the task's section, each network, evaluation's needs."""
    validate(cfg)
    task = task_class(cfg.task)
    if task.Options is not None:
        check_options(task.options(cfg), task.name)
    task.validate(cfg)
    for name, (kind, _) in task.networks.items():
        opts = cfg.nets[name]
        checker = NETS[kind][opts.arch].check
        if checker is not None:
            checker(opts, cfg.data.image_size, cfg.data.channels)
    if cfg.eval.every and Generative not in task.roles:
        raise ConfigError(
            f"eval.every scores generated images; a {cfg.task} run evaluates itself: set eval.every=0"
        )


def from_dict(data: dict) -> Config:
    """A validated Config from a (possibly partial) nested dict."""
    cfg = parse(data, SCHEMA)
    check(cfg)
    return cfg


DEFAULT_RECIPE = "cgan-mnist"
"""What ``gankit train`` runs without a recipe: the class-conditional MNIST-DC pair on the
built-in digits (docs/benchmarks.md: 95-98 % confident digits of the requested class, where the
unconditional ``dcgan-mnist`` gives 80-83 %)."""


def build_config(recipe: str | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← recipe (default :data:`DEFAULT_RECIPE`) ← ``key=value`` overrides, validated."""
    data = load_recipe(recipe or DEFAULT_RECIPE)
    given = parse_overrides(overrides or [])
    return from_dict(derive(apply_overrides(copy.deepcopy(data), given), data, given))


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """A run's ``config.yaml``, validated (errors name the file), then ``overrides`` applied."""
    data = read_config_file(path)
    try:
        cfg = from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if not overrides:
        return cfg
    return from_dict(merge_dicts(data, parse_overrides(overrides)))
