"""Semi-supervised GAN on MNIST with 100 labels against the same classifier on the labels alone.

Both runs use the ``ssgan-mnist-100`` recipe, the same seed and therefore the same 100 labelled
images (``data.labels_per_class=10``); the baseline sets ``ssgan.supervised_only=true``: the same
discriminator network trained with cross-entropy on those images only. Each is timed as a user
would run it (``gankit train`` in a subprocess, start-up included) and scored on the 10,000 MNIST
test images with ``gankit evaluate-classifier``. The baseline is also credited with the best test
accuracy it reached at any of its evaluations, which can only favour it. Prints one JSON object.

    python benchmarks/ssgan_mnist.py --mnist ../shared/datasets/mnist --out /tmp/ssgan-bench

Run it alone: two torch processes on two cores slow each other many times over.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def train(out: Path, root: str, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "gankit", "train", "ssgan-mnist-100", f"data.root={root}"]
    cmd += ["train.progress=false", *extra, "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def evaluate(run: Path, root: str) -> dict:
    cmd = [sys.executable, "-m", "gankit", "evaluate-classifier", str(run), "--data", "mnist"]
    subprocess.run([*cmd, "--root", root], check=True, stdout=subprocess.DEVNULL)
    return json.loads((run / "evaluation.json").read_text())


def test_curve(run: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["test_acc"]) for r in rows if "test_acc" in r]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", required=True, help="folder holding MNIST/raw (data.root)")
    ap.add_argument("--out", default="runs/ssgan-bench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-steps", type=int, default=3000)
    ap.add_argument("--set", nargs="*", default=[], help="overrides for the ssgan run only")
    a = ap.parse_args()
    out = Path(a.out)
    # A private copy: torchvision may unpack the archives next to them, and the shared
    # datasets folder must never be written to.
    root = out / "data"
    if not (root / "MNIST" / "raw").is_dir():
        shutil.copytree(Path(a.mnist) / "MNIST" / "raw", root / "MNIST" / "raw")
    a.mnist = str(root)
    seed = [f"seed={a.seed}"]
    result: dict = {"recipe": "ssgan-mnist-100", "labels": 100, "seed": a.seed}
    ss = out / "ssgan"
    result["ssgan_wall_s"] = round(train(ss, a.mnist, seed + a.set), 1)
    ev = evaluate(ss, a.mnist)
    result["ssgan_test_accuracy"] = ev["accuracy"]
    result["ssgan_curve"] = test_curve(ss)
    base = out / "supervised"
    extra = [
        "ssgan.supervised_only=true",
        f"train.steps={a.baseline_steps}",
        "ssgan.eval_every=250",
    ]
    result["baseline_wall_s"] = round(train(base, a.mnist, seed + extra), 1)
    ev = evaluate(base, a.mnist)
    curve = test_curve(base)
    result["baseline_test_accuracy"] = ev["accuracy"]
    result["baseline_best_test_accuracy"] = max(acc for _, acc in curve)
    result["baseline_curve"] = curve
    best = max(result["baseline_test_accuracy"], result["baseline_best_test_accuracy"])
    result["gain_points"] = round(100 * (result["ssgan_test_accuracy"] - best), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
