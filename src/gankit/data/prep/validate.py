"""Find the files in an image folder that would break or bias training, and optionally deal with them.

Every file with an image extension is decoded in full and given one kind, the first that applies:
zero-byte, unreadable (not an image despite its name), truncated, duplicate (same decoded pixels
as an earlier file in sorted order), tiny, animated, 16-bit, cmyk, else ok. ``fix`` rewrites the
fixable kinds (animated → first frame, 16-bit → 8-bit, CMYK → RGB) in place through a temp file and
``os.replace``; ``quarantine`` moves the broken and unwanted files away (not the fixable ones,
which training converts itself), keeping their relative paths.
Nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from gankit.data.images import IMAGE_EXTENSIONS, convert_mode, to_8bit
from gankit.errors import DataError

KINDS = (
    "ok",
    "zero-byte",
    "unreadable",
    "truncated",
    "duplicate",
    "tiny",
    "animated",
    "16-bit",
    "cmyk",
)
FIXABLE = frozenset({"animated", "16-bit", "cmyk"})
HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
# Broken files make PIL's decoders raise many types (struct.error, IndexError, ...), and one odd
# file must not abort a scan of a million, so any Exception while decoding is a verdict.
DECODE_ERRORS = (Exception,)


@dataclass
class FileCheck:
    """The verdict on one file; ``path`` is relative to the validated folder."""

    path: Path
    kind: str
    detail: str = ""
    pixel_hash: str | None = field(default=None, repr=False)
    action: str = ""  # "fixed" or "quarantined: <path>" once acted upon


@dataclass
class ValidationResult:
    """All verdicts, in sorted path order, and what was done about them."""

    root: Path
    checks: list[FileCheck]
    ignored: int = 0  # files without an image extension (gankit never reads them)

    @property
    def counts(self) -> dict[str, int]:
        """Number of files of each kind (every kind listed, zeros included)."""
        c = Counter(ch.kind for ch in self.checks)
        return {k: c[k] for k in KINDS}

    @property
    def problems(self) -> list[FileCheck]:
        """Every file that is not ok."""
        return [ch for ch in self.checks if ch.kind != "ok"]

    @property
    def remaining(self) -> list[FileCheck]:
        """Problem files still in the folder as they were (neither fixed nor quarantined)."""
        return [ch for ch in self.problems if not ch.action]


def inspect_file(path: Path, min_size: int = 16) -> tuple[str, str, str | None]:
    """(kind, detail, pixel hash) of one file; the ``duplicate`` kind is decided by the caller."""
    if path.stat().st_size == 0:
        return "zero-byte", "empty file", None
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        return "unreadable", "not an image that PIL can read", None
    except DECODE_ERRORS as e:
        # A JPEG cut inside its headers fails already here ("Truncated File Read"): that is an
        # interrupted transfer, not a file of the wrong kind.
        kind = "truncated" if "truncat" in str(e).lower() else "unreadable"
        return kind, f"{type(e).__name__}: {e}", None
    with img:
        try:
            frames = getattr(img, "n_frames", 1)  # walks every frame of a GIF: can hit truncation
            img.seek(0)
            img.load()
            # What training would see: identical pixels are duplicates whatever the encoding.
            rgb = convert_mode(img, 3)
        except DECODE_ERRORS as e:
            return "truncated", f"{type(e).__name__}: {e}", None
        w, h = img.size
        digest = hashlib.sha256(f"{w}x{h}:".encode() + rgb.tobytes()).hexdigest()
        if min(w, h) < min_size:
            return "tiny", f"{w}x{h} (< {min_size})", digest
        if frames > 1:
            return "animated", f"{frames} frames", digest
        if img.mode in HIGH_DEPTH_MODES:
            return "16-bit", f"mode {img.mode}", digest
        if img.mode == "CMYK":
            return "cmyk", "CMYK colours", digest
    return "ok", "", digest


def _scan(root: Path, skip: Path | None) -> tuple[list[Path], int]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: give the image folder to validate")
    files, ignored = [], 0
    for p in sorted(root.rglob("*")):
        if not p.is_file() or (skip is not None and skip in p.resolve().parents):
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            files.append(p)
        else:
            ignored += 1
    return files, ignored


def validate_folder(
    root: str | os.PathLike,
    quarantine: str | os.PathLike | None = None,
    fix: bool = False,
    min_size: int = 16,
    workers: int = 4,
    progress: bool = True,
) -> ValidationResult:
    """Classify every image file under ``root``; fix and/or quarantine problems if asked."""
    root = Path(root)
    qdir = Path(quarantine).resolve() if quarantine is not None else None
    if qdir is not None and (qdir == root.resolve() or qdir in root.resolve().parents):
        raise DataError(f"--quarantine {quarantine} must not be {root} or contain it")
    files, ignored = _scan(root, qdir)
    # Decoding releases the GIL, so threads overlap the work of several files.
    with ThreadPoolExecutor(max(1, workers)) as pool:
        verdicts = list(
            tqdm(
                pool.map(lambda p: inspect_file(p, min_size), files),
                total=len(files),
                desc="validate",
                unit="img",
                disable=not progress,
            )
        )
    checks, first_seen = [], {}
    for path, (kind, detail, digest) in zip(files, verdicts, strict=True):
        rel = path.relative_to(root)
        if digest is not None:
            if digest in first_seen:
                kind, detail = "duplicate", f"same pixels as {first_seen[digest]}"
            else:
                first_seen[digest] = rel
        checks.append(FileCheck(rel, kind, detail, digest))
    result = ValidationResult(root, checks, ignored)
    for ch in result.problems:
        if fix and ch.kind in FIXABLE:
            fix_file(root / ch.path, ch.kind)
            ch.action = "fixed"
        elif qdir is not None and ch.kind not in FIXABLE:
            # Training converts CMYK, 16-bit and animated files itself: they are reported (and
            # rewritten with --fix), never moved away as if they were broken.
            ch.action = f"quarantined: {_move(root / ch.path, qdir / ch.path)}"
    return result


def fix_file(path: Path, kind: str) -> None:
    """Rewrite ``path`` in place so it is no longer ``kind`` (animated, 16-bit or cmyk)."""
    try:
        with Image.open(path) as img:
            fmt = "JPEG" if img.format == "MPO" else img.format
            img.seek(0)
            img.load()
            if kind == "16-bit":
                out = to_8bit(img)
            elif kind == "cmyk":
                out = img.convert("RGB")
            else:
                out = img.copy()
        options = {"quality": 95} if fmt == "JPEG" else {}
        if fmt == "WEBP":
            options = {"lossless": True}  # the first frame is already lossy: do not add more loss
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".gankit-fix-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                out.save(f, format=fmt, **options)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except DECODE_ERRORS as e:
        raise DataError(f"--fix could not rewrite {path} ({e}); use --quarantine instead") from None


def _move(src: Path, dest: Path) -> Path:
    """Move ``src`` to ``dest`` (or ``dest_1``... if taken) and return where it went."""
    stem, suffix, k = dest.stem, dest.suffix, 0
    while dest.exists():
        k += 1
        dest = dest.with_name(f"{stem}_{k}{suffix}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.move(str(src), str(dest))
    except OSError as e:
        raise DataError(f"--quarantine: cannot move {src} to {dest} ({e})") from None
    return dest


def format_report(result: ValidationResult) -> str:
    """The summary table (files per kind) followed by one line per problem file."""
    lines = [f"{'kind':<12}{'files':>8}"]
    lines += [f"{kind:<12}{n:>8}" for kind, n in result.counts.items()]
    if result.ignored:
        n = result.ignored
        lines.append(
            f"({n} file{'s' if n > 1 else ''} without an image extension "
            f"{'were' if n > 1 else 'was'} not checked)"
        )
    if result.problems:
        lines.append("")
        lines.append("problem files:")
        for ch in result.problems:
            action = f"  [{ch.action}]" if ch.action else ""
            lines.append(f"  {ch.kind:<11} {ch.path}  {ch.detail}{action}")
    return "\n".join(lines)
