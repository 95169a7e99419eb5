"""A download folder's ``manifest.jsonl`` and temp files: what makes a download resumable.

Every URL gets one flushed line (url, file, sha256, bytes, status), so a killed run loses at most
one; a later line for the same URL wins. A file counts as complete only while its size and sha256
still match its ``ok`` record. Bytes in flight live in hidden temp files named
``TEMP_PREFIX...TEMP_SUFFIX`` in the folder, which the next run deletes if a run was SIGKILLed.

A crawl of numbered pages (``--page URL --pages 1-8000``) keeps ``pages.jsonl`` by the same rules:
one flushed line per page read (its URL, status and the image URLs found on it), a later line
for the same page winning, so a rerun reads no page again that was read before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

MANIFEST = "manifest.jsonl"
PAGES = "pages.jsonl"
TEMP_PREFIX, TEMP_SUFFIX = ".gankit-dl-", ".part"


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_records(path: Path) -> dict[str, dict]:
    """Latest record per ``url`` in a JSON-lines file; a torn last line (killed run) is ignored."""
    records: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and "url" in rec:
                    records[rec["url"]] = rec  # a later line wins; order stays first-seen
    return records


def read_manifest(dst: Path) -> dict[str, dict]:
    """Latest record per URL in ``dst/manifest.jsonl``; a torn last line (killed run) is ignored."""
    return _read_records(dst / MANIFEST)


def read_pages(dst: Path) -> dict[str, dict]:
    """Latest record per page URL in ``dst/pages.jsonl``; a torn last line is ignored."""
    return _read_records(dst / PAGES)


def is_complete(dst: Path, rec: dict) -> bool:
    """Whether ``rec`` is ``ok`` and its file in ``dst`` still has the recorded size and sha256."""
    if rec.get("status") != "ok" or not isinstance(rec.get("file"), str):
        return False
    path = dst / rec["file"]
    if path.parent != dst:  # a hand-edited manifest must not point outside DST
        return False
    return (
        path.is_file()
        and path.stat().st_size == rec.get("bytes")
        and sha256_file(path) == rec.get("sha256")
    )


def _compact(dst: Path, name: str) -> None:
    """Rewrite ``dst/name`` with one line per URL (the latest), atomically."""
    records = _read_records(dst / name)
    fd, tmp = tempfile.mkstemp(dir=dst, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records.values())
    os.replace(tmp, dst / name)


def compact_manifest(dst: Path) -> None:
    """Rewrite the manifest with one line per URL (the latest), atomically."""
    _compact(dst, MANIFEST)


def compact_pages(dst: Path) -> None:
    """Rewrite ``pages.jsonl`` with one line per page (the latest), atomically, if it exists."""
    if (dst / PAGES).exists():
        _compact(dst, PAGES)
