"""``gankit toy``: train lab runs over several seeds and write their pictures and scores."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

from tqdm import tqdm

from gankit.cli.options import number
from gankit.errors import ConfigError
from gankit.toy.lab import ToyOptions, ToyResult, train_toy
from gankit.toy.mixtures import MIXTURES
from gankit.toy.plots import plot_xy, save_gif, scatter, strip


def add_toy_command(sub) -> None:
    """Register ``gankit toy`` on the ``gankit`` subparsers."""
    p = sub.add_parser(
        "toy",
        help="the 2-D lab: GANs on mixtures of Gaussians, with stabilisers (a minute to half an hour)",
        description="Train MLP GANs on a 2-D mixture (ring8, grid25, spiral) for --seeds seeds; "
        "write real-vs-generated scatter plots over time (PNG, GIF) and the modes covered and "
        "high-quality share (VEEGAN protocol) to --out. `gankit toy xy` draws gradient steps on "
        "f(x, y) = x*y.",
    )
    p.add_argument("data", choices=[*MIXTURES, "xy"], help="ring8, grid25, spiral, or xy")
    p.add_argument(
        "--seeds", type=number(int, 1), default=1, help="runs with seeds 0..N-1 (default 1)"
    )
    p.add_argument("--out", help="folder for the pictures and scores (default runs/toy-DATA-...)")
    defaults = ToyOptions()
    for f in dataclasses.fields(ToyOptions):
        if f.name in ("data", "seed"):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "lr_decay":
            p.add_argument(
                flag,
                type=_fraction_or_none,
                default=default,
                help="fraction of the steps after which both learning rates fall linearly to 0 "
                f"(default {default}; none = constant)",
            )
        elif isinstance(default, bool):
            p.add_argument(flag, action="store_true", help=_doc(f.name))
        else:
            kind = type(default)  # finite numbers here; ToyOptions.check() says which ranges hold
            parse = number(kind) if kind in (int, float) else kind
            p.add_argument(
                flag, type=parse, default=default, help=f"{_doc(f.name)}(default {default})"
            )
    p.set_defaults(func=run_toy_command)


def _fraction_or_none(value: str) -> float | None:
    return None if value.lower() in ("none", "off", "null") else float(value)


def _doc(name: str) -> str:
    return {
        "unroll": "unrolled GAN: D look-ahead steps in G's loss (Metz et al. 2017) ",
        "minibatch": "minibatch discrimination kernels in D, 0 = off (Salimans et al. 2016) ",
        "kernel_dim": "dimensions per minibatch-discrimination kernel ",
        "mbstd": "minibatch-standard-deviation feature in D (Karras et al. 2018)",
        "vbn": "virtual batch norm in G (Salimans et al. 2016)",
        "feature_matching": "feature-matching loss for G (Salimans et al. 2016)",
        "instance_noise": "std of noise on D's inputs, annealed to 0 ",
        "loss": "GAN objective ",
        "snapshot_every": "steps between scored snapshots ",
        "n_eval": "points per snapshot (VEEGAN: 2500) ",
    }.get(name, "")


def _tag(o: ToyOptions) -> str:
    parts = [o.data]
    for key, default in dataclasses.asdict(ToyOptions()).items():
        value = getattr(o, key)
        if key in ("data", "seed", "snapshot_every", "n_eval") or value == default or value is None:
            continue
        parts.append(
            key if value is True else f"{key}{value:g}" if not isinstance(value, str) else value
        )
    return "-".join(parts)


def run_toy_command(args: argparse.Namespace) -> int:
    if args.data == "xy":
        out = Path(args.out or "runs/toy-xy")
        out.mkdir(parents=True, exist_ok=True)
        print(f"wrote {plot_xy(out / 'xy.png')}")
        return 0
    if args.seeds <= 0:
        raise ConfigError("--seeds must be positive")
    kw = {f.name: getattr(args, f.name) for f in dataclasses.fields(ToyOptions) if f.name != "seed"}
    base = ToyOptions(**{**kw, "data": args.data})
    base.check()
    out = Path(args.out or f"runs/toy-{_tag(base)}")
    out.mkdir(parents=True, exist_ok=True)
    results: list[ToyResult] = []
    for seed in range(args.seeds):
        o = dataclasses.replace(base, seed=seed)
        with tqdm(total=o.steps, desc=f"seed {seed}", unit="step", leave=False) as bar:
            r = train_toy(o, progress=lambda _s: bar.update(1))
        results.append(r)
        write_pictures(r, out / f"seed{seed}")
        f = r.final
        print(
            f"seed {seed}: {f.modes}/{f.total} modes, {f.high_quality:.1%} high quality "
            f"({r.seconds:.0f} s)"
        )
    summary = summarise(results)
    (out / "scores.json").write_text(
        json.dumps({"summary": summary, "runs": [r.as_dict() for r in results]}, indent=1)
    )
    print(
        f"{summary['seeds']} seeds: {summary['modes_mean']:.2f} modes of {summary['of']} on average, "
        f"{summary['high_quality_mean']:.1%} high quality; all modes with >= 70% high quality on "
        f"{summary['all_modes_hq70']} seeds; wrote {out}"
    )
    return 0


def summarise(results: list[ToyResult]) -> dict:
    """The final snapshot's scores per seed, their means, and how many seeds cover every mode with
    >= 70 % high-quality samples; ``late_*``: means over the snapshots of the last quarter of the
    steps, which tell a GAN that settled from one that hops and happened to end well."""
    finals = [r.final for r in results]
    late = [[s.score for s in r.snapshots if s.step >= 0.75 * r.options.steps] for r in results]
    return {
        "seeds": len(finals),
        "of": finals[0].total,
        "modes": [f.modes for f in finals],
        "modes_mean": statistics.fmean(f.modes for f in finals),
        "high_quality": [round(f.high_quality, 4) for f in finals],
        "high_quality_mean": statistics.fmean(f.high_quality for f in finals),
        "all_modes_hq70": sum(f.modes == f.total and f.high_quality >= 0.7 for f in finals),
        "late_modes": [round(statistics.fmean(s.modes for s in run), 2) for run in late],
        "late_high_quality": [
            round(statistics.fmean(s.high_quality for s in run), 4) for run in late
        ],
    }


def write_pictures(r: ToyResult, stem: Path, columns: int = 6) -> tuple[Path, Path]:
    """``stem.png`` (up to ``columns`` snapshots, evenly spaced, the last included) and ``stem.gif``
    (every snapshot)."""
    panels = [
        scatter(
            s.points,
            r.data,
            f"step {s.step}: {s.score.modes}/{s.score.total}, {s.score.high_quality:.0%} hq",
        )
        for s in r.snapshots
    ]
    n = len(panels)
    pick = (
        sorted({round(i * (n - 1) / (columns - 1)) for i in range(columns)})
        if n > columns
        else range(n)
    )
    png = stem.with_suffix(".png")
    strip([panels[i] for i in pick], columns).save(png)
    return png, save_gif(panels, stem.with_suffix(".gif"))
