"""Download images from a list of URLs or from the ``<img>`` tags of a web page.

Every URL ends with one line in ``DST/manifest.jsonl`` (url, file, sha256, bytes, status). A file
only appears under its final name once it is complete and decodes with PIL: bytes go to a hidden
temp file in DST first and are renamed with ``os.replace``. Ctrl-C / SIGTERM stop the workers,
which delete their temp files; after a SIGKILL the next run deletes the leftovers. A rerun skips
URLs whose manifest entry is ``ok`` and whose file is still intact, so an interrupted download
resumes where it stopped.

:func:`download_pages` crawls numbered pages of a gallery (``--page URL --pages 1-8000``), one
page after another: it reads a page, downloads that page's images, then reads the next, all
through one rate-limited opener. Each page read is recorded in ``DST/pages.jsonl`` with the image
URLs found on it, so a rerun fetches only the pages that failed or were never read, and retries
only the images that are not complete.

This module runs a whole download: the folder lock, the worker pool and interruption. The URLs
come from :mod:`gankit.data.prep.image_urls`, each is fetched by
:mod:`gankit.data.prep.download_fetch` (names from :mod:`gankit.data.prep.download_names`), and
the records live in :mod:`gankit.data.prep.download_manifest`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from gankit.data.prep.download_fetch import Downloader, DownloadOptions
from gankit.data.prep.download_manifest import (
    PAGES,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    compact_manifest,
    compact_pages,
    is_complete,
    read_manifest,
    read_pages,
)
from gankit.data.prep.image_urls import PAGE_FIELD, page_url, urls_from_page
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
    pages: Counter = field(default_factory=Counter)  # a crawl: page status -> pages
    pages_read_before: int = 0  # a crawl: pages not fetched again (read by an earlier run)


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


def _prepare(dst: str | os.PathLike, options: DownloadOptions) -> Path:
    if options.workers < 1 or options.retries < 0 or options.max_bytes < 1:
        raise DataError("--workers and --max-bytes must be >= 1 and --retries >= 0")
    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{dst} is a file: DST must be a folder for the downloaded images")
    dst.mkdir(parents=True, exist_ok=True)
    return dst


def _resume(dst: Path) -> dict[str, dict]:
    """Under the lock: delete a SIGKILLed run's temp files; the URLs already complete."""
    for stale in dst.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    return {u: r for u, r in read_manifest(dst).items() if is_complete(dst, r)}


def _result(dst: Path, urls: list[str], done: dict[str, dict]) -> DownloadResult:
    latest = read_manifest(dst)
    records = [latest[u] for u in urls if u in latest]
    counts = Counter(r["status"] for r in records)
    return DownloadResult(dst, records, skipped=sum(u in done for u in urls), counts=counts)


def download_urls(
    urls: list[str], dst: str | os.PathLike, options: DownloadOptions | None = None
) -> DownloadResult:
    """Download ``urls`` into ``dst`` (see the module docstring); resumable and interruptible."""
    options = options or DownloadOptions()
    dst = _prepare(dst, options)
    urls = list(dict.fromkeys(urls))
    with _exclusive(dst):
        done = _resume(dst)
        todo = [u for u in urls if u not in done]
        downloader = Downloader(dst, options, done)
        try:
            _run(downloader, todo, options)
        finally:
            downloader.close()
            compact_manifest(dst)
    return _result(dst, urls, done)


def download_pages(
    template: str,
    pages: Sequence[int],
    selector: str,
    dst: str | os.PathLike,
    attr: str | None = None,
    options: DownloadOptions | None = None,
) -> DownloadResult:
    """Crawl ``template`` (a URL with ``{page}``) for each number in ``pages``: read the page, then
    download the images its ``selector`` elements point to, then the next page (see the module
    docstring). A page that cannot be read or matches nothing is recorded and skipped, unless no
    page of the range has worked yet: then the URL or the selector is wrong, and it stops."""
    options = options or DownloadOptions()
    if PAGE_FIELD not in template:
        raise DataError(
            f"--pages needs {PAGE_FIELD} in the --page URL where the page number goes, "
            f"e.g. https://example.org/gallery?page={PAGE_FIELD}"
        )
    dst = _prepare(dst, options)
    quiet = replace(options, progress=False)  # one bar, over the pages
    urls: dict[str, None] = {}  # every image URL of the range, in page order
    pages_seen: Counter = Counter()
    read_before = 0
    with _exclusive(dst):
        done = _resume(dst)
        known = read_pages(dst)
        worked = any(r.get("status") == "ok" for r in known.values())
        downloader = Downloader(dst, options, done)
        page_log = open(dst / PAGES, "a", encoding="utf-8")  # noqa: SIM115
        bar = tqdm(total=len(pages), unit="page", desc="pages", disable=not options.progress)
        try:
            with _sigterm_as_interrupt():
                for n in pages:
                    url = page_url(template, n)
                    rec = known.get(url)
                    if rec is not None and rec.get("status") == "ok":
                        read_before += 1
                    else:
                        rec = _read_page(url, n, selector, attr, options, downloader, worked)
                        page_log.write(json.dumps(rec) + "\n")  # one flushed line per page
                        page_log.flush()
                    worked = worked or rec["status"] == "ok"
                    pages_seen[rec["status"]] += 1
                    found = [u for u in rec.get("urls", []) if isinstance(u, str)]
                    todo = [u for u in dict.fromkeys(found) if u not in done and u not in urls]
                    urls.update(dict.fromkeys(found))
                    _run(downloader, todo, quiet)
                    bar.update()
                    bar.set_postfix(images=len(urls))
        finally:
            bar.close()
            page_log.close()
            downloader.close()
            compact_manifest(dst)
            compact_pages(dst)
    result = _result(dst, list(urls), done)
    result.pages, result.pages_read_before = pages_seen, read_before
    return result


def _read_page(
    url: str,
    n: int,
    selector: str,
    attr: str | None,
    options: DownloadOptions,
    downloader: Downloader,
    worked: bool,
) -> dict:
    """The ``pages.jsonl`` record of page ``n``: ``ok`` with its image URLs, or ``failed``."""
    try:
        found = urls_from_page(url, selector, attr, options, downloader.opener)
    except DataError as e:
        if not worked:
            raise DataError(
                f"{e} (no page of --pages has worked yet: check the URL and --select)"
            ) from None
        return {"page": n, "url": url, "status": "failed", "error": str(e), "urls": []}
    return {"page": n, "url": url, "status": "ok", "urls": found}


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
