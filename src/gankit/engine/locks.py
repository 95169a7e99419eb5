"""One writer at a time: an exclusive advisory lock that says who holds it and cleans up after itself.

Used for a run directory (``RUN/.gankit.lock``, for the life of a training process) and for a
download's destination folder. The lock is ``fcntl.flock`` on a small file that records the
holder (PID, host, start time). The kernel drops the lock when the process dies, however it dies,
so a killed run never blocks the next one; the holder record it leaves behind tells the next
process that the previous one ended without cleaning up (a *stale* lock), which is reported.

Why not the ``filelock`` package: its Unix lock is the same ``flock``, but it records no holder,
so a second writer could not be told *who* is writing, and it cannot remove its file safely (a
waiter may lock a file that is being unlinked); here the holder unlinks the file while still
holding it and every new holder checks that the file it locked is still the one at the path.
On systems without ``fcntl`` (Windows) there is no lock; this is documented.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gankit.errors import GankitError


class LockedError(GankitError):
    """Another process holds the lock (a second writer of a run directory or a download)."""


def _holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def describe(holder: dict) -> str:
    """``PID 123 on host since 2026-12-02 10:00:00`` (or ``another process``)."""
    if not holder.get("pid"):
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("time", 0)))
    return f"PID {holder['pid']} on {holder.get('host', '?')} since {since}"


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, busy: Callable[[dict], str]) -> Iterator[dict]:
    """Hold an exclusive lock on ``path`` for the block; yields the stale holder record, if any.

    When the lock is taken, raise :class:`LockedError` with ``busy(holder)`` as its message.
    The file is removed on leaving the block.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield {}
        return
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise LockedError(busy(holder)) from None
        try:  # the file we locked must still be the one at the path: a leaving holder unlinks it
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _holder(fd)  # a clean exit removes the file, so a record here outlived its process
    me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    try:
        yield stale
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it; see the inode check above
        os.close(fd)
