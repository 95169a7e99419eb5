"""Download images from a list of URLs or from the ``<img>`` tags of a web page.

Every URL ends with one line in ``DST/manifest.jsonl`` (url, file, sha256, bytes, status). A file
only appears under its final name once it is complete and decodes with PIL: bytes go to a hidden
temp file in DST first and are renamed with ``os.replace``. Ctrl-C / SIGTERM stop the workers,
which delete their temp files; after a SIGKILL the next run deletes the leftovers. A rerun skips
URLs whose manifest entry is ``ok`` and whose file is still intact, so an interrupted download
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urldefrag, urljoin, urlsplit

from PIL import Image
from tqdm import tqdm

from gankit.engine.locks import describe, exclusive
from gankit.errors import DataError

MANIFEST = "manifest.jsonl"
TEMP_PREFIX, TEMP_SUFFIX = ".gankit-dl-", ".part"
LOCK_NAME = ".gankit-download.lock"
USER_AGENT = "gankit-download/0.1 (+https://github.com/gankit)"
# PIL format -> suffixes that may keep their name; the first one is used when we must pick.
FORMAT_SUFFIXES = {
    "JPEG": (".jpg", ".jpeg"),
    "MPO": (".jpg", ".jpeg"),  # camera JPEGs with extra frames; the first frame is plain JPEG
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
}
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
OK_CONTENT_TYPES = {"application/octet-stream", "binary/octet-stream"}
WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


@dataclass
class DownloadOptions:
    """Knobs of :func:`download_urls`; the defaults are polite to the servers."""

    workers: int = 8
    retries: int = 3
    backoff: float = 1.0  # first retry waits ~backoff s, then 2x, 4x, ... (capped at 60 s)
    timeout: float = 30.0
    max_bytes: int = 20 * 1024 * 1024
    per_host_rate: float = 2.0  # requests per second per host; 0 = unlimited
    progress: bool = True


@dataclass
class DownloadResult:
    """What happened to each requested URL (its latest manifest record)."""

    dst: Path
    records: list[dict]
    skipped: int = 0  # URLs already complete before this run
    counts: Counter = field(default_factory=Counter)


class _Retry(Exception):
    def __init__(self, status: str, message: str, wait: float | None = None):
        super().__init__(message)
        self.status, self.wait = status, wait


class _Stopped(Exception):
    """Raised inside workers once the run is being interrupted."""


class _BadScheme(urllib.error.URLError):
    pass


def safe_name_from_url(url: str) -> str:
    """A harmless file name from the last path segment of ``url``.

    Percent-escapes are decoded first so that ``..%2F..%2Fx.png`` cannot smuggle a path; only the
    last segment survives, limited to ``[A-Za-z0-9._-]``, without leading dots.
    """
    segment = re.split(r"[/\\]", unquote(urlsplit(url).path))[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", segment).lstrip(".-_").rstrip(". ")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem[:100] or "image"
    if stem.lower() in WINDOWS_RESERVED:
        stem = "_" + stem
    return f"{stem}.{ext[:10]}" if ext else stem


def _name_for_format(name: str, fmt: str) -> str:
    """Keep ``name`` if its suffix matches the decoded format, else give it the format's suffix."""
    base, dot, ext = name.rpartition(".")
    suffix = f".{ext.lower()}" if dot else ""
    if suffix in FORMAT_SUFFIXES[fmt]:
        return name
    # A stray suffix like ".php" is kept in the stem (as "_php") so names stay distinct.
    stem = f"{base}_{ext}" if dot else name
    return stem + FORMAT_SUFFIXES[fmt][0]


def find_image_urls(html: str, base_url: str, selector: str, attr: str | None = None) -> list[str]:
    """Absolute URLs from the elements of ``html`` matching the CSS ``selector``, in page order.

    The URL is taken from ``attr`` if given, else ``src``, ``data-src`` or ``href``.
    """
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise DataError("--page needs beautifulsoup4: pip install beautifulsoup4") from None
    soup = BeautifulSoup(html, "html.parser")
    base_tag = soup.find("base", href=True)
    base = urljoin(base_url, base_tag["href"]) if base_tag else base_url
    try:
        elements = soup.select(selector)
    except Exception as e:  # soupsieve raises its own SelectorSyntaxError
        raise DataError(f"--select {selector!r} is not a valid CSS selector ({e})") from None
    urls: list[str] = []
    for el in elements:
        value = el.get(attr) if attr else el.get("src") or el.get("data-src") or el.get("href")
        if isinstance(value, str) and value.strip():
            urls.append(urldefrag(urljoin(base, value.strip()))[0])
    return list(dict.fromkeys(urls))


