"""Download images from a list of URLs or from the ``<img>`` tags of a web page.

Every URL ends with one line in ``DST/manifest.jsonl`` (url, file, sha256, bytes, status). A file
only appears under its final name once it is complete and decodes with PIL: bytes go to a hidden
temp file in DST first and are renamed with ``os.replace``. Ctrl-C / SIGTERM stop the workers,
which delete their temp files; after a SIGKILL the next run deletes the leftovers. A rerun skips
URLs whose manifest entry is ``ok`` and whose file is still intact, so an interrupted download
resumes where it stopped.

This module runs a whole download: the folder lock, the worker pool and interruption. The URLs
come from :mod:`gankit.data.prep.image_urls`, each is fetched by
:mod:`gankit.data.prep.download_fetch` (names from :mod:`gankit.data.prep.download_names`), and
the records live in :mod:`gankit.data.prep.download_manifest`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from gankit.data.prep.download_fetch import Downloader, DownloadOptions
from gankit.data.prep.download_manifest import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    compact_manifest,
    is_complete,
    read_manifest,
)
from gankit.engine.locks import describe, exclusive
from gankit.errors import DataError

LOCK_NAME = ".gankit-download.lock"


@dataclass
class DownloadResult:
    """What happened to each requested URL (its latest manifest record)."""

    dst: Path
    records: list[dict]
    skipped: int = 0  # URLs already complete before this run
    counts: Counter = field(default_factory=Counter)


def _exclusive(dst: Path) -> contextlib.AbstractContextManager:
    """Hold a lock on DST so two downloads never clean up each other's temp files."""
    return exclusive(
        dst / LOCK_NAME,
        lambda holder: (
            f"another gankit download ({describe(holder)}) is writing to {dst}: "
            "wait for it or use another folder"
        ),
    )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so a killed run cleans up like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def download_urls(
    urls: list[str], dst: str | os.PathLike, options: DownloadOptions | None = None
) -> DownloadResult:
    """Download ``urls`` into ``dst`` (see the module docstring); resumable and interruptible."""
    options = options or DownloadOptions()
    if options.workers < 1 or options.retries < 0 or options.max_bytes < 1:
        raise DataError("--workers and --max-bytes must be >= 1 and --retries >= 0")
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{dst} is a file: DST must be a folder for the downloaded images")
    dst.mkdir(parents=True, exist_ok=True)
    urls = list(dict.fromkeys(urls))
    with _exclusive(dst):
        for stale in dst.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):  # left by a SIGKILLed run
            stale.unlink(missing_ok=True)
        previous = read_manifest(dst)
        done = {u: r for u, r in previous.items() if is_complete(dst, r)}
        todo = [u for u in urls if u not in done]
        downloader = Downloader(dst, options, done)
        try:
            _run(downloader, todo, options)
        finally:
            downloader.close()
            compact_manifest(dst)
    latest = read_manifest(dst)
    records = [latest[u] for u in urls if u in latest]
    counts = Counter(r["status"] for r in records)
    return DownloadResult(dst, records, skipped=sum(u in done for u in urls), counts=counts)


def _run(downloader: Downloader, todo: list[str], options: DownloadOptions) -> None:
    bar = tqdm(total=len(todo), unit="img", desc="download", disable=not options.progress)
    pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="gankit-dl")
    try:
        with _sigterm_as_interrupt():
            futures = [pool.submit(downloader.fetch, u) for u in todo]
            for fut in as_completed(futures):
                fut.result()
                bar.update()
    except BaseException:
        # Workers see the flag between chunks, delete their temp file and return.
        downloader.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
