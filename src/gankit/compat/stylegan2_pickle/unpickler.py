"""The restricted unpickler of stylegan2-ada-pytorch network pickles and its stand-ins.

Only the allow-list in ``_ALLOWED`` resolves (see the package's docstring for what it holds);
every stand-in holds data and does nothing else, and any other global is refused in one line.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gankit.errors import CheckpointError, ConfigError, first_line

_REFUSED = "not a stylegan2-ada-pytorch network snapshot; gankit never runs code from a pickle"
_TF_HINT = (
    "a TensorFlow StyleGAN/StyleGAN2 pickle: convert it with stylegan2-ada-pytorch's legacy.py "
    "first (python legacy.py --source=OLD.pkl --dest=NEW.pkl)"
)
_SG3_HINT = "a StyleGAN3 network: gankit reads StyleGAN2(-ADA) networks only"


class SnapshotError(CheckpointError, ConfigError):
    """A file that is not a readable stylegan2-ada-pytorch network pickle, in one line.

    A :class:`~gankit.errors.CheckpointError` (a network file that is truncated or from another
    model) and a :class:`~gankit.errors.ConfigError`, so either ``except`` catches it.
    """


class _Refusal(Exception):
    """Raised inside the unpickler; :func:`load_snapshot` turns it into a SnapshotError naming
    the file (the unpickler's stand-ins do not know the path)."""


def _refuse(what: str) -> _Refusal:
    return _Refusal(f"refuses {what} ({_REFUSED})")


# --- stand-ins for the pickled objects -----------------------------------------------------------


class PersistentObject:
    """A ``torch_utils.persistence`` object, kept as its ``meta`` dict; its source never runs."""

    __slots__ = ("meta",)

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    @property
    def class_name(self) -> str:
        return str(self.meta.get("class_name"))

    @property
    def state(self) -> Mapping[str, Any]:
        return self.meta["state"]

    def __setstate__(self, state: Any) -> None:
        raise _refuse("a persistent object with extra pickled state")

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name})"


class PlainModule:
    """A plain ``torch.nn`` module (say ``torch.nn.modules.linear.Linear``): its ``__dict__``.

    Pickle makes one with ``cls.__new__`` and hands it the ``__dict__`` through ``__setstate__``.
    """

    qualified_name = "torch.nn.modules.module.Module"
    state: dict[str, Any] = {}  # read-only default; __setstate__ sets the instance's own

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0]
        if state is not None and not isinstance(state, dict):
            raise _refuse(f"{self.qualified_name} with a pickled state of type {type(state)}")
        self.state = dict(state or {})

    @property
    def class_name(self) -> str:
        return self.qualified_name.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"PlainModule({self.qualified_name})"


_plain_module_classes: dict[str, type[PlainModule]] = {}


def _plain_module_class(qualified_name: str) -> type[PlainModule]:
    """One PlainModule subclass per torch.nn class name (pickle's NEWOBJ needs a class)."""
    cls = _plain_module_classes.get(qualified_name)
    if cls is None:
        cls = type(
            qualified_name.rsplit(".", 1)[-1],
            (PlainModule,),
            {"qualified_name": qualified_name},
        )
        _plain_module_classes[qualified_name] = cls
    return cls


