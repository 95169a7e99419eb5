"""gankit report: a self-contained HTML page, checked as text and in a real headless Chromium."""

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from gankit.cli import main
from gankit.evaluation.charts import line_chart, nice_ticks
from gankit.evaluation.report import build_report, spread

from conftest import TINY

SECTIONS = [
    "summary", "curves", "samples", "health", "changes", "evaluation", "memorisation", "config"
]  # fmt: skip
HOSTILE = "<script>alert(1)</script> & co"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run plus what an evaluation and the health monitor would add."""
    out = tmp_path_factory.mktemp("report") / "run"
    args = [
        "train",
        "dcgan-mnist",
        *TINY,
        "train.steps=6",
        "train.log_every=2",
        "train.sample_every=2",
    ]
    assert main([*args, "train.steps=4", f"description={HOSTILE}", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "train.steps=6", "optim.G.lr=0.0005"]) == 0
    with (out / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 6, "eval_fid": 123.4, "eval_kid": 0.05}) + "\n")
        event = {"step": 4, "event": "d_winning", "message": f"D won {HOSTILE}"}
        f.write(json.dumps(event) + "\n")
    (out / "eval").mkdir()
    (out / "eval" / "evaluation-step-000006.json").write_text(
        json.dumps({"step": 6, "fid": 123.4, "modes": {"hit": 7, "kl": 0.3}, "note": HOSTILE})
    )
    shutil.copy(out / "samples" / "step-000006.png", out / "eval" / "memorisation-step-000006.png")
    return out


def test_report_is_self_contained_and_escaped(run, tmp_path):
    page = build_report(run, tmp_path / "r.html").read_text()
    soup = BeautifulSoup(page, "html.parser")
    assert [s["id"] for s in soup.find_all("section")] == SECTIONS
    # nothing is fetched: every src is a data: URI, every href an anchor in the page
    assert all(img["src"].startswith("data:image/png;base64,") for img in soup.find_all("img"))
    assert all(a["href"].startswith("#") for a in soup.find_all("a"))
    assert not soup.find_all(["script", "link", "iframe"]) and "http" not in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    # 3 preview grids and the memorisation pairs; curves for losses, D, FID, KID, diversity, img/s
    assert len(soup.find_all("img")) == 4
    titles = [t.get_text() for t in soup.select("svg.chart > title")]
    assert {"losses", "D(x) and D(G(z))", "eval_fid", "eval_kid", "throughput (images/s)"} <= set(
        titles
    )
    health = soup.find(id="health").get_text()
    assert "the discriminator is winning" in health and "D won <script>" in health
    assert "123.4" in soup.find(id="evaluation").get_text()
    changes = [
        [td.get_text() for td in tr.find_all("td")]
        for tr in soup.find(id="changes").find_all("tr")[1:]
    ]
    assert ["4", "optim.G.lr", "0.001", "0.0005"] in changes and [
        "4",
        "train.steps",
        "4",
        "6",
    ] in changes


def test_report_cli(run, tmp_path, capsys):
    assert main(["report", str(run), "--max-grids", "2"]) == 0
    page = (run / "report.html").read_text()
    assert page.count("<img ") == 3  # first and last preview, memorisation
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no config.yaml" in err and "\n" not in err


def test_charts_survive_odd_series():
    assert nice_ticks(0, 300, integer=True) == [0, 100, 200, 300]
    assert nice_ticks(2, 12, integer=True) == [0, 5, 10, 15]
    for series in ({"a": [(5, 1.0)]}, {"a": [(1, 2.0), (2, 2.0)]}, {"a": [(0, -1e-9), (9, 3e9)]}):
        svg = line_chart(series, "t", events=[{"step": 3, "event": "collapse"}])
        assert svg.startswith("<svg") and "nan" not in svg.lower()
    assert spread(list(range(10)), 4) == [0, 3, 6, 9] and spread([1, 2], 8) == [1, 2]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless as root, no sandbox, and no background traffic (without those flags it keeps trying to
# reach the network, which a CI machine may not have).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
# Injected into a copy of the page only: after load, count images that failed to decode and
# charts that have no size. The report itself has no script.
PROBE = """<script>window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  const charts = [...document.querySelectorAll("svg.chart")].filter(s => s.getBBox().width > 0);
  document.body.dataset.broken = broken;
  document.body.dataset.charts = charts.length;
});</script>"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (apt-get install chromium; .ci/run does when it can)",
)
def test_report_renders_in_headless_chromium(run, tmp_path):
    page = build_report(run, tmp_path / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probed.as_uri()],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Chromium logs every console message (errors, uncaught exceptions) as INFO:CONSOLE lines.
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    dom = BeautifulSoup(proc.stdout, "html.parser")
    assert [s["id"] for s in dom.find_all("section")] == SECTIONS
    assert dom.body["data-broken"] == "0"
    assert int(dom.body["data-charts"]) >= 5
    assert dom.title.get_text().startswith("gankit report")
    assert not re.search(r"<script>alert", proc.stdout)


def test_report_survives_junk_bytes_in_metrics(run, tmp_path):
    junk = tmp_path / "junk"
    shutil.copytree(run, junk)
    with (junk / "metrics.jsonl").open("ab") as f:
        f.write(b"\xff\xfe garbage \x00\n{not json}\n")
    page = build_report(junk, tmp_path / "j.html").read_text()
    assert "123.4" in page  # the good rows are all there
