"""From text to a typed :class:`~gankit.config.sections.Config` and back: the coercion of values
to their field types, dotted overrides, the parse of a whole config over a
:class:`~gankit.config.sections.Schema`, and ``to_dict``.

The coercion is our own ~60 lines rather than pydantic or OmegaConf: it gives one-line errors with
the closest key, reads tuples, literals and comma lists from the command line, and adds no
dependency (see docs/design.md, 'Config').
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

import yaml

from gankit.config.sections import CORE_SECTIONS, MOVED, Config, Schema
from gankit.errors import ConfigError, did_you_mean

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
        if args[-1:] == (Ellipsis,) and isinstance(value, str) and "," in value:
            # nets.G.stages=2,2,3,3 (YAML reads it as one string): each item as YAML reads it
            read = str.strip if args[0] is str else yaml.safe_load
            value = [read(v) for v in value.split(",") if v.strip()]
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
                first = dataclasses.fields(current)[0].name
                raise ConfigError(f"{full} is a section: set its keys, e.g. {full}.{first}=...")
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
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                head = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"override {item!r}: {head} was given a value ({head}={node!r}), so it has "
                    f"no keys to set: give one of {head}=... and {key}=..."
                )
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
            raise ConfigError(
                f"override {item!r}: {key} is a section that other overrides set keys of: "
                f"set its keys, e.g. {key}.NAME=..."
            )
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
    nets = overrides.get("nets") or {}
    if not isinstance(nets, dict):
        raise ConfigError(
            f"nets={nets!r}: nets is a section of named networks: set their keys, e.g. "
            "nets.G.arch=dcgan nets.D.arch=dcgan"
        )
    base_nets = data.get("nets") if isinstance(data.get("nets"), dict) else {}
    for name, net in nets.items():
        base = base_nets.get(name)
        if (
            isinstance(net, dict)
            and isinstance(base, dict)
            and base.get("arch") != net.get("arch", base.get("arch"))
        ):
            base_nets[name] = {}
    return merge_dicts(data, overrides)


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


def _named(data: Any, key: str, example: str = "NAME.KEY") -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{key} is a section: set its keys, e.g. {key}.{example}=...")
    return data


def _build_net(name: str, kind: str, default_arch: str, raw: Any, schema: Schema) -> Any:
    key = f"nets.{name}"
    raw = dict(_named(raw, key, "arch"))
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
        _merge(opt, _named(raw_optim.get(name), f"optim.{name}", "lr"), f"optim.{name}.")
        cfg.optim[name] = opt
    for section, cls in ts.sections.items():
        opts = cls()
        first = dataclasses.fields(opts)[0].name
        _merge(opts, _named(data.get(section), section, first), f"{section}.")
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