def read_url_list(path: str | os.PathLike) -> list[str]:
    """URLs from a text file, one per line; blank lines and ``#`` comments are ignored."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"--urls {path}: cannot read the URL list ({e})") from None
    return list(dict.fromkeys(s.strip() for s in lines if s.strip() and not s.startswith("#")))


class _HostRateLimit(urllib.request.BaseHandler):
    """Spaces requests to each host ``1/rate`` seconds apart, redirect hops included."""

    handler_order = 100  # run before the HTTP handlers open the connection

    def __init__(self, rate: float, stop: threading.Event):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.stop = stop
        self.next_slot: dict[str, float] = {}
        self.lock = threading.Lock()

    def http_request(self, req: urllib.request.Request) -> urllib.request.Request:
        if self.interval:
            with self.lock:
                slot = max(time.monotonic(), self.next_slot.get(req.host, 0.0))
                self.next_slot[req.host] = slot + self.interval
            if self.stop.wait(max(0.0, slot - time.monotonic())):
                raise _Stopped
        return req

    https_request = http_request


class _SafeRedirect(urllib.request.HTTPRedirectHandler):
    """Follows at most 5 redirects, and only to http(s): never to file://, ftp://, ..."""

    max_redirections = 5

    def http_error_302(self, req, fp, code, msg, headers):
        target = headers.get("Location") or headers.get("URI") or ""
        if urlsplit(urljoin(req.full_url, target)).scheme not in ("http", "https"):
            fp.close()
            raise _BadScheme(f"redirect to {target[:200]}")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def build_opener(options: DownloadOptions, stop: threading.Event) -> urllib.request.OpenerDirector:
    """A urllib opener with the per-host rate limit and an http(s)-only redirect policy."""
    return urllib.request.build_opener(_HostRateLimit(options.per_host_rate, stop), _SafeRedirect)


def urls_from_page(
    page_url: str, selector: str, attr: str | None = None, options: DownloadOptions | None = None
) -> list[str]:
    """Fetch ``page_url`` and return the image URLs its ``selector`` elements point to."""
    options = options or DownloadOptions()
    if urlsplit(page_url).scheme not in ("http", "https"):
        raise DataError(f"--page {page_url}: only http:// and https:// pages can be read")
    opener = build_opener(options, threading.Event())
    try:
        with opener.open(page_url, timeout=options.timeout) as resp:
            raw = resp.read(options.max_bytes + 1)
            charset = resp.headers.get_content_charset() or "utf-8"
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise DataError(f"--page {page_url}: could not fetch the page ({e})") from None
    if len(raw) > options.max_bytes:
        raise DataError(f"--page {page_url}: page is larger than --max-bytes {options.max_bytes}")
    urls = find_image_urls(raw.decode(charset, "replace"), page_url, selector, attr)
    if not urls:
        raise DataError(f"--select {selector!r} matched no element with a URL on {page_url}")
    return urls


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(dst: Path) -> dict[str, dict]:
    """Latest record per URL in ``dst/manifest.jsonl``; a torn last line (killed run) is ignored."""
    records: dict[str, dict] = {}
    path = dst / MANIFEST
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and "url" in rec:
                    records[rec["url"]] = rec  # a later line wins; order stays first-seen
    return records


def _is_complete(dst: Path, rec: dict) -> bool:
    if rec.get("status") != "ok" or not isinstance(rec.get("file"), str):
        return False
    path = dst / rec["file"]
    if path.parent != dst:  # a hand-edited manifest must not point outside DST
        return False
    return (
        path.is_file()
        and path.stat().st_size == rec.get("bytes")
        and _sha256_file(path) == rec.get("sha256")
    )


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


