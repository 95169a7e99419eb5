"""Typed configuration: dataclasses with paper defaults, YAML recipes and dotted overrides.

A run's configuration is built in three layers: the dataclass defaults, a named recipe from
``gankit/recipes/*.yaml`` (or a YAML file path), and ``key.sub=value`` overrides from the command
line. Every layer is checked against the dataclass fields: an unknown key fails with the closest
valid key, a value of the wrong type fails with the expected type.

This module owns the core sections (data, train, health, eval, optimizers) and the machinery; it
imports no task or network. The shape of ``nets.*`` and of the task sections comes from a
:class:`Schema`, which :mod:`gankit.registries` implements over the registries
(``gankit.tasks.TASKS``, ``gankit.nets.NETS``). Modules: :mod:`.sections` (the dataclasses, the structural keys, the schema protocol),
:mod:`.values` (coercion, overrides, parse, to_dict), :mod:`.options` (a task option's default,
check and structural flag together), :mod:`.files` (recipes, config.yaml), :mod:`.checks` (the
core sections' checks). This package re-exports what the rest of gankit uses.
"""

from gankit.config.checks import SOURCES, check_source, validate, validate_eval
from gankit.config.files import load_recipe, read_config_file, recipe_names, save_config
from gankit.config.sections import (
    CORE_SECTIONS,
    MOVED,
    STRUCTURAL,
    Config,
    DataConfig,
    EvalConfig,
    HealthConfig,
    OptimConfig,
    Schema,
    TaskSchema,
    TrainConfig,
    is_structural,
)
from gankit.config.values import (
    apply_overrides,
    apply_values,
    changes,
    flatten,
    merge_dicts,
    parse,
    parse_overrides,
    to_dict,
)

__all__ = [
    "CORE_SECTIONS",
    "MOVED",
    "SOURCES",
    "STRUCTURAL",
    "Config",
    "DataConfig",
    "EvalConfig",
    "HealthConfig",
    "OptimConfig",
    "Schema",
    "TaskSchema",
    "TrainConfig",
    "apply_overrides",
    "apply_values",
    "changes",
    "check_source",
    "flatten",
    "is_structural",
    "load_recipe",
    "merge_dicts",
    "parse",
    "parse_overrides",
    "read_config_file",
    "recipe_names",
    "save_config",
    "to_dict",
    "validate",
    "validate_eval",
]