class _EasyDict(dict):
    """``dnnlib.util.EasyDict`` as data: a dict (attribute access is not needed here)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


# --- the allowed callables ---------------------------------------------------------------------


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise _refuse("a persistent object whose meta is not a class description")
    class_name = meta.get("class_name")
    if not isinstance(class_name, str) or not isinstance(meta.get("state"), dict):
        raise _refuse("a persistent object without class_name and state")
    source = meta.get("module_src")
    if class_name == "SynthesisInput" or (
        isinstance(source, str)
        and ("class SynthesisInput" in source or "networks_stylegan3" in source)
    ):
        raise _Refusal(_SG3_HINT)
    return PersistentObject(meta)


def _storage_from_bytes(data: Any) -> torch.TypedStorage | torch.UntypedStorage:
    if not isinstance(data, (bytes, bytearray)):
        raise _refuse("a tensor storage that is not bytes")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except Exception as e:
        raise _refuse(
            "a tensor storage that torch.load(weights_only=True) cannot read: " + first_line(e, 60)
        ) from e
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise _refuse(f"a tensor storage that loads as {type(storage).__name__}")
    return storage


def _ints(value: Any) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) for v in value):
        raise _refuse("a tensor whose size or stride is not a tuple of ints")
    return tuple(value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: Any = None) -> Tensor:
    if isinstance(storage, torch.TypedStorage):
        dtype = storage.dtype if dtype is None else dtype
        # ``_untyped_storage`` rather than ``untyped()``, which warns that TypedStorage is
        # deprecated (torch.load of a legacy storage gives one, and there is no other way)
        storage = storage._untyped_storage
    if not isinstance(storage, torch.UntypedStorage) or not isinstance(dtype, torch.dtype):
        raise _refuse("a tensor without a storage")
    if not isinstance(offset, int):
        raise _refuse("a tensor whose storage offset is not an int")
    out = torch.empty((0,), dtype=dtype)
    return out.set_(storage, offset, _ints(size), _ints(stride))


def _rebuild_tensor_v2(
    storage, offset, size, stride, requires_grad=False, hooks=None, *_
) -> Tensor:
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(
    storage, offset, size, stride, requires_grad, hooks, dtype, *_metadata
) -> Tensor:
    return _tensor(storage, offset, size, stride, dtype)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *_state) -> Tensor:
    if not isinstance(data, Tensor):
        raise _refuse("a parameter without a tensor")
    return data  # state_dict() holds the parameters' tensors


def _rebuild_from_type_v2(func, new_type, args, state=None) -> Tensor:
    if new_type not in (Tensor, torch.nn.Parameter) or not callable(func):
        raise _refuse(f"a tensor of type {new_type}")
    if not isinstance(args, tuple):
        raise _refuse("a tensor rebuilt from arguments that are not a tuple")
    return func(*args)


def _device(spec: Any, index: Any = None) -> torch.device:
    if not isinstance(spec, (str, int)) or not (index is None or isinstance(index, int)):
        raise _refuse("a torch.device that is not a name")
    return torch.device(spec) if index is None else torch.device(spec, index)


def _size(dims: Any = ()) -> torch.Size:
    return torch.Size(_ints(tuple(dims) if isinstance(dims, list) else dims))


def _codecs_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _refuse(f"_codecs.encode to {encoding!r}")
    return text.encode("latin1")


def _np_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str):
        raise _refuse("a numpy dtype that is not a type code")
    # copy=True, always: pickle's BUILD then sets the byte order on this new dtype, never on
    # NumPy's shared built-in one.
    dtype = np.dtype(spec, align=bool(align), copy=True)
    if dtype.hasobject:
        raise _refuse("a numpy array of Python objects")
    return dtype


def _np_scalar(dtype: Any, data: Any = None) -> np.generic:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _refuse("a numpy scalar that is not plain data")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _np_reconstruct(subtype: Any, shape: Any = (0,), typecode: Any = b"b") -> np.ndarray:
    if subtype is not np.ndarray:
        raise _refuse(f"a numpy array of type {subtype}")
    return np.empty((0,), dtype=np.uint8)  # pickle's BUILD then sets shape, dtype and data


def _np_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _refuse("a numpy array that is not plain data")
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(_ints(shape), order=order).copy()


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Protocol 0/1's way to make a dict subclass or a plain object: only for the stand-ins."""
    if cls is _EasyDict and base is dict:
        return _EasyDict(state or {})
    if isinstance(cls, type) and issubclass(cls, PlainModule) and base is object and state is None:
        return cls.__new__(cls)
    raise _refuse(f"copyreg._reconstructor of {cls}")


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_TORCH_DTYPES = {
    name
    for name in dir(torch)
    if isinstance(getattr(torch, name, None), torch.dtype) and not name.startswith("_")
}

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "object"): object,
    ("builtins", "dict"): dict,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch", "Tensor"): Tensor,
    ("torch._tensor", "Tensor"): Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Size"): _size,
    ("torch", "device"): _device,
    ("numpy", "dtype"): _np_dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
    **{(m, "scalar"): _np_scalar for m in _NUMPY_MODULES},
    **{(m, "_reconstruct"): _np_reconstruct for m in _NUMPY_MODULES},
    **{("torch", name): getattr(torch, name) for name in _TORCH_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves the allow-list above and nothing else (Python's "restricting globals" recipe)."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles spell Python 3 names the Python 2 way (``__builtin__.set``): map them
        # back as pickle's own find_class does, then check the allow-list
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if module.startswith("torch.nn.modules.") and name.isidentifier() and name[0].isupper():
            return _plain_module_class(f"{module}.{name}")
        if module == "dnnlib.tflib" or module.startswith("dnnlib.tflib."):
            raise _Refusal(_TF_HINT)
        raise _Refusal(f"refuses to load {module}.{name} ({_REFUSED})")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refusal(f"refuses a persistent id ({_REFUSED})")
