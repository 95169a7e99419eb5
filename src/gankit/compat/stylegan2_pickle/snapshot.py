"""A stylegan2-ada-pytorch network pickle as data: :func:`load_snapshot` reads it through the
restricted unpickler and gives each network's ``state_dict()``, class name and constructor
arguments as plain Python."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gankit.compat.stylegan2_pickle.unpickler import (
    _REFUSED,
    _SG3_HINT,
    PersistentObject,
    PlainModule,
    SnapshotError,
    _Refusal,
    _refuse,
    _RestrictedUnpickler,
)
from gankit.errors import first_line

NETWORK_KEYS = ("G", "D", "G_ema", "augment_pipe")
"""The snapshot dict's entries that hold networks, in the order training_loop.py writes them."""


@dataclass(frozen=True)
class SnapshotNetwork:
    """One network of a snapshot.

    ``state``: what ``state_dict()`` of the reference module gives (names joined with dots,
    parameters then persistent buffers then sub-modules, ``None`` entries skipped), as plain CPU
    tensors without gradients. ``class_name``: the reference class (``Generator``,
    ``Discriminator``, ``AugmentPipe``). ``init_kwargs``/``init_args``: the constructor's arguments
    as plain Python (EasyDict -> dict, NumPy scalars -> numbers). ``attributes``: the other plain
    attributes of the top-level module (``z_dim``, ``img_resolution``, ``training``, ...).
    """

    class_name: str
    state: dict[str, Tensor]
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    init_args: tuple[Any, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """A stylegan2-ada-pytorch network pickle, as data. Networks the file lacks are ``None``."""

    path: Path
    G: SnapshotNetwork | None = None
    D: SnapshotNetwork | None = None
    G_ema: SnapshotNetwork | None = None
    augment_pipe: SnapshotNetwork | None = None
    training_set_kwargs: dict[str, Any] | None = None

    @property
    def generator(self) -> SnapshotNetwork:
        """The generator to sample from: ``G_ema`` (the running average), else ``G``."""
        net = self.G_ema if self.G_ema is not None else self.G
        assert net is not None  # load_snapshot refuses a file with neither
        return net

    def networks(self) -> dict[str, SnapshotNetwork]:
        """The networks present, by their snapshot key."""
        return {k: getattr(self, k) for k in NETWORK_KEYS if getattr(self, k) is not None}


def _plain(value: Any) -> Any:
    """EasyDict/OrderedDict -> dict, NumPy scalars and arrays -> Python numbers and lists."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _walk(module: Any, key: str, prefix: str, out: dict[str, Tensor], seen: set[int]) -> None:
    """``state_dict()`` of a pickled module: parameters, persistent buffers, then sub-modules."""
    if id(module) in seen:
        raise _refuse(f"a module that contains itself ({key}.{prefix.rstrip('.')})")
    seen.add(id(module))
    state = module.state
    skipped = state.get("_non_persistent_buffers_set") or ()
    for group in ("_parameters", "_buffers"):
        entries = state.get(group) or {}
        if not isinstance(entries, dict):
            raise _Refusal(f"its {key}.{prefix}{group} is a {type(entries).__name__}, not a dict")
        for name, tensor in entries.items():
            if tensor is None or (group == "_buffers" and name in skipped):
                continue
            if not isinstance(tensor, Tensor):
                raise _Refusal(
                    f"its {key}.{prefix}{name} is a {type(tensor).__name__}, not a tensor"
                )
            out[f"{prefix}{name}"] = tensor.detach()
    children = state.get("_modules") or {}
    if not isinstance(children, dict):
        raise _Refusal(f"its {key}.{prefix}_modules is a {type(children).__name__}, not a dict")
    for name, child in children.items():
        if child is None:
            continue
        if not isinstance(child, (PersistentObject, PlainModule)):
            raise _Refusal(
                f"its {key}.{prefix}{name} is a {type(child).__name__}, not a torch module"
            )
        _walk(child, key, f"{prefix}{name}.", out, seen)
    seen.discard(id(module))


def _network(key: str, obj: Any) -> SnapshotNetwork:
    if not isinstance(obj, PersistentObject):
        raise _Refusal(
            f"its {key} is a {type(obj).__name__}, not a stylegan2-ada-pytorch persistent network"
        )
    state: dict[str, Tensor] = {}
    _walk(obj, key, "", state, set())
    meta, attrs = obj.meta, obj.state
    kwargs = attrs.get("_init_kwargs", meta.get("init_kwargs"))
    args = attrs.get("_init_args", meta.get("init_args"))
    kwargs = _plain(kwargs) if isinstance(kwargs, dict) else {}
    args = tuple(_plain(args)) if isinstance(args, (tuple, list)) else ()
    attributes = {
        name: _plain(value)
        for name, value in attrs.items()
        if isinstance(name, str)
        and not name.startswith("_")
        and isinstance(value, (bool, int, float, str, type(None), list, tuple, dict, np.generic))
    }
    version = meta.get("version")
    return SnapshotNetwork(
        class_name=obj.class_name,
        state=state,
        init_kwargs=kwargs,
        init_args=args,
        attributes=attributes,
        version=version if isinstance(version, int) else None,
    )


def _read(path: Path) -> Snapshot:
    """The body of load_snapshot; raises _Refusal with the part of the message after the path."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head.startswith(b"PK\x03\x04"):
                raise _Refusal(
                    "a zip archive (a torch.save checkpoint?), not a stylegan2-ada-pytorch "
                    "network pickle"
                )
            f.seek(0)
            data = _RestrictedUnpickler(f).load()
    except (_Refusal, OSError):
        raise
    except RecursionError as e:
        raise _Refusal(f"nested too deeply to read ({_REFUSED})") from e
    except Exception as e:  # a truncated or damaged stream: pickle raises many kinds
        raise _Refusal(
            f"not readable as a pickle, truncated or damaged ({first_line(e, 100)})"
        ) from e
    if not isinstance(data, dict) or not ({"G", "G_ema"} & set(data)):
        what = type(data).__name__ if not isinstance(data, dict) else "dict without G_ema or G"
        raise _Refusal(f"not a stylegan2-ada-pytorch network snapshot (the pickle holds a {what})")
    nets = {k: _network(k, data[k]) for k in NETWORK_KEYS if data.get(k) is not None}
    for key in ("G", "G_ema"):
        net = nets.get(key)
        if net is not None and any(k.startswith("synthesis.input.") for k in net.state):
            raise _Refusal(_SG3_HINT)
    training_set = data.get("training_set_kwargs")
    return Snapshot(
        path=path,
        training_set_kwargs=_plain(training_set) if isinstance(training_set, dict) else None,
        **nets,
    )


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read a stylegan2-ada-pytorch ``.pkl`` (a training snapshot or a public network file).

    No code from the file runs: see the module's docstring for what is allowed. Raises
    :class:`SnapshotError` (one line, naming the file) for a missing, truncated or foreign file,
    a pickle that asks for any other global, a TensorFlow-era pickle and a StyleGAN3 network.
    """
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"{path}: no such file")
    if not path.is_file():
        raise SnapshotError(f"{path}: not a file (give the .pkl itself)")
    try:
        return _read(path)
    except _Refusal as e:
        raise SnapshotError(f"{path}: {first_line(e, 240)}") from None
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read it ({first_line(e, 120)})") from None
    except Exception as e:  # anything else the file's contents provoke: still one line
        raise SnapshotError(
            f"{path}: not a readable stylegan2-ada-pytorch network snapshot ({first_line(e, 120)})"
        ) from None
