"""gankit serve: the app's routes through Starlette's TestClient (pictures equal to the commands',
bad requests and uploads refused in one line), and the page in a real headless Chromium."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_projection import TINY_SG2

from gankit.cli import main

from conftest import TINY, TINY_CYCLEGAN, write_domains


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny runs: a DCGAN with EMA, a conditional GAN, a StyleGAN2, a CycleGAN, a broken one."""
    root = tmp_path_factory.mktemp("serve")
    out = {
        "dcgan": ["dcgan-mnist", *TINY, "train.steps=2", "gan.ema=0.9"],
        "cgan": ["cgan-mnist", *TINY, "gan.conditional=concat", "train.steps=2"],
        "sg2": ["dcgan-mnist32", *TINY_SG2],
        "cyclegan": [
            "cyclegan-mnistm",
            f"data.root={write_domains(root / 'domains')}",
            *TINY_CYCLEGAN,
            "train.steps=1",
        ],  # fmt: skip
    }
    paths = {}
    for name, args in out.items():
        assert main(["train", *args, "--out", str(root / name)]) == 0
        paths[name] = root / name
    broken = root / "broken"
    shutil.copytree(paths["dcgan"], broken)
    for ck in (broken / "checkpoints").glob("*.pt"):
        ck.write_bytes(b"not a checkpoint")
    paths["broken"] = broken
    return paths


ORDER = ["dcgan", "cgan", "sg2", "cyclegan", "broken"]


