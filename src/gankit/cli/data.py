"""The ``gankit data ...`` subcommands: download, faces, lsun-export, validate (and cifar-folders).

Each command parses its options here and calls one library function; the heavy imports (OpenCV,
lmdb, bs4) happen only when that command runs, so ``gankit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from gankit.cli.options import number
from gankit.data.prep.cifar_folders import add_cifar_folders_command
from gankit.errors import DataError


def _byte_size(text: str) -> int:
    """``20000``, ``500k``, ``20M``, ``1G`` → bytes (powers of 1024)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b")
    factor = units.get(t[-1:], 1)
    try:
        value = int(float(t[:-1] if t[-1:] in units else t) * factor)
    except (ValueError, OverflowError):  # "abc"; "inf" (int(inf) overflows)
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 20M or 500k") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1 byte")
    return value


def _page_range(text: str) -> range:
    """``1-8000`` → pages 1 to 8000 (both included); ``7`` → page 7 alone."""
    first, dash, last = text.strip().partition("-")
    try:
        lo = int(first)
        hi = int(last) if dash else lo
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a page range like 1-8000 or a page number like 7"
        ) from None
    if hi < lo:
        raise argparse.ArgumentTypeError(f"{text}: the first page must not come after the last")
    return range(lo, hi + 1)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not the meaningless "(default: None)" / "(default: False)"."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action)