class _Downloader:
    def __init__(self, dst: Path, options: DownloadOptions, done: dict[str, dict]):
        self.dst, self.options = dst, options
        self.stop = threading.Event()
        self.opener = build_opener(options, self.stop)
        self.lock = threading.Lock()
        # Names owned by complete downloads: a new URL never takes a name another URL owns.
        self.owner = {rec["file"].lower(): url for url, rec in done.items()}
        self.manifest = open(dst / MANIFEST, "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        self.manifest.close()

    def _write(self, rec: dict) -> dict:
        # Caller holds self.lock; one flushed line per URL so a killed run loses at most one.
        self.manifest.write(json.dumps(rec) + "\n")
        self.manifest.flush()
        return rec

    def record(self, url: str, status: str, error: str | None = None, **kw) -> dict:
        rec = {"url": url, "file": None, "sha256": None, "bytes": None, "status": status, **kw}
        if error:
            rec["error"] = error
        with self.lock:
            return self._write(rec)

    def fetch(self, url: str) -> dict:
        if self.stop.is_set():
            raise _Stopped
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:  # e.g. an unbalanced "[" in the host
            return self.record(url, "error", f"malformed URL: {url[:200]}")
        if parts.scheme not in ("http", "https") or not hostname:
            return self.record(url, "bad_scheme", f"not an http(s) URL: {url[:200]}")
        last = _Retry("error", "no attempt made")
        for attempt in range(self.options.retries + 1):
            try:
                return self._attempt(url)
            except _Retry as e:
                last = e
            if attempt < self.options.retries:
                delay = min(60.0, self.options.backoff * 2**attempt) * random.uniform(0.8, 1.2)
                if last.wait is not None:
                    delay = max(delay, min(last.wait, 60.0))
                if self.stop.wait(delay):
                    raise _Stopped
        return self.record(url, last.status, str(last))

    def _attempt(self, url: str) -> dict:
        # Pages often link names with spaces or non-ASCII letters; http.client only sends ASCII.
        quoted = quote(url, safe=":/?#[]@!$&'()*+,;=%~")
        req = urllib.request.Request(quoted, headers={"User-Agent": USER_AGENT})
        try:
            resp = self.opener.open(req, timeout=self.options.timeout)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code in RETRY_STATUS:
                retry_after = e.headers.get("Retry-After", "") if e.headers else ""
                wait = float(retry_after) if retry_after.isdigit() else None
                raise _Retry(f"http_{e.code}", f"HTTP {e.code}", wait) from None
            return self.record(url, f"http_{e.code}", f"HTTP {e.code}")
        except _BadScheme as e:
            return self.record(url, "bad_scheme", str(e.reason))
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise _Retry("error", f"{type(e).__name__}: {e}") from None
        with resp:
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype and not ctype.startswith("image/") and ctype not in OK_CONTENT_TYPES:
                return self.record(url, "not_image", f"content-type {ctype}")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > self.options.max_bytes:
                return self.record(url, "too_large", f"{length} bytes > --max-bytes")
            return self._save(url, resp, final_url=resp.geturl() or url)

    def _save(self, url: str, resp, final_url: str) -> dict:
        fd, tmp_name = tempfile.mkstemp(dir=self.dst, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        tmp: Path | None = Path(tmp_name)
        try:
            h, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as f:
                while True:
                    try:
                        chunk = resp.read(1 << 16)
                    except (OSError, http.client.HTTPException) as e:
                        raise _Retry("error", f"{type(e).__name__} while reading: {e}") from None
                    if self.stop.is_set():
                        raise _Stopped
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.options.max_bytes:
                        return self.record(
                            url, "too_large", f"more than {self.options.max_bytes} B"
                        )
                    h.update(chunk)
                    try:
                        f.write(chunk)
                    except OSError as e:  # disk full, quota: no point in trying other URLs
                        raise DataError(f"{self.dst}: cannot write downloads ({e})") from None
            fmt, problem = _decode_check(tmp)
            if problem:
                return self.record(url, "not_image", problem, bytes=size)
            # After a redirect the final URL usually has the meaningful name (/get?id=5 -> cat.jpg).
            name = _name_for_format(safe_name_from_url(final_url), fmt)
            sha = h.hexdigest()
            with self.lock:
                name = self._claim(url, name, sha)
                os.replace(tmp, self.dst / name)
                tmp = None
                rec = {"url": url, "file": name, "sha256": sha, "bytes": size, "status": "ok"}
                return self._write(rec)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _claim(self, url: str, name: str, sha: str) -> str:
        """``name`` or ``name_1``, ``name_2``... whichever no other URL or different file holds."""
        stem, dot, ext = name.rpartition(".")
        for k in range(100_000):
            candidate = name if k == 0 else f"{stem}_{k}{dot}{ext}"
            owner = self.owner.get(candidate.lower())
            path = self.dst / candidate
            if owner == url or (owner is None and (not path.exists() or _sha256_file(path) == sha)):
                self.owner[candidate.lower()] = url
                return candidate
        raise DataError(f"{self.dst}: too many files named like {name}")


def _decode_check(path: Path) -> tuple[str, str | None]:
    """(format, None) if ``path`` decodes fully to a format gankit reads, else ("", reason)."""
    try:
        with Image.open(path) as img:
            img.load()
            fmt = img.format or ""
    except Exception as e:  # hostile bytes make PIL's decoders raise anything
        return "", f"does not decode as an image ({type(e).__name__}: {e})"
    if fmt not in FORMAT_SUFFIXES:
        return "", f"format {fmt} is not one of JPEG/PNG/GIF/WEBP/BMP"
    return fmt, None


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
        done = {u: r for u, r in previous.items() if _is_complete(dst, r)}
        todo = [u for u in urls if u not in done]
        downloader = _Downloader(dst, options, done)
        try:
            _run(downloader, todo, options)
        finally:
            downloader.close()
            _compact_manifest(dst)
    latest = read_manifest(dst)
    records = [latest[u] for u in urls if u in latest]
    counts = Counter(r["status"] for r in records)
    return DownloadResult(dst, records, skipped=sum(u in done for u in urls), counts=counts)


def _run(downloader: _Downloader, todo: list[str], options: DownloadOptions) -> None:
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


def _compact_manifest(dst: Path) -> None:
    """Rewrite the manifest with one line per URL (the latest), atomically."""
    records = read_manifest(dst)
    fd, tmp = tempfile.mkstemp(dir=dst, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records.values())
    os.replace(tmp, dst / MANIFEST)
