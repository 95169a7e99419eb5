"""Read images from an LSUN-style lmdb database (key → encoded image bytes).

LSUN ships each scene category (bedroom, church_outdoor, ...) as one lmdb whose values are JPEG or
WebP files. :class:`LmdbImages` indexes the keys once and opens the environment lazily in each
process, because an lmdb environment must not be shared across ``fork`` (DataLoader workers).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb
from PIL import Image, UnidentifiedImageError

from gankit.data.images import convert_mode
from gankit.errors import DataError

# py-lmdb refuses to open one environment twice in a process, so instances on the same path (and
# unpickled copies) share one. A forked child (DataLoader worker) inherits the parent's handle,
# which LMDB says must not be used after fork, and py-lmdb still counts it as open; the child
# therefore closes the inherited handles (its own copies of the fds and mapping) and opens anew.
_ENVIRONMENTS: dict[str, lmdb.Environment] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    global _ENVIRONMENTS_LOCK
    _ENVIRONMENTS_LOCK = threading.Lock()  # another parent thread may have held it at fork time
    for env in _ENVIRONMENTS.values():
        with contextlib.suppress(lmdb.Error):
            env.close()
    _ENVIRONMENTS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _environment(path: Path) -> lmdb.Environment:
    # The folder and its data.mdb are one environment to lmdb, so they share a cache entry.
    data_file = path / "data.mdb" if path.is_dir() else path
    key = str(data_file.resolve())
    with _ENVIRONMENTS_LOCK:
        env = _ENVIRONMENTS.get(key)
        if env is None:
            try:
                # Read-only without a lock file (the data may sit on a read-only disk) and without
                # readahead (random access would otherwise pull in pages it never uses).
                env = lmdb.open(
                    str(path),
                    subdir=path.is_dir(),
                    readonly=True,
                    lock=False,
                    readahead=False,
                    meminit=False,
                )
            except lmdb.Error as e:
                raise DataError(f"{path} is not a readable lmdb database ({e})") from None
            _ENVIRONMENTS[key] = env
        return env


def key_text(key: bytes) -> str:
    """A key as readable text for messages and file names (hex if it is not UTF-8)."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key.hex()


class LmdbImages:
    """Random access to the images of an lmdb, in the order the keys are stored (sorted bytes).

    ``path`` is the lmdb folder (holding ``data.mdb``) or the ``data.mdb`` file itself.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"lmdb {self.path} does not exist: check the path to the LSUN folder")
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None
        with self._open().begin() as txn:
            self._keys: list[bytes] = list(txn.cursor().iternext(keys=True, values=False))
        if not self._keys:
            raise DataError(f"lmdb {self.path} has no entries: is it the right database?")

    def _open(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            self._env = _environment(self.path)
            self._pid = os.getpid()
        return self._env

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_env"] = state["_pid"] = None  # re-opened lazily in the receiving process
        return state

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"LmdbImages({str(self.path)!r}, {len(self)} images)"

    @property
    def keys(self) -> list[bytes]:
        """All keys, in stored (byte-sorted) order. Do not modify the list."""
        return self._keys

    def read_bytes(self, i: int) -> bytes:
        """The encoded image stored under the ``i``-th key."""
        key = self._keys[i]
        with self._open().begin() as txn:
            value = txn.get(key)
        if value is None:
            raise DataError(f"lmdb {self.path}: key {key_text(key)} vanished (database changed?)")
        return value

    def load(self, i: int, channels: int = 3) -> Image.Image:
        """Decode the ``i``-th image into an 'L' (channels=1) or 'RGB' (channels=3) PIL image."""
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {channels}")
        data = self.read_bytes(i)
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return convert_mode(img, channels)
        except UnidentifiedImageError:
            raise DataError(
                f"lmdb {self.path}: key {key_text(self._keys[i])} is not an image"
            ) from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DataError(
                f"lmdb {self.path}: key {key_text(self._keys[i])} is unreadable or truncated ({e})"
            ) from None

    def items(self, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(key, encoded bytes) in stored order; a cursor walk, faster than indexing one by one."""
        with self._open().begin() as txn:
            for n, (key, value) in enumerate(txn.cursor()):
                if limit is not None and n >= limit:
                    break
                yield key, value
