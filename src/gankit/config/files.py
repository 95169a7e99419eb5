"""Config files: the built-in recipes (``gankit/recipes/*.yaml``) or a YAML path, and a run's
``config.yaml`` (written atomically, read with one-line errors)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml

from gankit.config.sections import Config
from gankit.config.values import to_dict
from gankit.errors import ConfigError, did_you_mean


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
