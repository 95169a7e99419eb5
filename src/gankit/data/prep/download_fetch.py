"""Fetching one URL: the HTTP opener, retries, and saving only complete, decodable images.

:class:`Downloader` fetches each URL with retries after timeouts, resets and 429/5xx (exponential
backoff with jitter, honouring ``Retry-After``), a per-host rate limit and http(s)-only
redirects. Bytes go to a hidden temp file in DST and are renamed into place with ``os.replace``
only once they decode fully with PIL, and each URL ends with one manifest line
(:mod:`gankit.data.prep.download_manifest`). Setting ``Downloader.stop`` makes the workers delete
their temp files and return.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from PIL import Image

from gankit.data.prep.download_manifest import MANIFEST, TEMP_PREFIX, TEMP_SUFFIX, sha256_file
from gankit.data.prep.download_names import FORMAT_SUFFIXES, name_for_format, safe_name_from_url
from gankit.errors import DataError

USER_AGENT = "gankit-download/0.1 (+https://github.com/gankit)"
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
OK_CONTENT_TYPES = {"application/octet-stream", "binary/octet-stream"}


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


class _Retry(Exception):
    def __init__(self, status: str, message: str, wait: float | None = None):
        super().__init__(message)
        self.status, self.wait = status, wait


class _Stopped(Exception):
    """Raised inside workers once the run is being interrupted."""


class _BadScheme(urllib.error.URLError):
    pass


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


class Downloader:
    """Fetches URLs into ``dst``, one manifest record each; thread-safe, stoppable."""

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
            fmt, problem = decode_check(tmp)
            if problem:
                return self.record(url, "not_image", problem, bytes=size)
            # After a redirect the final URL usually has the meaningful name (/get?id=5 -> cat.jpg).
            name = name_for_format(safe_name_from_url(final_url), fmt)
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
            if owner == url or (owner is None and (not path.exists() or sha256_file(path) == sha)):
                self.owner[candidate.lower()] = url
                return candidate
        raise DataError(f"{self.dst}: too many files named like {name}")


def decode_check(path: Path) -> tuple[str, str | None]:
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
