"""Sort flat CIFAR image files into one folder per class.

The CIFAR-10 mirror used by the fast.ai 2018 course (``cifar10-darknet.ipynb``; Joseph Redmon's
``cifar.tgz``) ships ``train/`` and ``test/`` folders of flat files named ``<id>_<class>.png``
(e.g. ``10008_airplane.png``), and the course moves them into ``train/<class>/`` and
``test/<class>/`` so that a folder-per-class dataset can read them. ``sort_cifar_folders`` does that
move (or copy), optionally renaming classes. ``gankit data cifar-folders SRC DST`` is its command.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from gankit.errors import ConfigError, DataError

__all__ = ["add_cifar_folders_command", "parse_rename", "sort_cifar_folders"]

log = logging.getLogger(__name__)

# ``<digits>_<class>.<image extension>``; the class may itself contain underscores (CIFAR-100's
# ``aquarium_fish``), so only the first underscore separates it from the id.
_NAME = re.compile(r"^(?P<id>\d+)_(?P<cls>[^\s/\\]+)\.(?:png|jpe?g|bmp|gif|webp)$", re.IGNORECASE)
_EXPECTED = "<id>_<class>.png (e.g. 10008_airplane.png)"


def _default_on_skip(path: Path, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)


def _check_class_name(name: str, what: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"cifar-folders: {what} {name!r} is not a valid folder name")


def sort_cifar_folders(
    src: str | Path,
    dst: str | Path,
    rename: dict[str, str] | None = None,
    move: bool = False,
    on_skip: Callable[[Path, str], None] | None = None,
) -> dict[str, int]:
    """Copy (or move) ``src/<id>_<class>.png`` to ``dst/<class>/<id>_<class>.png``.

    Files directly in ``src`` go to ``dst/<class>/``; files in an immediate sub-folder of ``src``
    (``train/``, ``test/``, ...) go to ``dst/<sub-folder>/<class>/``, keeping the split. Deeper
    folders are not searched. ``rename`` maps class names found in file names to folder names
    (e.g. ``{"automobile": "car"}``). Files whose names do not match are left alone and reported
    through ``on_skip(path, reason)`` (default: a logging warning), as are unused ``rename`` keys;
    hidden files are ignored. Returns the number of files per (renamed) class over all splits.

    Raises ``DataError`` if ``src`` is not a folder or holds no matching file.
    """
    src, dst = Path(src), Path(dst)
    report = on_skip or _default_on_skip
    rename = dict(rename or {})
    for old, new in rename.items():
        _check_class_name(old, "rename source")
        _check_class_name(new, "rename target")
    if not src.exists():
        raise DataError(f"cifar-folders: source folder {src} does not exist; check the path")
    if not src.is_dir():
        raise DataError(f"cifar-folders: source {src} is a file; pass the folder that holds it")

    jobs = _find_files(src, dst, report)
    counts, used = _sort_files(jobs, rename, move, report)
    for old in sorted(set(rename) - used):
        report(src, f"--rename {old}={rename[old]} matched no file; check the class name")
    if not counts:
        raise DataError(
            f"cifar-folders: no file named {_EXPECTED} in {src} or its sub-folders; "
            "pass the folder that holds the images"
        )
    return dict(sorted(counts.items()))


def _find_files(
    src: Path, dst: Path, report: Callable[[Path, str], None]
) -> list[tuple[Path, Path]]:
    """(file, destination split folder) for the files in ``src`` and its immediate sub-folders."""
    dst_resolved = dst.resolve()
    jobs: list[tuple[Path, Path]] = []  # (file, destination split folder)
    for entry in sorted(src.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            # A destination inside the source would be re-sorted on a second run: skip it.
            if entry.resolve() == dst_resolved:
                continue
            jobs.extend((f, dst / entry.name) for f in sorted(entry.iterdir()) if f.is_file())
            for sub in sorted(entry.iterdir()):
                if sub.is_dir() and not sub.name.startswith("."):
                    report(sub, "folders two levels below the source are not searched")
        elif entry.is_file():
            jobs.append((entry, dst))
    return jobs


def _sort_files(
    jobs: list[tuple[Path, Path]],
    rename: dict[str, str],
    move: bool,
    report: Callable[[Path, str], None],
) -> tuple[Counter[str], set[str]]:
    """Copy or move each matching file to ``<split folder>/<class>/``.

    Returns the files per (renamed) class and the ``rename`` keys that matched a file.
    """
    counts: Counter[str] = Counter()
    used: set[str] = set()
    for file, split_dir in jobs:
        if file.name.startswith("."):
            continue
        match = _NAME.match(file.name)
        if match is None:
            report(file, f"name does not match {_EXPECTED}; rename or remove it")
            continue
        cls = match["cls"]
        if cls in rename:
            used.add(cls)
            cls = rename[cls]
        target = split_dir / cls
        target.mkdir(parents=True, exist_ok=True)
        if move:
            shutil.move(str(file), str(target / file.name))
        else:
            shutil.copy2(file, target / file.name)
        counts[cls] += 1
    return counts, used


def parse_rename(pairs: list[str] | None) -> dict[str, str]:
    """``["automobile=car", ...]`` -> ``{"automobile": "car", ...}``; ``ConfigError`` if malformed."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ConfigError(f"cifar-folders: --rename {pair!r} must look like OLD=NEW")
        out[old] = new
    return out


def _run(args: argparse.Namespace) -> int:
    def on_skip(path: Path, reason: str) -> None:
        print(f"warning: skipped {path}: {reason}", file=sys.stderr)

    counts = sort_cifar_folders(
        args.src, args.dst, rename=parse_rename(args.rename), move=args.move, on_skip=on_skip
    )
    verb = "moved" if args.move else "copied"
    per_class = ", ".join(f"{cls} {n}" for cls, n in counts.items())
    print(f"{verb} {sum(counts.values())} files into {args.dst}: {per_class}")
    return 0


def add_cifar_folders_command(
    subparsers: argparse._SubParsersAction,  # argparse exposes no public name for this type
) -> argparse.ArgumentParser:
    """Register ``cifar-folders SRC DST [--rename OLD=NEW ...] [--move]``; ``args.func(args)`` runs it."""
    parser = subparsers.add_parser(
        "cifar-folders",
        help="sort <id>_<class>.png files into one folder per class",
        description=(
            "Copy (or move) SRC/<id>_<class>.png into DST/<class>/, keeping train/ and test/ "
            "sub-folders of SRC as DST/train/<class>/ and DST/test/<class>/."
        ),
    )
    parser.add_argument("src", type=Path, help="folder of flat <id>_<class>.png files")
    parser.add_argument("dst", type=Path, help="output folder (created if missing)")
    parser.add_argument(
        "--rename",
        nargs="+",
        action="extend",
        metavar="OLD=NEW",
        help="rename a class, e.g. --rename automobile=car (repeatable)",
    )
    parser.add_argument("--move", action="store_true", help="move the files instead of copying")
    parser.set_defaults(func=_run)
    return parser
