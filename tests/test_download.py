"""gankit data download against a local HTTP server on 127.0.0.1 (no traffic leaves the machine)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from gankit.data.prep.download import download_urls
from gankit.data.prep.download_fetch import DownloadOptions
from gankit.data.prep.download_manifest import MANIFEST, TEMP_PREFIX, TEMP_SUFFIX, read_manifest
from gankit.data.prep.download_names import safe_name_from_url
from gankit.data.prep.image_urls import find_image_urls, urls_from_page
from gankit.errors import DataError

N_IMAGES = 200


def png_bytes(i: int, size: int = 8, noise: bool = False) -> bytes:
    if noise:
        img = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    else:
        img = Image.new("RGB", (size, size), (i % 256, (i * 7) % 256, (i // 256) * 50))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class Route:
    def __init__(self, body=b"", status=200, ctype="image/png", delay=0.0, length=True, **kw):
        self.body, self.status, self.ctype, self.delay, self.length = (
            body,
            status,
            ctype,
            delay,
            length,
        )
        self.headers = kw.get("headers", {})
        self.fail_first = kw.get("fail_first", 0)  # answer 503 this many times, then normally
        self.split_delay = kw.get("split_delay", 0.0)  # pause mid-body: lets a kill catch a partial


class Server:
    """Routes by exact request path; counts hits per path and records request times."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.times: list[float] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                with server.lock:
                    n = server.hits.get(self.path, 0)
                    server.hits[self.path] = n + 1
                    server.times.append(time.monotonic())
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                if n < route.fail_first:
                    self.send_error(503)
                    return
                time.sleep(route.delay)
                self.send_response(route.status)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                if route.ctype:
                    self.send_header("Content-Type", route.ctype)
                if route.length:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                half = len(route.body) // 2
                try:
                    self.wfile.write(route.body[:half])
                    self.wfile.flush()
                    time.sleep(route.split_delay)
                    self.wfile.write(route.body[half:])
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture()
def server(monkeypatch):
    # Proxies from the environment would send localhost requests elsewhere.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


FAST = DownloadOptions(
    workers=8, retries=2, backoff=0.01, timeout=5, per_host_rate=0, progress=False
)


def fast(**kw) -> DownloadOptions:
    return DownloadOptions(**{**FAST.__dict__, **kw})


def files_in(dst: Path) -> list[Path]:
    skip = (MANIFEST, "pages.jsonl", ".gankit-download.lock")
    return sorted(p for p in dst.iterdir() if p.name not in skip)


def assert_no_partials(dst: Path) -> None:
    assert not list(dst.glob(f"{TEMP_PREFIX}*")), "temp files left behind"
    assert not (dst / ".gankit-download.lock").exists(), "the lock file was left behind"
    for p in files_in(dst):
        with Image.open(p) as img:
            img.load()  # raises on a truncated file


def test_safe_names():
    assert safe_name_from_url("http://h/a/../../evil.png") == "evil.png"
    assert safe_name_from_url("http://h/a/..%2F..%2Fetc%2Fpasswd") == "passwd"
    assert safe_name_from_url("http://h/x/..%5C..%5Cwin.jpg") == "win.jpg"
    assert safe_name_from_url("http://h/") == "image"
    assert safe_name_from_url("http://h/.hidden.png") == "hidden.png"
    assert safe_name_from_url("http://h/caf%C3%A9%20au%20lait.jpg?x=1") == "caf_au_lait.jpg"
    assert safe_name_from_url("http://h/con.png") == "_con.png"
    assert "/" not in safe_name_from_url("http://h/%2F%2Fetc%2Fx")


def test_find_image_urls_uses_css_selector():
    html = """<html><body>
      <img class=preview src="/img/1.png"><img class="preview big" src="rel/2.png#frag">
      <img src="/img/3.png"><a class=preview href="/img/4.png">x</a>
      <img class=preview data-src="//cdn.example/5.png"><img class=preview src="/img/1.png">
    </body></html>"""
    urls = find_image_urls(html, "http://h/gallery/page.html", "img.preview")
    assert urls == ["http://h/img/1.png", "http://h/gallery/rel/2.png", "http://cdn.example/5.png"]
    assert find_image_urls(html, "http://h/", "a.preview") == ["http://h/img/4.png"]
    with pytest.raises(DataError, match="select"):
        find_image_urls(html, "http://h/", "img[[")


