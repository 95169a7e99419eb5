"""Downloading a weights file once, verified: the file appears only when its SHA-256 matches.

Used for the FID Inception (:mod:`gankit.evaluation.metrics.inception`, which re-exports it: tests
and :mod:`~gankit.evaluation.metrics.lpips` call it there) and LPIPS's weights.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from gankit.errors import CheckpointError


def download_file(
    url: str, dest: str | os.PathLike, sha256: str, *, timeout: float = 30.0, progress: bool = True
) -> Path:
    """Download ``url`` to ``dest``, verifying its SHA-256; the file appears only when verified.

    The bytes go to a temporary file beside ``dest`` that is renamed into place after the checksum
    matches (an atomic rename on POSIX), so an interrupted or corrupted download never leaves a file
    that a later run would trust. Raises CheckpointError, naming ``dest``, on network failure or a
    checksum mismatch.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256.lower():
            raise CheckpointError(
                f"download of {url} has sha256 {digest.hexdigest()}, expected {sha256}: the server "
                f"sent a different file; put a verified copy at {dest}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache file is ordinary data
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as e:
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        else:
            reason = getattr(e, "reason", None) or e
        raise CheckpointError(
            f"cannot download {url} ({reason}): put the file (sha256 {sha256}) at {dest} yourself"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest
