"""The URLs to download: from a text file, or from the elements of a web page.

``gankit data download --urls FILE`` reads :func:`read_url_list`; ``--page URL --select CSS``
fetches the page and reads the matching elements' URLs with :func:`urls_from_page`;
``--pages 1-8000`` does so for every numbered page of a gallery (:func:`page_url`), page by page.
"""

from __future__ import annotations

import http.client
import os
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

from gankit.data.prep.download_fetch import DownloadOptions, build_opener
from gankit.errors import DataError


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


PAGE_FIELD = "{page}"
"""Where the page number goes in a ``--page`` URL crawled with ``--pages``."""


def page_url(template: str, page: int) -> str:
    """``template`` with :data:`PAGE_FIELD` replaced by ``page`` (``...?p={page}`` → ``...?p=7``)."""
    return template.replace(PAGE_FIELD, str(page))


def urls_from_page(
    page_url: str,
    selector: str,
    attr: str | None = None,
    options: DownloadOptions | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> list[str]:
    """Fetch ``page_url`` and return the image URLs its ``selector`` elements point to.

    ``opener`` (default: a new one) carries the per-host rate limit: a crawl passes the one its
    image downloads use, so pages and images share the host's budget."""
    options = options or DownloadOptions()
    if urlsplit(page_url).scheme not in ("http", "https"):
        raise DataError(f"--page {page_url}: only http:// and https:// pages can be read")
    opener = opener or build_opener(options, threading.Event())
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