def test_download_counts_names_and_manifest(server, tmp_path):
    urls = []
    for i in range(N_IMAGES):
        server.routes[f"/img/{i:04d}.png"] = Route(png_bytes(i))
        urls.append(server.url(f"/img/{i:04d}.png"))
    urls += [server.url(f"/missing/{i}.png") for i in range(5)]  # 404: no route
    for i in range(3):
        server.routes[f"/slow/{i}.png"] = Route(png_bytes(1000 + i), delay=0.3)
        urls.append(server.url(f"/slow/{i}.png"))
    server.routes["/target.png"] = Route(png_bytes(2000))
    server.routes["/redirect.png"] = Route(status=302, headers={"Location": "/target.png"})
    server.routes["/to-file.png"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    server.routes["/to-ftp.png"] = Route(status=301, headers={"Location": "ftp://127.0.0.1/x.png"})
    server.routes["/text.jpg"] = Route(b"just some text", ctype="text/plain")
    server.routes["/lying.jpg"] = Route(b"<html>not a jpeg</html>", ctype="image/jpeg")
    server.routes["/big.png"] = Route(png_bytes(0, 64, noise=True))
    server.routes["/big-stream.png"] = Route(png_bytes(1, 64, noise=True), length=False)
    server.routes["/a/../../evil.png"] = Route(png_bytes(3000))
    server.routes["/b/..%2F..%2Fevil.png"] = Route(png_bytes(3001))
    server.routes["/a/same.png"] = Route(png_bytes(4000))
    server.routes["/b/same.png"] = Route(png_bytes(4001))
    server.routes["/flaky.png"] = Route(png_bytes(5000), fail_first=2)
    server.routes["/trunc.png"] = Route(png_bytes(6000)[:40])
    paths = "/redirect.png /to-file.png /to-ftp.png /text.jpg /lying.jpg /big.png /big-stream.png"
    paths += (
        " /a/../../evil.png /b/..%2F..%2Fevil.png /a/same.png /b/same.png /flaky.png /trunc.png"
    )
    urls += [server.url(p) for p in paths.split()]
    urls += ["ftp://127.0.0.1/x.png", "file:///etc/passwd"]
    dst = tmp_path / "out"
    # A user's own file that merely shares a name must not be overwritten.
    dst.mkdir()
    (dst / "target.png").write_bytes(png_bytes(9999))

    result = download_urls(urls, dst, fast(max_bytes=8000))

    assert result.counts == {
        "ok": N_IMAGES + 9,  # + 3 slow, redirect, 2x evil, 2x same, flaky
        "http_404": 5,
        "bad_scheme": 4,
        "not_image": 3,
        "too_large": 2,
    }
    by_url = {r["url"]: r for r in result.records}
    assert by_url[server.url("/redirect.png")]["file"] == "target_1.png"
    assert (dst / "target.png").read_bytes() == png_bytes(9999)
    assert by_url[server.url("/big-stream.png")]["status"] == "too_large"
    assert server.hits["/flaky.png"] == 3
    assert {by_url[server.url(p)]["file"] for p in ("/a/same.png", "/b/same.png")} == {
        "same.png",
        "same_1.png",
    }
    evil = {by_url[server.url(p)]["file"] for p in ("/a/../../evil.png", "/b/..%2F..%2Fevil.png")}
    assert evil == {"evil.png", "evil_1.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing escaped DST
    # Manifest: one line per URL, ok lines match the files on disk.
    lines = [json.loads(s) for s in (dst / MANIFEST).read_text().splitlines()]
    assert len(lines) == len(urls) and {r["url"] for r in lines} == set(urls)
    ok = [r for r in lines if r["status"] == "ok"]
    assert sorted(r["file"] for r in ok) == sorted(
        p.name for p in files_in(dst) if p.name != "target.png"
    )
    import hashlib

    for r in ok:
        data = (dst / r["file"]).read_bytes()
        assert len(data) == r["bytes"] and hashlib.sha256(data).hexdigest() == r["sha256"]
    assert by_url[server.url("/img/0007.png")]["file"] == "0007.png"
    assert (dst / "0007.png").read_bytes() == png_bytes(7)
    assert_no_partials(dst)

    # A second run requests only what failed before.
    before = dict(server.hits)
    again = download_urls(urls, dst, fast(max_bytes=8000, retries=0))
    assert again.skipped == N_IMAGES + 9
    assert server.hits["/img/0000.png"] == before["/img/0000.png"] == 1
    assert server.hits["/missing/0.png"] == 2
    assert again.counts == result.counts


def test_page_mode_downloads_selected_images(server, tmp_path):
    server.routes["/p1.png"] = Route(png_bytes(1))
    server.routes["/p2.png"] = Route(png_bytes(2))
    server.routes["/other.png"] = Route(png_bytes(3))
    server.routes["/caf%C3%A9%20au%20lait.png"] = Route(png_bytes(4))
    html = '<img class=preview src="p1.png"><img class=preview src="/p2.png"><img src="other.png">'
    html += '<img class="x preview" src="café au lait.png">'
    server.routes["/gallery.html"] = Route(html.encode(), ctype="text/html; charset=utf-8")
    urls = urls_from_page(server.url("/gallery.html"), "img.preview", options=fast())
    assert urls == [server.url(p) for p in ("/p1.png", "/p2.png", "/café au lait.png")]
    result = download_urls(urls, tmp_path, fast())
    assert result.counts == {"ok": 3} and "/other.png" not in server.hits
    assert [r["file"] for r in result.records] == ["p1.png", "p2.png", "caf_au_lait.png"]
    with pytest.raises(DataError, match="matched no element"):
        urls_from_page(server.url("/gallery.html"), "img.nothing", options=fast())
    with pytest.raises(DataError, match="http"):
        urls_from_page("file:///etc/passwd", "img", options=fast())


def test_per_host_rate_limit(server, tmp_path):
    for i in range(6):
        server.routes[f"/r{i}.png"] = Route(png_bytes(i))
    urls = [server.url(f"/r{i}.png") for i in range(6)]
    download_urls(urls, tmp_path, fast(per_host_rate=20))
    gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    assert min(gaps) > 0.035 and server.times[-1] - server.times[0] >= 0.24


def test_stale_temp_files_are_removed(server, tmp_path):
    stale = tmp_path / f"{TEMP_PREFIX}abc.part"
    stale.write_bytes(b"half an image")
    server.routes["/x.png"] = Route(png_bytes(1))
    download_urls([server.url("/x.png")], tmp_path, fast())
    assert not stale.exists() and (tmp_path / "x.png").exists()


SCRIPT = """
import argparse, sys
from gankit.cli.data import add_data_commands
p = argparse.ArgumentParser()
add_data_commands(p.add_subparsers(dest="cmd", required=True))
a = p.parse_args(sys.argv[1:])
sys.exit(a.func(a))
"""


def test_killed_run_resumes_without_refetching(server, tmp_path):
    n = 120
    for i in range(n):
        server.routes[f"/k/{i:03d}.png"] = Route(png_bytes(i, 16), split_delay=0.02)
    url_file = tmp_path / "urls.txt"
    url_file.write_text(
        "# test list\n" + "\n".join(server.url(f"/k/{i:03d}.png") for i in range(n))
    )
    dst = tmp_path / "dst"
    cmd = [sys.executable, "-c", SCRIPT, "download", "--urls", str(url_file), str(dst)]
    cmd += ["--workers", "4", "--per-host-rate", "0", "--retries", "0"]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest = dst / MANIFEST
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # Kill only while a download is half-written, so there is a partial file to clean up.
        lines = manifest.read_text().count("\n") if manifest.exists() else 0
        if lines >= 20 and list(dst.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err

    first = read_manifest(dst)
    assert 20 <= len(first) < n, "the kill should land mid-way"
    assert all(r["status"] == "ok" for r in first.values())
    assert_no_partials(dst)
    assert len(files_in(dst)) == len(first)

    hits_before = dict(server.hits)
    result = download_urls(read_url_list_lines(url_file), dst, fast())
    assert result.counts == {"ok": n} and result.skipped == len(first)
    for url in first:
        path = url.removeprefix(server.base)
        assert server.hits[path] == hits_before[path] == 1, f"{path} was fetched again"
    assert len(files_in(dst)) == n
    assert_no_partials(dst)


def test_cli_exit_codes_and_option_errors(server, tmp_path, capsys):
    import argparse

    from gankit.cli.data import add_data_commands

    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="cmd", required=True))
    server.routes["/ok.png"] = Route(png_bytes(1))
    url_file = tmp_path / "urls.txt"
    url_file.write_text(server.url("/ok.png") + "\n")
    args = parser.parse_args(["download", "--urls", str(url_file), str(tmp_path / "a")])
    args.per_host_rate = 0
    assert args.max_bytes == 20 * 1024 * 1024 and args.func(args) == 0
    assert "1 ok" in capsys.readouterr().out
    url_file.write_text(server.url("/ok.png") + "\n" + server.url("/gone.png") + "\n")
    args = parser.parse_args(["download", "--urls", str(url_file), str(tmp_path / "a")])
    args.per_host_rate, args.retries = 0, 0
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "1 http_404" in out and "1 were already complete" in out
    args = parser.parse_args(["download", "--page", server.url("/x.html"), str(tmp_path / "b")])
    with pytest.raises(DataError, match="--select"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["download", "--urls", "f", "--max-bytes", "lots", "d"])


def read_url_list_lines(path: Path) -> list[str]:
    return [s for s in path.read_text().splitlines() if s and not s.startswith("#")]


# --- numbered pages: gankit data download --page 'URL{page}' --pages 1-8000 -------------------


def gallery(server: Server, pages: range, per_page: int = 3, **route) -> str:
    """Pages /gallery?page=K, each with per_page images of its own and the same logo; the URL
    template of the range."""
    server.routes["/g/logo.png"] = Route(png_bytes(999))
    for k in pages:
        tags = [f'<img class=preview src="/g/{k}-{i}.png">' for i in range(per_page)]
        tags.append('<img class=preview src="/g/logo.png"><img src="/g/not-selected.png">')
        server.routes[f"/gallery?page={k}"] = Route("".join(tags).encode(), ctype="text/html")
        for i in range(per_page):
            server.routes[f"/g/{k}-{i}.png"] = Route(png_bytes(10 * k + i), **route)
    return server.url("/gallery?page={page}")


def image_files(dst: Path) -> list[Path]:
    return [p for p in files_in(dst) if p.suffix == ".png"]


def test_page_range_reads_each_page_once_and_a_rerun_only_what_failed(server, tmp_path):
    from gankit.data.prep.download import download_pages
    from gankit.data.prep.download_manifest import PAGES, read_pages

    template = gallery(server, range(1, 6))
    page4 = server.routes.pop("/gallery?page=4")  # missing for now: HTTP 404
    server.routes["/g/2-1.png"] = Route(status=503)  # a flaky image, retried and failed

    result = download_pages(template, range(1, 6), "img.preview", tmp_path, options=fast())

    assert result.pages == {"ok": 4, "failed": 1} and result.pages_read_before == 0
    assert result.counts == {"ok": 12, "http_503": 1}  # 4 pages x 3 images + the logo, once
    assert server.hits["/g/logo.png"] == 1 and "/g/not-selected.png" not in server.hits
    records = read_pages(tmp_path)
    assert [r["page"] for r in records.values()] == [1, 2, 3, 4, 5]
    assert records[server.url("/gallery?page=4")]["status"] == "failed"
    assert "404" in records[server.url("/gallery?page=4")]["error"]
    assert len((tmp_path / PAGES).read_text().splitlines()) == 5
    assert len(image_files(tmp_path)) == 12
    assert_no_partials(tmp_path)

    # The rerun reads no page again that worked, retries page 4 and the failed image.
    server.routes["/gallery?page=4"] = page4
    server.routes["/g/2-1.png"] = Route(png_bytes(21))
    before = dict(server.hits)
    again = download_pages(template, range(1, 6), "img.preview", tmp_path, options=fast())
    assert again.pages == {"ok": 5} and again.pages_read_before == 4
    assert again.counts == {"ok": 16} and again.skipped == 12
    for k in (1, 2, 3, 5):
        assert server.hits[f"/gallery?page={k}"] == 1
        assert server.hits[f"/g/{k}-0.png"] == before[f"/g/{k}-0.png"] == 1
    assert server.hits["/gallery?page=4"] == 2
    assert len(image_files(tmp_path)) == 16 and len(read_pages(tmp_path)) == 5
    assert_no_partials(tmp_path)


def test_page_range_shares_the_rate_limit_and_stops_when_no_page_works(server, tmp_path):
    from gankit.data.prep.download import download_pages

    template = gallery(server, range(1, 3), per_page=2)
    download_pages(
        template, range(1, 3), "img.preview", tmp_path / "a", options=fast(per_host_rate=20)
    )
    assert len(server.times) == 7  # 2 pages, 4 images, the logo: one host, one budget
    gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
    assert min(gaps) > 0.035 and server.times[-1] - server.times[0] >= 0.29

    # A wrong selector shows on the first page, not after 8,000 pages of nothing.
    with pytest.raises(DataError, match="matched no element.*no page of --pages has worked yet"):
        download_pages(template, range(1, 3), "img.nothing", tmp_path / "b", options=fast())
    assert server.hits["/gallery?page=1"] == 2 and server.hits["/gallery?page=2"] == 1
    with pytest.raises(DataError, match=r"\{page\} in the --page URL"):
        download_pages(server.url("/gallery"), range(1, 3), "img", tmp_path / "c", options=fast())


def test_killed_page_crawl_resumes_without_reading_pages_again(server, tmp_path):
    from gankit.data.prep.download_manifest import PAGES, read_pages

    n = 30
    template = gallery(server, range(1, n + 1), per_page=4, split_delay=0.02)
    dst = tmp_path / "dst"
    cmd = [sys.executable, "-c", SCRIPT, "download", "--page", template, "--select"]
    cmd += ["img.preview", "--pages", f"1-{n}", str(dst), "--workers", "2", "--retries", "0"]
    cmd += ["--per-host-rate", "0"]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = (dst / PAGES).read_text().count("\n") if (dst / PAGES).exists() else 0
        if lines >= 5 and list(dst.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err.decode()
    read, complete = read_pages(dst), read_manifest(dst)
    assert 5 <= len(read) < n and all(r["status"] == "ok" for r in read.values())
    assert complete and all(r["status"] == "ok" for r in complete.values())
    assert_no_partials(dst)

    before = dict(server.hits)
    args = ["--page", template, "--select", "img.preview", "--pages", f"1-{n}", str(dst)]
    args += ["--per-host-rate", "0"]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, "download", *args], env=env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"{n} pages: {n} ok ({len(read)} were read before)" in proc.stdout.decode()
    for url in read:
        path = url.removeprefix(server.base)
        assert server.hits[path] == before[path] == 1, f"{path} was read again"
    for url in complete:
        path = url.removeprefix(server.base)
        assert server.hits[path] == before[path] == 1, f"{path} was downloaded again"
    assert len(image_files(dst)) == 4 * n + 1 and len(read_pages(dst)) == n
    assert_no_partials(dst)


@pytest.mark.parametrize(
    "pages, says",
    [
        ("8000-1", "--pages: 8000-1: the first page must not come after the last"),
        ("1-x", "--pages: '1-x' is not a page range like 1-8000"),
        ("", "--pages: '' is not a page range"),
    ],
)
def test_bad_page_ranges_are_one_line(pages, says, tmp_path, capsys):
    from gankit.cli.main import main

    url = "http://127.0.0.1:9/gallery?page={page}"
    with pytest.raises(SystemExit) as e:
        main(
            ["data", "download", "--page", url, "--select", "img", "--pages", pages, str(tmp_path)]
        )
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and says in err


def test_page_range_options_go_together(server, tmp_path, capsys):
    from gankit.cli.main import main

    template = gallery(server, range(1, 4), per_page=1)
    base = ["data", "download", "--select", "img.preview", "--per-host-rate", "0"]
    assert main([*base, "--page", template, "--pages", "2", str(tmp_path / "one")]) == 0
    assert "1 pages: 1 ok" in capsys.readouterr().out  # a single number is one page
    assert "/gallery?page=1" not in server.hits and server.hits["/gallery?page=2"] == 1
    for args, says in (
        (["--page", server.url("/gallery?page=1"), "--pages", "1-3"], "{page} in the --page URL"),
        (["--page", template], "--page has {page}: give the page numbers"),
    ):
        assert main([*base, *args, str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err
    url_file = tmp_path / "urls.txt"
    url_file.write_text(server.url("/g/1-0.png") + "\n")
    assert main([*base[:2], "--urls", str(url_file), "--pages", "1-3", str(tmp_path / "y")]) == 2
    assert "--pages only applies with --page" in capsys.readouterr().err