@pytest.fixture(scope="module")
def client(runs):
    pytest.importorskip(
        "starlette", reason='the serve extra is not installed (pip install -e ".[serve]")'
    )
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
    with warnings.catch_warnings():  # newer Starlette prefers httpx2 to httpx; either works
        warnings.filterwarnings("ignore", message="Using `httpx`")
        from starlette.testclient import TestClient

    from gankit.serve.app import Explorer, create_app
    from gankit.serve.runs import load_slots

    ex = Explorer(load_slots([runs[k] for k in ORDER]))
    with TestClient(create_app(ex), base_url="http://127.0.0.1") as c:
        yield c
    assert not ex.tmp.exists()  # the temporary folder goes with the server


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def png_bytes(size=(16, 16), mode="L", seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    shape = size[::-1] if mode == "L" else (*size[::-1], 3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int, data: bytes = b"\0" * 64, depth: int = 8) -> bytes:
    """A PNG whose header declares ``width`` × ``height`` whatever its data holds."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")  # fmt: skip


def cli_png(tmp_path: Path, *args: str) -> bytes:
    out = tmp_path / f"cli-{len(list(tmp_path.iterdir()))}.png"
    assert main([*args, "--out", str(out)]) == 0
    return out.read_bytes()


@pytest.mark.timeout(120)
def test_runs_lists_what_each_run_can_do(client):
    body = client.get("/api/runs").json()
    runs = {r["name"]: r for r in body["runs"]}
    assert runs["dcgan"]["generative"] and runs["dcgan"]["has_ema"] and not runs["dcgan"]["w_space"]
    assert runs["cgan"]["classes"][:3] == ["0", "1", "2"]
    assert runs["sg2"]["w_space"] and runs["sg2"]["num_ws"] == 4 and runs["sg2"]["projectable"]
    assert runs["cyclegan"]["translator"] and not runs["cyclegan"]["generative"]
    assert "not a checkpoint" in runs["broken"]["error"] or runs["broken"]["error"]
    assert "\n" not in runs["broken"]["error"]
    assert body["distance"] == "pixel" and "lpips" not in body["distances"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="sample-img"' in page.text
    assert client.get("/static/explorer.js").status_code == 200


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "run, query, cli",
    [
        (0, {"seed": 3, "n": 9}, ["--seed", "3", "--n", "9"]),
        (0, {"seed": 3, "n": 9, "ema": "false"}, ["--seed", "3", "--n", "9", "--no-ema"]),
        (0, {"seed": 7, "n": 4, "truncation": 0.5, "noise_std": 0.8},
         ["--seed", "7", "--n", "4", "--truncation", "0.5", "--noise-std", "0.8"]),
        (1, {"seed": 2, "n": 10, "class": 4}, ["--seed", "2", "--n", "10", "--class", "4"]),
        (2, {"seed": 5, "n": 6, "truncation": 0.6}, ["--seed", "5", "--n", "6", "--truncation", "0.6"]),
    ],
)  # fmt: skip
def test_the_sample_grid_is_gankit_samples_pixel_for_pixel(client, runs, tmp_path, run, query, cli):
    r = client.get("/api/sample.png", params={"run": run, **query})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    expected = cli_png(tmp_path, "sample", str(runs[ORDER[run]]), *cli)
    assert np.array_equal(pixels(r.content), pixels(expected))


@pytest.mark.timeout(120)
def test_walks_style_mixing_and_curves(client, runs, tmp_path):
    ends = [pixels(client.get("/api/walk.png", params={"run": 0, "a": 1, "b": 2, "t": t}).content) for t in (0, 0.5, 1)]  # fmt: skip
    assert ends[0].shape == (16, 16, 3) and not np.array_equal(ends[0], ends[2])
    first = pixels(client.get("/api/sample.png", params={"run": 0, "seed": 1, "n": 1}).content)
    assert np.array_equal(ends[0], first)  # t = 0 is seed 1's own image
    gif = client.get("/api/walk.gif", params={"run": 1, "a": 1, "b": 2, "steps": 5, "class": 3})
    with Image.open(io.BytesIO(gif.content)) as g:
        assert g.n_frames == 8
    assert (
        client.get("/api/walk.png", params={"run": 2, "a": 0, "b": 1, "t": 0.3}).status_code == 200
    )
    mix = client.get(
        "/api/style-mix.png", params={"run": 2, "rows": "1,2", "cols": "3", "layers": "0-1"}
    )
    expected = cli_png(tmp_path, "style-mix", str(runs["sg2"]), "--rows", "1,2", "--cols", "3", "--layers", "0-1")  # fmt: skip
    assert np.array_equal(pixels(mix.content), pixels(expected))
    curves = client.get("/api/curves", params={"run": 0}).json()
    assert "loss_d" in curves["series"] and all(len(p) == 2 for p in curves["series"]["loss_d"])


@pytest.mark.timeout(120)
def test_walk_mp4_when_the_encoder_is_installed(client):
    pytest.importorskip("av", reason='no MP4 encoder (pip install -e ".[video]")')
    r = client.get("/api/walk.mp4", params={"run": 0, "a": 1, "b": 2, "steps": 6})
    assert r.status_code == 200 and r.content[4:8] == b"ftyp"


@pytest.mark.timeout(120)
def test_translation_of_an_upload_is_gankit_translates(client, runs, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = png_bytes((20, 12), "RGB")
    (src / "x.png").write_bytes(data)
    r = client.post("/api/translate.png", params={"run": 3, "direction": "AtoB"}, content=data)
    assert r.status_code == 200, r.text
    assert main(["translate", str(runs["cyclegan"]), str(src), "--out", str(tmp_path / "out")]) == 0
    assert np.array_equal(pixels(r.content), pixels((tmp_path / "out" / "x.png").read_bytes()))


def _wait_for(client, job: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = client.get(f"/api/project/{job}").json()
        if state["status"] != "running":
            return state
        time.sleep(0.1)
    raise AssertionError(f"projection {job} still running after {timeout} s")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("run", [0, 2])
def test_projection_of_an_upload_runs_in_the_background(client, run):
    r = client.post(
        "/api/project", params={"run": run, "steps": 12, "distance": "pixel"}, content=png_bytes()
    )
    assert r.status_code == 202, r.text
    state = _wait_for(client, r.json()["id"])
    assert state["status"] == "done" and state["step"] == 12, state
    assert state["space"] == ("w" if run == 2 else "z")
    job = state["id"]
    assert client.get(f"/api/project/{job}/preview.png").status_code == 200
    rec = torch.load(
        io.BytesIO(client.get(f"/api/project/{job}/projection.pt").content), weights_only=True
    )
    assert rec["format"] == "gankit-latents" and rec["steps"] == 12
    gif = client.get(f"/api/project/{job}/projection-progress.gif")
    assert gif.status_code == 200 and gif.content[:3] == b"GIF"
    assert np.load(io.BytesIO(client.get(f"/api/project/{job}/projection.npy").content)).ndim >= 2


BIG = 17 * 1024 * 1024


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "method, url, params, body, status, fragment",
    [
        ("post", "/api/translate.png", {"run": 3}, b"hello, not an image", 415, "not an image"),
        ("post", "/api/translate.png", {"run": 3}, b"PK\x03\x04" + b"\0" * 100, 415, "not an image"),
        ("post", "/api/project", {"run": 0}, png_claiming(10_000, 10_000), 413, "100 megapixels"),
        ("post", "/api/project", {"run": 0},
         png_claiming(20_000, 20_000, (b"\0" * 2501) * 20_000, depth=1), 413, "megapixels"),
        ("post", "/api/translate.png", {"run": 3}, b"", 400, "empty upload"),
        ("post", "/api/translate.png", {"run": 3}, png_bytes((64, 64), "RGB")[:300], 400, "truncated"),
        ("post", "/api/translate.png", {"run": 3}, b"\0" * BIG, 413, "limit is 16 MiB"),
        ("post", "/api/translate.png", {"run": 0}, png_bytes(), 400, "nothing to translate with"),
        ("post", "/api/project", {"run": 3}, png_bytes(), 400, "nothing to project into"),
        ("post", "/api/project", {"run": 0, "distance": "ssim"}, png_bytes(), 400, "distance"),
        ("post", "/api/project", {"run": 0, "steps": 0}, png_bytes(), 400, "steps: 0 must be in"),
        ("get", "/api/sample.png", {"seed": "abc"}, None, 400, "not an integer"),
        ("get", "/api/sample.png", {"n": 100_000}, None, 400, "n: 100000 must be in 1..256"),
        ("get", "/api/sample.png", {"truncation": -1}, None, 400, "truncation"),
        ("get", "/api/sample.png", {"noise_std": "nan"}, None, 400, "noise_std"),
        ("get", "/api/sample.png", {"class": 3}, None, 400, "unconditional"),
        ("get", "/api/sample.png", {"run": 1, "class": "cat"}, None, 400, "not a class"),
        ("get", "/api/sample.png", {"run": 2, "ema": "true"}, None, 400, "without an EMA"),
        ("get", "/api/sample.png", {"run": 9}, None, 404, "no run 9"),
        ("get", "/api/sample.png", {"run": 4}, None, 409, "could not be loaded"),
        ("get", "/api/style-mix.png", {"run": 0}, None, 400, "nothing to mix styles of"),
        ("get", "/api/style-mix.png", {"run": 2, "layers": "2-9"}, None, 400, "--layers 2-9"),
        ("get", "/api/style-mix.png", {"run": 2, "rows": "1,x"}, None, 400, "rows: give"),
        ("get", "/api/walk.png", {"t": 2}, None, 400, "t: 2 must be in"),
        ("get", "/api/project/nosuchjob", {}, None, 404, "no projection"),
    ],
)  # fmt: skip
def test_bad_requests_and_uploads_are_one_line_4xx(
    client, method, url, params, body, status, fragment
):
    kw = {"params": params} if body is None else {"params": params, "content": body}
    r = getattr(client, method)(url, **kw)
    assert r.status_code == status, (r.status_code, r.text)
    error = r.json()["error"]
    assert fragment in error and "\n" not in error and "Traceback" not in error
    assert client.get("/api/sample.png", params={"n": 1}).status_code == 200  # still serving


@pytest.mark.timeout(60)
def test_requests_for_another_host_are_refused(client):
    assert client.get("/api/runs", headers={"host": "evil.example"}).status_code == 400


def test_serve_without_the_extra_says_how_to_install(runs, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", str(runs["dcgan"])]) == 2
    err = capsys.readouterr().err.strip()
    assert 'pip install -e ".[serve]"' in err and "\n" not in err


def test_serve_refuses_a_port_in_use_in_one_line(runs, capsys):
    pytest.importorskip("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", str(runs["dcgan"]), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--port {port}" in err and "\n" not in err


def test_serve_loads_the_runs_and_warns_when_open_to_other_machines(runs, monkeypatch, capsys):
    uvicorn = pytest.importorskip("uvicorn")
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    assert (
        main(["serve", str(runs["dcgan"]), str(runs["broken"]), "--port", str(_free_port())]) == 0
    )
    out = capsys.readouterr().out
    assert "warning" not in out and "[1] broken: error:" in out and "http://127.0.0.1:" in out
    assert seen["host"] == "127.0.0.1"
    assert (
        main(["serve", str(runs["dcgan"]), "--host", "0.0.0.0", "--port", str(_free_port())]) == 0
    )
    out = capsys.readouterr().out
    assert "warning: --host 0.0.0.0" in out and seen["host"] == "0.0.0.0"


# --- a real browser ---------------------------------------------------------------------------

CHROMIUM = next(
    (p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")) if p and os.path.exists(p)),
    None,
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(run_dirs: list[Path], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "gankit", "serve", *map(str, run_dirs), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 90
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"gankit serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/runs", timeout=5) as r:
                json.load(r)
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"gankit serve did not answer in 90 s: {log.read_text()[-2000:]}")


def _shown(page, selector: str) -> bytes:
    """The bytes of the picture an <img> shows (a blob URL the page made)."""
    data = page.evaluate(
        "async (sel) => { const r = await fetch(document.querySelector(sel).src);"
        " return Array.from(new Uint8Array(await r.arrayBuffer())); }",
        selector,
    )
    return bytes(data)


def _wait_query(page, selector: str, *parts: str) -> None:
    test = " && ".join(f"q.includes({json.dumps(p)})" for p in parts)
    page.wait_for_function(
        f"() => {{ const q = document.querySelector({json.dumps(selector)}).dataset.query || ''; return {test}; }}",
        timeout=30_000,
    )


@pytest.mark.timeout(300)
@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium (apt-get install chromium; .ci/run does when it can)"
)
def test_the_page_in_headless_chromium(runs, tmp_path):
    pytest.importorskip(
        "uvicorn", reason='the serve extra is not installed (pip install -e ".[serve]")'
    )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed"
    )
    proc, url = _start_server([runs["dcgan"], runs["cyclegan"]], tmp_path / "server.log")
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            try:
                _drive(browser.new_page(), url, runs, tmp_path)
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _drive(page, url: str, runs: dict[str, Path], tmp_path: Path) -> None:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    _wait_query(page, "#sample-img", "seed=0")
    before = _shown(page, "#sample-img")
    page.fill("#seed", "7")
    _wait_query(page, "#sample-img", "seed=7")
    seven = _shown(page, "#sample-img")
    assert not np.array_equal(pixels(before), pixels(seven))
    expected = cli_png(tmp_path, "sample", str(runs["dcgan"]), "--seed", "7", "--n", "16")
    assert np.array_equal(pixels(seven), pixels(expected))
    page.check("#trunc-on")
    page.eval_on_selector(
        "#truncation", "el => { el.value = '0.5'; el.dispatchEvent(new Event('input')); }"
    )
    _wait_query(page, "#sample-img", "seed=7", "truncation=0.5")
    truncated = _shown(page, "#sample-img")
    expected = cli_png(tmp_path, "sample", str(runs["dcgan"]), "--seed", "7", "--n", "16", "--truncation", "0.5")  # fmt: skip
    assert np.array_equal(pixels(truncated), pixels(expected))
    assert not np.array_equal(pixels(truncated), pixels(seven))
    # projection of an uploaded image
    upload = tmp_path / "digit.png"
    upload.write_bytes(png_bytes((16, 16)))
    page.set_input_files("#project-file", str(upload))
    page.fill("#project-steps", "15")
    page.click("#project-start")
    page.wait_for_selector("#project-status[data-status]", timeout=60_000)
    assert page.get_attribute("#project-status", "data-status") == "done"
    assert page.locator("#project-files a").count() == 5
    # translation of an uploaded image, with the second run
    page.select_option("#run", "1")
    rgb = tmp_path / "in" / "photo.png"
    rgb.parent.mkdir()
    rgb.write_bytes(png_bytes((20, 12), "RGB"))
    page.set_input_files("#translate-file", str(rgb))
    _wait_query(page, "#translate-img", "direction=AtoB")
    shown = _shown(page, "#translate-img")
    assert (
        main(["translate", str(runs["cyclegan"]), str(rgb.parent), "--out", str(tmp_path / "tr")])
        == 0
    )
    assert np.array_equal(pixels(shown), pixels((tmp_path / "tr" / "photo.png").read_bytes()))
    assert page.is_hidden("#samples")
    assert problems == []
