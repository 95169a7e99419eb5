"""R3GAN's loss ablation (Huang et al. 2024, "The GAN is dead; long live the GAN!", Table 1) on
Stacked MNIST at CPU scale: which combination of loss and zero-centred penalties keeps all 1,000
modes.

Four rows, the same tiny normalisation-free ResNet (``r3gan-small``'s widths 128-128-64-32, one
block per stage, on 3-channel 32x32 Stacked MNIST) and the same wall time each:

    a  GAN + R1         gan.loss=non-saturating gan.r1=G
    b  RpGAN + R1       gan.loss=rpgan gan.r1=G
    c  GAN + R1 + R2    gan.loss=non-saturating gan.r1=G gan.r2=G
    d  RpGAN + R1 + R2  gan.loss=rpgan gan.r1=G gan.r2=G

each over ``--seeds``. Every run logs E|grad D|^2 on real and on generated images every 10 steps
(``gan.watch_grads=10``), penalised or not. A run is scored with ``gankit evaluate RUN --metrics
modes`` on ``--n`` samples of its EMA generator: the modes covered (of 1,000, each channel read
by a MNIST classifier) and KL(mode histogram || uniform), as the paper reports them. The classifier is gankit's own
(``classifier-mnist`` on the built-in digits), trained once into ``OUT/classifier``. Prints one
JSON object (also ``OUT/r3gan_ablation.json``) and writes the gradient-norm curves of every run
as ``OUT/grads-ROW.svg`` (log10, as logged every ``train.log_every`` steps).

    python benchmarks/r3gan_ablation.py [--out runs/r3gan-ablation] [--minutes 3]
        [--seeds 0,1,2] [--rows a,b,c,d] [--gamma 1] [--n 10000] [--classifier RUN]

A run directory that already holds a checkpoint is not trained again, so an interrupted
benchmark continues where it stopped. Run it alone: two torch processes on two cores slow each
other many times over.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes_cpu import _cpu, _run  # noqa: E402  (the same subprocess and CPU-name helpers)

ROWS = {
    "a": ("GAN + R1", "non-saturating", True),
    "b": ("RpGAN + R1", "rpgan", False),
    "c": ("GAN + R1 + R2", "non-saturating", True),
    "d": ("RpGAN + R1 + R2", "rpgan", False),
}
PAPER = {"a": "fail", "b": "fail", "c": "693 (KL 0.927)", "d": "1000 (KL 0.0781)"}
"""Table 1 of the paper: modes covered and KL on Stacked MNIST at its scale."""


def _trained(run: Path) -> bool:
    return (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir())


def _classifier(out: Path) -> Path:
    run = out / "classifier"
    if not _trained(run):
        cmd = ["gankit", "train", "classifier-mnist", "data.source=builtin:mnist"]
        cmd += ["train.progress=false", "--out", str(run)]
        _run(cmd, out / "logs" / "classifier-train.log")
    return run


def _train(row: str, seed: int, args: argparse.Namespace, out: Path) -> Path:
    run = out / f"{row}-s{seed}"
    if _trained(run):
        return run
    _, loss, _ = ROWS[row]
    cmd = ["gankit", "train", "r3gan-small", "data.source=stacked-mnist:60000", "data.channels=3"]
    cmd += [
        f"gan.loss={loss}",
        f"gan.r1={args.gamma}",
        f"gan.r2={args.gamma if row in 'cd' else 0}",
    ]
    cmd += ["gan.watch_grads=10", f"train.minutes={args.minutes}", "train.steps=1000000"]
    cmd += [f"seed={seed}", "train.progress=false", "--out", str(run)]
    _run(cmd, out / "logs" / f"{run.name}-train.log")
    return run


def _rows(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss_d" in r]


def _score(run: Path, args: argparse.Namespace, clf: Path, out: Path) -> dict:
    ev = out / f"{run.name}-eval"
    cmd = ["gankit", "evaluate", str(run), "--metrics", "modes", "--classifier", str(clf)]
    cmd += ["--ref", f"stacked-mnist:{args.n}", "--n", str(args.n), "--out", str(ev)]
    _run(cmd, out / "logs" / f"{run.name}-eval.log")
    modes = json.loads(next(ev.glob("evaluation-*.json")).read_text())["metrics"]["modes"]
    rows = _rows(run)
    watched = [r for r in rows if "grad_real" in r]
    finite = all(math.isfinite(r["loss_d"]) for r in rows)
    last = watched[-3:]
    return {
        "steps": rows[-1]["step"] if rows else 0,
        "modes": modes["modes"],
        "kl": round(modes["kl"], 4),
        "finite": finite,
        "grad_real_end": statistics.median(r["grad_real"] for r in last) if last else None,
        "grad_fake_end": statistics.median(r["grad_fake"] for r in last) if last else None,
    }


def _curves(runs: dict[str, Path], title: str) -> str:
    """An SVG of log10 E|grad D|^2 on reals and on fakes per run, as logged (each row the mean
    over its logging interval, ``train.log_every`` steps)."""
    from gankit.evaluation.charts import line_chart

    series: dict[str, list[tuple[float, float]]] = {}
    for name, run in runs.items():
        watched = [r for r in _rows(run) if "grad_real" in r]
        for key, tag in (("grad_real", "real"), ("grad_fake", "fake")):
            pts = [
                (r["step"], math.log10(max(r[key], 1e-12)))
                for r in watched
                if math.isfinite(r[key])
            ]
            if pts:
                series[f"{name} {tag}"] = pts
    svg = line_chart(series, title, width=640, height=300) if series else "<svg/>"
    return svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)


def _summary(runs: list[dict]) -> dict:
    modes = [r["modes"] for r in runs if r["modes"] is not None]
    kls = [r["kl"] for r in runs if r["kl"] is not None]
    return {
        "modes_mean": round(statistics.mean(modes), 1) if modes else None,
        "modes_min": min(modes, default=None),
        "modes_max": max(modes, default=None),
        "kl_mean": round(statistics.mean(kls), 4) if kls else None,
        "diverged": sum(not r["finite"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/r3gan-ablation")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rows", default="a,b,c,d")
    p.add_argument("--gamma", type=float, default=1.0, help="gamma of R1 (and R2) in every row")
    p.add_argument("--n", type=int, default=10000, help="samples scored per run")
    p.add_argument("--classifier", help="a gankit MNIST classifier run (default: trained once)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clf = Path(args.classifier) if args.classifier else _classifier(out)
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict = {"minutes": args.minutes, "gamma": args.gamma, "n": args.n, "cpu": _cpu()}
    for row in args.rows.split(","):
        name = ROWS[row][0]
        runs = {f"s{seed}": _train(row, seed, args, out) for seed in seeds}
        scored = {key: _score(run, args, clf, out) for key, run in runs.items()}
        (out / f"grads-{row}.svg").write_text(_curves(runs, f"{name}: log10 E|grad D|^2"))
        result[name] = {"paper": PAPER[row], **_summary(list(scored.values())), "runs": scored}
    (out / "r3gan_ablation.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
