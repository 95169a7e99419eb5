"""Modern GANs on a CPU: ``stylegan2-mnist`` and ``r3gan-small`` against ``dcgan-mnist32`` at the
same wall time.

Each recipe is trained with the real command line (``gankit train RECIPE train.minutes=M
seed=S --out OUT/NAME``, one after the other, never two at once), then scored on ``--n`` samples
of its EMA generator with ``gankit evaluate RUN --ref builtin:mnist --metrics fid,kid --resizer R``
(the FID Inception, ``--inception`` or gankit's search; ``--resizer``, default gankit's
``legacy-tensorflow``: the figures in the docs, measured before it existed, need
``--resizer legacy-pytorch``, gankit 0.2's resize) and by the digit judge
(``benchmarks/digit_judge.py``: the share of samples a MNIST CNN reads with confidence >= 0.9).
A grid of 64 samples of each goes to ``OUT/NAME.png``. Prints one JSON object (also
``OUT/recipes_cpu.json``): steps, images/s, FID, KID and the judge's figures per recipe.

    python benchmarks/recipes_cpu.py [--out runs/recipes-cpu] [--minutes 15] [--n 2000]
        [--seed 0] [--inception PATH] [--mnist DIR] [--resizer legacy-tensorflow]
        [--recipes stylegan2-mnist,r3gan-small,dcgan-mnist32]

A run directory that already holds a checkpoint is not trained again. Run it alone: two torch
processes on two cores slow each other many times over.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

from gankit.evaluation.metrics.resize import DEFAULT_RESIZER, RESIZERS

HERE = Path(__file__).resolve().parent


def _run(cmd: list[str], log: Path) -> str:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): see {log}")
    return proc.stdout


def _train(recipe: str, run: Path, minutes: float, seed: int, out: Path) -> None:
    if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()):
        return
    cmd = ["gankit", "train", recipe, f"train.minutes={minutes}", "train.steps=1000000"]
    cmd += [f"seed={seed}", "train.progress=false", "--out", str(run)]
    _run(cmd, out / "logs" / f"{run.name}-train.log")


def _metrics(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss_d" in r]
    speeds = [r["img_per_s"] for r in steps if "img_per_s" in r]
    return {
        "steps": steps[-1]["step"] if steps else 0,
        "img_per_s": round(sum(speeds) / len(speeds), 1) if speeds else None,
    }


def _score(run: Path, args: argparse.Namespace, out: Path) -> dict:
    ev = out / f"{run.name}-eval"
    cmd = ["gankit", "evaluate", str(run), "--ref", "builtin:mnist", "--n", str(args.n)]
    cmd += ["--metrics", "fid,kid", "--resizer", args.resizer, "--out", str(ev)]
    if args.inception:
        cmd += ["--inception", args.inception]
    _run(cmd, out / "logs" / f"{run.name}-eval.log")
    scores = json.loads(next(ev.glob("evaluation-*.json")).read_text())["metrics"]
    judge = [sys.executable, str(HERE / "digit_judge.py"), str(run), "--n", str(args.n)]
    if args.mnist:
        judge += ["--mnist", args.mnist]
    judged = json.loads(_run(judge, out / "logs" / f"{run.name}-judge.log"))
    grid = out / f"{run.name}.png"
    _run(["gankit", "sample", str(run), "--n", "64", "--out", str(grid)], out / "logs" / "s.log")
    return {"evaluation": scores, "judge": judged, "grid": str(grid)}


def _cpu() -> str:
    for line in (
        Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    ):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/recipes-cpu")
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inception", help="the FID Inception file (default: gankit's search)")
    p.add_argument(
        "--resizer",
        choices=RESIZERS,
        default=DEFAULT_RESIZER,
        help="gankit evaluate's resize (legacy-pytorch: gankit 0.2's, that of the recorded figures)",
    )
    p.add_argument("--mnist", help="MNIST for the digit judge (default: downloaded)")
    p.add_argument("--recipes", default="stylegan2-mnist,r3gan-small,dcgan-mnist32")
    args = p.parse_args(argv)
    out = Path(args.out)
    result = {"minutes": args.minutes, "n": args.n, "seed": args.seed, "resizer": args.resizer}
    result["cpu"] = _cpu()
    for recipe in args.recipes.split(","):
        run = out / f"{recipe}-s{args.seed}"
        _train(recipe, run, args.minutes, args.seed, out)
        result[recipe] = {**_metrics(run), **_score(run, args, out)}
    (out / "recipes_cpu.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