def add_data_group(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit data`` with its tools (these and ``cifar-folders``) on ``sub``."""
    p = sub.add_parser(
        "data",
        help="prepare datasets: download, faces, lsun-export, validate, cifar-folders",
        description="Tools that turn messy collections into training folders.",
    )
    data_sub = p.add_subparsers(dest="data_command", metavar="TOOL", required=True)
    add_data_commands(data_sub)
    add_cifar_folders_command(data_sub)


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``download``, ``faces``, ``lsun-export`` and ``validate`` on ``subparsers``."""
    _add_download(subparsers)
    _add_faces(subparsers)
    _add_lsun_export(subparsers)
    _add_validate(subparsers)


def _add_download(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "download",
        help="download images from a URL list or a web page",
        description="Download images concurrently into DST with retries, resume and checks. "
        "Each URL gets a line in DST/manifest.jsonl; rerun the same command to resume.",
        formatter_class=_HelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--urls", metavar="FILE", help="text file with one URL per line (# comments)")
    src.add_argument(
        "--page",
        metavar="URL",
        help="web page whose images to download (needs --select); with --pages, a URL with "
        "{page} where the page number goes",
    )
    p.add_argument(
        "--select", metavar="CSS", help="CSS selector of the elements on --page, e.g. 'img.preview'"
    )
    p.add_argument(
        "--pages",
        metavar="RANGE",
        type=_page_range,
        help="crawl the numbered pages FIRST-LAST (or one page N) of --page, page by page; "
        "pages read before are not fetched again (DST/pages.jsonl)",
    )
    p.add_argument("--attr", help="attribute holding the URL (default: src, data-src or href)")
    p.add_argument("dst", metavar="DST", help="folder for the images and manifest.jsonl")
    p.add_argument("--workers", type=number(int, 1), default=8, help="parallel downloads")
    p.add_argument(
        "--retries", type=number(int, 0), default=3, help="retries after timeouts, resets, 429/5xx"
    )
    p.add_argument(
        "--backoff", type=number(float, 0), default=1.0, help="first retry delay in s, doubling"
    )
    p.add_argument(
        "--timeout", type=number(float, 0, lo_open=True), default=30.0, help="socket timeout in s"
    )
    p.add_argument(
        "--max-bytes", type=_byte_size, default="20M", help="largest file accepted (20M, 500k, ...)"
    )
    p.add_argument(
        "--per-host-rate",
        type=number(float, 0),
        default=2.0,
        help="requests/s per host, 0 = no limit",
    )
    p.set_defaults(func=run_download)


def _add_faces(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "faces",
        help="crop faces from pictures with an OpenCV cascade",
        description="Detect faces in every image under SRC and save square size×size PNG crops "
        "in DST (keeping sub-folders) plus DST/faces_report.json.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("src", metavar="SRC", help="folder of pictures (searched recursively)")
    p.add_argument("dst", metavar="DST", help="folder for the crops")
    p.add_argument(
        "--cascade",
        default="anime",
        help="anime (drawings), frontal (photos) or a cascade .xml path",
    )
    p.add_argument(
        "--size", type=number(int, 1), default=96, help="side of the saved crops in pixels"
    )
    p.add_argument(
        "--margin",
        type=number(float, 0),
        default=0.2,
        help="extra border per side, as a fraction of the face",
    )
    p.add_argument(
        "--min-size", type=number(int, 1), default=48, help="smallest face to detect, in pixels"
    )
    p.add_argument(
        "--scale-factor",
        type=number(float, 1, lo_open=True),
        default=1.1,
        help="detector pyramid step (> 1)",
    )
    p.add_argument(
        "--min-neighbors", type=number(int, 0), default=5, help="detections needed to accept a face"
    )
    p.set_defaults(func=run_faces)


def _add_lsun_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lsun-export",
        help="write the images of an LSUN lmdb as files",
        description="Write each entry of an LSUN-style lmdb to DST as an image file named by its "
        "key, with the original bytes (no re-encoding).",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("lmdb", metavar="LMDB", help="lmdb folder (with data.mdb) or the data.mdb file")
    p.add_argument("dst", metavar="DST", help="output folder")
    p.add_argument(
        "--limit", type=number(int, 1), default=None, help="export only the first N entries"
    )
    p.set_defaults(func=run_lsun_export)


def _add_validate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="find broken, odd and duplicate images in a folder",
        description="Decode every image under DIR and sort it into ok / zero-byte / unreadable / "
        "truncated / duplicate / tiny / animated / 16-bit / cmyk. Exit status 1 while problem "
        "files remain in DIR (neither fixed nor quarantined). Never deletes anything.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("dir", metavar="DIR", help="image folder (searched recursively)")
    p.add_argument(
        "--quarantine", metavar="DIR", help="move problem files here, keeping relative paths"
    )
    p.add_argument("--fix", action="store_true", help="rewrite animated/16-bit/CMYK files in place")
    p.add_argument(
        "--min-size", type=number(int, 1), default=16, help="smaller width or height counts as tiny"
    )
    p.set_defaults(func=run_validate)


def _interrupted(what: str) -> int:
    print(f"interrupted: {what}", file=sys.stderr)
    return 130


def run_download(args: argparse.Namespace) -> int:
    """``gankit data download``: exit 0 if every URL ended ok, 1 if some failed."""
    from gankit.data.prep.download import download_pages, download_urls
    from gankit.data.prep.download_fetch import DownloadOptions
    from gankit.data.prep.download_manifest import MANIFEST
    from gankit.data.prep.image_urls import PAGE_FIELD, read_url_list, urls_from_page

    options = DownloadOptions(
        workers=args.workers,
        retries=args.retries,
        backoff=args.backoff,
        timeout=args.timeout,
        max_bytes=args.max_bytes,
        per_host_rate=args.per_host_rate,
        progress=sys.stderr.isatty(),
    )
    if args.page and not args.select:
        raise DataError("--page needs --select CSS (e.g. --select 'img.preview')")
    if args.select and not args.page:
        raise DataError("--select only applies with --page URL")
    if args.pages is not None and not args.page:
        raise DataError("--pages only applies with --page URL (a URL with {page} in it)")
    if args.page and args.pages is None and PAGE_FIELD in args.page:
        raise DataError(f"--page has {PAGE_FIELD}: give the page numbers, e.g. --pages 1-100")
    try:
        if args.pages is not None:
            result = download_pages(
                args.page, args.pages, args.select, args.dst, args.attr, options
            )
        else:
            if args.page:
                urls = urls_from_page(args.page, args.select, args.attr, options)
            else:
                urls = read_url_list(args.urls)
            result = download_urls(urls, args.dst, options)
    except KeyboardInterrupt:
        return _interrupted(f"complete files are kept in {args.dst}; rerun to resume")
    all_pages = sum(result.pages.values())
    if args.pages is not None:
        parts = ", ".join(f"{n} {status}" for status, n in sorted(result.pages.items()))
        print(f"{all_pages} pages: {parts} ({result.pages_read_before} were read before)")
    parts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    print(f"{len(result.records)} URLs: {parts} ({result.skipped} were already complete)")
    print(f"manifest: {result.dst / MANIFEST}")
    images_ok = result.counts["ok"] == len(result.records)
    return 0 if images_ok and result.pages["ok"] == all_pages else 1


def run_faces(args: argparse.Namespace) -> int:
    """``gankit data faces``: exit 0 once the report is written."""
    from gankit.data.prep.faces import REPORT_NAME, crop_faces

    try:
        report = crop_faces(
            args.src,
            args.dst,
            cascade=args.cascade,
            size=args.size,
            margin=args.margin,
            min_size=args.min_size,
            scale_factor=args.scale_factor,
            min_neighbors=args.min_neighbors,
            progress=sys.stderr.isatty(),
        )
    except KeyboardInterrupt:
        return _interrupted("crops written so far are kept")
    print(report.summary())
    print(f"report: {args.dst}/{REPORT_NAME}")
    return 0


def run_lsun_export(args: argparse.Namespace) -> int:
    """``gankit data lsun-export``: exit 0 if every exported entry was an image."""
    from gankit.data.prep.lsun import export_lmdb

    try:
        result = export_lmdb(args.lmdb, args.dst, args.limit, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        return _interrupted("files written so far are complete")
    print(f"wrote {result.written} images to {result.dst}")
    if result.skipped:
        shown = ", ".join(result.skipped[:5]) + (" ..." if len(result.skipped) > 5 else "")
        print(f"skipped {len(result.skipped)} entries that are not images: {shown}")
    return 0 if not result.skipped else 1


def run_validate(args: argparse.Namespace) -> int:
    """``gankit data validate``: exit 0 when no problem file remains in DIR."""
    from gankit.data.prep.validate import format_report, validate_folder

    try:
        result = validate_folder(
            args.dir,
            quarantine=args.quarantine,
            fix=args.fix,
            min_size=args.min_size,
            progress=sys.stderr.isatty(),
        )
    except KeyboardInterrupt:
        return _interrupted("files already fixed or quarantined stay so; nothing was lost")
    print(format_report(result))
    return 0 if not result.remaining else 1
