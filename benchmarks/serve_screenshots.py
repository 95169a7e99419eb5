"""The explorer's screenshots for docs/guides/explorer.md, taken in headless Chromium. Prints JSON
(the files written).

    python benchmarks/serve_screenshots.py RUN [W_RUN] [--digit ../shared/datasets/mnist] [--out docs/images]

Starts ``gankit serve RUN [W_RUN]`` on a free port, opens the page with Playwright driving the
system's chromium, and saves ``explorer-page.png`` (the whole page with the first run),
``explorer-samples.png`` (truncation on), ``explorer-project.png`` (a held-out MNIST digit
projected; with ``--digit`` a folder holding torchvision's MNIST/) and, given a second run with
a W space, ``explorer-style-mix.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_speed import free_port, start_server  # noqa: E402


def _digit_png(mnist: str | None, folder: Path) -> Path:
    from digit_judge import load_mnist
    from PIL import Image

    x, _ = load_mnist(mnist, True)
    path = folder / "digit.png"
    Image.fromarray((x[7, 0] * 255).round().byte().numpy(), "L").save(path)
    return path


def _wait_shown(page, selector: str, part: str) -> None:
    page.wait_for_function(
        f"() => (document.querySelector('{selector}').dataset.query || '').includes('{part}')",
        timeout=60_000,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--digit", help="folder with torchvision's MNIST/ (default: download)")
    ap.add_argument("--out", default="docs/images")
    ap.add_argument("--steps", type=int, default=300)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(a.out)
    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    proc, _ = start_server(a.runs, port, tmp / "serve.log")
    written = []
    chromium = shutil.which("chromium") or "/usr/lib/chromium/chromium"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            _wait_shown(page, "#sample-img", "seed=0")
            page.fill("#seed", "3")
            page.check("#trunc-on")
            page.eval_on_selector(
                "#truncation", "el => { el.value = '0.8'; el.dispatchEvent(new Event('input')); }"
            )
            _wait_shown(page, "#sample-img", "truncation=0.8")
            page.eval_on_selector(
                "#walk-t", "el => { el.value = '0.4'; el.dispatchEvent(new Event('input')); }"
            )
            _wait_shown(page, "#walk-img", "t=0.4")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "explorer-page.png"), full_page=True)
            page.locator("#samples").screenshot(path=str(out / "explorer-samples.png"))
            written += [out / "explorer-page.png", out / "explorer-samples.png"]
            page.set_input_files("#project-file", str(_digit_png(a.digit, tmp)))
            page.fill("#project-steps", str(a.steps))
            page.click("#project-start")
            page.wait_for_selector("#project-status[data-status]", timeout=600_000)
            page.wait_for_timeout(800)
            page.locator("#project").screenshot(path=str(out / "explorer-project.png"))
            written.append(out / "explorer-project.png")
            if len(a.runs) > 1:
                page.select_option("#run", "1")
                _wait_shown(page, "#mix-img", "rows=")
                page.wait_for_timeout(500)
                page.locator("#mix").screenshot(path=str(out / "explorer-style-mix.png"))
                written.append(out / "explorer-style-mix.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(json.dumps({"written": [str(p) for p in written]}))


if __name__ == "__main__":
    main()
