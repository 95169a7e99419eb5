"""Run directory -> one self-contained ``report.html``.

Everything comes from the files a run leaves behind: curves from ``metrics.jsonl`` (drawn as
inline SVG by :mod:`gankit.evaluation.charts`), preview grids from ``samples/step-*.png`` and
memorisation pairs from ``eval/memorisation-*.png`` (embedded as base64 PNG), health events from
the ``event`` rows of ``metrics.jsonl``, the newest ``eval/evaluation-step-*.json`` and the
resolved ``config.yaml``.
The page loads nothing from anywhere and runs no script, so it can be mailed or archived as is.
"""

from __future__ import annotations

import base64
import json
import math
import re
from html import escape
from pathlib import Path

import yaml
from PIL import Image

from gankit.engine.health import EVENTS, read_rows
from gankit.errors import CheckpointError, ConfigError
from gankit.evaluation.charts import line_chart

LABELS = {"d_real": "D(x)", "d_fake": "D(G(z))", "loss_d": "loss D", "loss_g": "loss G"}
NOT_PLOTTED = {"step", "time"}


# --- reading the run directory -----------------------------------------------------------------


def scalar_series(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """``{key: [(step, value), ...]}`` of every finite number in the rows, events excluded."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if "event" in row or "step" not in row:
            continue
        for k, v in row.items():
            if k in NOT_PLOTTED or isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if math.isfinite(v):
                series.setdefault(k, []).append((row["step"], float(v)))
    return series


def chart_groups(series: dict, probability: bool) -> list[tuple[str, dict, tuple]]:
    """``(title, {label: points}, hlines)`` per chart, in the report's order."""
    groups, used = [], set()

    def add(title: str, keys: list[str], hlines: tuple = ()) -> None:
        keys = [k for k in keys if k in series and k not in used]
        if keys:
            used.update(keys)
            groups.append((title, {LABELS.get(k, k): series[k] for k in keys}, hlines))

    add("losses", sorted(k for k in series if k.startswith("loss")))
    d_title = "D(x) and D(G(z))" if probability else "critic scores on real and generated images"
    add(d_title, ["d_real", "d_fake"], (0.05, 0.95) if probability else ())
    for k in sorted(k for k in series if k.startswith("eval_")):
        add(k, [k])
    add("preview diversity (mean pairwise RMS distance)", ["preview_diversity"])
    for k in sorted(k for k in series if k != "img_per_s"):
        add(k, [k])
    add("throughput (images/s)", ["img_per_s"])
    return groups


def _step_files(folder: Path, pattern: str) -> list[tuple[int, Path]]:
    """``(step, path)`` of files whose names match ``pattern`` (one group: the step), by step."""
    rx = re.compile(pattern)
    found = [(int(m.group(1)), p) for p in folder.glob("*") if (m := rx.fullmatch(p.name))]
    return sorted(found)


def spread(items: list, k: int) -> list:
    """``k`` items evenly spread over ``items``, always including the first and the last."""
    if len(items) <= k:
        return items
    if k <= 1:  # one grid: the newest (0: none)
        return items[-1:] if k == 1 else []
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def _png(path: Path, caption: str, min_width: int = 256, max_width: int = 520) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    with Image.open(path) as img:
        w, h = img.size
    shown = min(max(w, min_width), max_width)
    return (
        f'<figure><img src="data:image/png;base64,{data}" width="{shown}" '
        f'height="{round(h * shown / w)}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _value_table(data: dict) -> str:
    """Scalars as a two-column table; nested values as indented JSON."""
    cells = []
    for k, v in data.items():
        if isinstance(v, float):
            shown = f"{v:.5g}"
        elif isinstance(v, str | int | bool) or v is None:
            shown = str(v)
        else:
            shown = json.dumps(v, indent=1)
            shown = f"<pre>{escape(shown)}</pre>"
            cells.append(f"<tr><th>{escape(str(k))}</th><td>{shown}</td></tr>")
            continue
        cells.append(f"<tr><th>{escape(str(k))}</th><td>{escape(shown)}</td></tr>")
    return f'<table class="kv">{"".join(cells)}</table>'


# --- the page ----------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1160px;padding:16px 24px;color:#222}
h1{font-size:22px;margin:8px 0} h2{font-size:18px;border-bottom:1px solid #ccc;margin-top:28px}
nav a{margin-right:14px} .charts,.gallery{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0} figcaption{font-size:12px;color:#555;text-align:center}
img{image-rendering:pixelated;border:1px solid #ddd}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top} th{background:#f4f4f4} .kv th{font-weight:600}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px;margin:0}
.chart text{font-size:11px;fill:#333} .chart .ct{font-size:13px;font-weight:600}
.chart .yt{text-anchor:end} .chart .xt{text-anchor:middle} .chart .grid{stroke:#eee}
.chart .hl{stroke:#999;stroke-dasharray:4 3} .chart .ev{stroke-width:1.5;stroke-dasharray:2 2}
.muted{color:#666}
"""


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{body}</section>'


def build_report(run_dir: str | Path, out: str | Path | None = None, max_grids: int = 8) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN/report.html``); return its path."""
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise CheckpointError(f"{run} is not a gankit run directory (no config.yaml)")
    if max_grids < 0:
        raise ConfigError(f"max_grids={max_grids} must be >= 0")
    config_text = (run / "config.yaml").read_text()
    cfg = yaml.safe_load(config_text) or {}
    rows = read_rows(run / "metrics.jsonl")
    events = [r for r in rows if r.get("event") in EVENTS]
    history = [r for r in rows if r.get("event") in ("config_change", "init_from")]
    series = scalar_series(rows)
    # the task said at the start whether D's outputs are probabilities (older runs: no bands)
    probability = any(r.get("event") == "start" and r.get("probabilities") for r in rows)
    sections = [
        _section("summary", "Summary", _summary(run, cfg, rows, series)),
        _section("curves", "Curves", _curves(series, events, probability)),
        _section(
            "samples",
            "Preview samples over time (fixed noise or fixed inputs)",
            _previews(run, max_grids),
        ),
        _section("health", "Health events", _health(events, cfg)),
        _section("changes", "Config changes on resume", _changes(history)),
        _section("evaluation", "Evaluation", _evaluations(run)),
        _section("memorisation", "Memorisation: nearest training images", _memorisation(run)),
        _section("config", "Resolved config.yaml", f"<pre>{escape(config_text)}</pre>"),
    ]
    page = _page(f"gankit report: {run.resolve().name}", sections, events, history)
    out = Path(out) if out else run / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _page(title: str, sections: list[str], events: list[dict], history: list[dict]) -> str:
    """The whole HTML document: title, a navigation bar (with counts) and the sections."""
    nav = "".join(
        f'<a href="#{sid}">{name}</a>'
        for sid, name in [
            ("summary", "summary"),
            ("curves", "curves"),
            ("samples", "samples"),
            ("health", f"health ({len(events)})"),
            ("changes", f"changes ({sum(r['event'] == 'config_change' for r in history)})"),
            ("evaluation", "evaluation"),
            ("memorisation", "memorisation"),
            ("config", "config"),
        ]
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><nav>{nav}</nav>{''.join(sections)}</body></html>\n"
    )


def _curves(series: dict, events: list[dict], probability: bool) -> str:
    """One chart per group of series, health events marked on every one."""
    charts = [line_chart(s, t, events, hl) for t, s, hl in chart_groups(series, probability)]
    body = f'<div class="charts">{"".join(charts)}</div>' if charts else _muted("no metrics yet")
    if events:
        body += '<p class="muted">Dashed vertical lines mark health events (see below).</p>'
    return body


def _previews(run: Path, max_grids: int) -> str:
    """Up to ``max_grids`` preview grids, spread evenly over the run (one: the newest)."""
    grids = spread(_step_files(run / "samples", r"step-(\d+)\.png"), max_grids)
    body = "".join(_png(p, f"step {s}") for s, p in grids)
    return f'<div class="gallery">{body}</div>' if grids else _muted("no preview grids")


def _evaluations(run: Path) -> str:
    """The newest ``eval/evaluation-step-*.json`` and ``evaluation.json``, as tables."""
    evals = _step_files(run / "eval", r"evaluation-step-(\d+)\.json")
    found = [(f"step {evals[-1][0]} ({evals[-1][1].name})", evals[-1][1])] if evals else []
    if (run / "evaluation.json").is_file():
        found.append(("evaluation.json", run / "evaluation.json"))
    body = ""
    for name, p in found:
        data = json.loads(p.read_text())
        body += f"<h3>{escape(name)}</h3>{_protocol_line(data)}{_value_table(data)}"
    return body or _muted("no evaluation yet: gankit evaluate RUN --ref DATA writes one")


def _protocol_line(data: dict) -> str:
    """What the numbers are comparable with: protocol, resize, samples and reference, ddof."""
    from gankit.evaluation.protocols import record_of

    r = record_of(data)
    if not r.get("features"):
        return ""
    text = (
        f"Comparable only with results of the same protocol "
        f"({r.get('protocol') or 'not recorded: gankit 0.2'}), resize "
        f"({r.get('resizer') or 'n/a'}), {r.get('n')} samples vs {r.get('ref_n')} reference "
        f"images of {r.get('reference')}, covariance ddof {r.get('ddof')} and network (sha256 "
        f"{str(r.get('network_sha256') or 'not recorded')[:12]}); gankit evaluate --compare "
        "checks two results."
    )
    return f'<p class="muted">{escape(text)}</p>'


def _memorisation(run: Path) -> str:
    """The newest memorisation pairs image."""
    mem = _step_files(run / "eval", r"memorisation-step-(\d+)\.png")
    if not mem:
        return _muted("no memorisation pairs yet: gankit evaluate RUN --ref DATA draws them")
    return '<p class="muted">Each generated sample next to its nearest training images.</p>' + _png(
        mem[-1][1], f"step {mem[-1][0]}", max_width=1100
    )


def _muted(text: str) -> str:
    return f'<p class="muted">{escape(text)}</p>'


def _changes(history: list[dict]) -> str:
    """The ``config_change`` (and ``init_from``) rows of metrics.jsonl as a table."""
    if not history:
        return _muted("none: the run was trained with the settings of its config.yaml throughout")
    rows = "".join(
        f"<tr><td>{escape(str(r.get('step')))}</td><td>{escape(str(r.get('key', 'weights')))}</td>"
        f"<td>{escape(repr(r.get('old', '')) if 'key' in r else 'from ' + str(r.get('run')))}</td>"
        f"<td>{escape(repr(r.get('new')) if 'key' in r else 'step ' + str(r.get('from_step')))}</td></tr>"
        for r in history
    )
    return f"<table><tr><th>step</th><th>key</th><th>old</th><th>new</th></tr>{rows}</table>"


def _nets_summary(nets: dict) -> str | None:
    """``G: dcgan (nz 100, ngf 64); D: dcgan (ndf 64)`` from a config's ``nets`` section."""
    if not isinstance(nets, dict) or not nets:
        return None
    parts = []
    for name, opts in nets.items():
        opts = opts if isinstance(opts, dict) else {}
        keys = [k for k in ("nz", "ngf", "ndf", "hidden", "nf", "num_blocks") if k in opts]
        detail = ", ".join(f"{k} {opts[k]}" for k in keys)
        parts.append(f"{name}: {opts.get('arch')}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts)


def _summary(run: Path, cfg: dict, rows: list[dict], series: dict) -> str:
    data, section = cfg.get("data", {}), cfg.get(cfg.get("task"), {})
    times = [r["time"] for r in rows if isinstance(r.get("time"), int | float)]
    ckpts = sorted((run / "checkpoints").glob("step-*.pt"))
    info = {
        "recipe": cfg.get("recipe"),
        "description": cfg.get("description"),
        "task": cfg.get("task"),
        "data": f"{data.get('source')} at {data.get('image_size')} px, {data.get('channels')} channel(s)",
        "networks": _nets_summary(cfg.get("nets")),
        "loss": section.get("loss") if isinstance(section, dict) else None,
        "steps logged": f"{max((r.get('step', 0) for r in rows), default=0)} of {cfg.get('train', {}).get('steps')}",
        "wall time": f"{(times[-1] - times[0]) / 60:.1f} min (first to last log)"
        if times
        else None,
        "newest checkpoint": ckpts[-1].name if ckpts else None,
    }
    for k, s in series.items():
        if k.startswith(("loss", "d_", "eval_")):
            info[f"last {LABELS.get(k, k)}"] = f"{s[-1][1]:.4g} (step {s[-1][0]:g})"
    return _value_table({k: v for k, v in info.items() if v not in (None, "")})


def _health(events: list[dict], cfg: dict) -> str:
    h = cfg.get("health", {})
    if not events:
        if h and not h.get("enabled", True):
            return _muted("health checks were off (health.enabled=false)")
        return _muted(
            f"none: D never won for {h.get('d_win_steps', '?')} logged steps in a row, the preview "
            f"diversity stayed above {h.get('collapse_fraction', '?')} of its early value, and "
            "every loss stayed finite"
        )
    rows = "".join(
        f"<tr><td>{escape(str(e.get('step')))}</td>"
        f"<td>{escape(EVENTS.get(e['event'], e['event']))}</td>"
        f"<td>{escape(str(e.get('message', '')))}</td></tr>"
        for e in events
    )
    return f"<table><tr><th>step</th><th>event</th><th>message and advice</th></tr>{rows}</table>"
