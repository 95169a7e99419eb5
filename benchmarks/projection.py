"""Which distance projects real digits best? Projects held-out MNIST digits into a run with each
distance and prints JSON: the mean pixel MSE between target and projection (in [0, 1] pixel
units) and the digit judge's agreement (the projected digit read as the target's digit).

    python benchmarks/projection.py RUN [--n 20] [--steps 1000] [--distances pixel,dfeat]
        [--vgg vgg16-397923af.pth --lpips vgg.pth] [--mnist ../shared/datasets/mnist]

Held out: the default job (cgan-mnist) trains on the 10,000 MNIST *test* digits that ship with
gankit, so the targets here are the first ``n / 10`` digits of each class of the MNIST *training*
split, which it never saw. The judge is ``benchmarks/digit_judge.py``'s CNN (trained on that
training split, so on these digits it is nearly always right: its agreement measures the
projection). All targets are optimised together (``project_many``); every distance starts from
the same seeds and runs the same schedule (``gankit project``'s defaults, stylegan2-ada's
projector's). ``lpips`` is tried only with
``--vgg`` and ``--lpips``. Run it alone: it keeps both cores busy for a few minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digit_judge import get_judge, load_mnist  # noqa: E402

from gankit.inference.loading import load_run  # noqa: E402
from gankit.inference.projection import Schedule, project_many  # noqa: E402
from gankit.inference.projection_files import target_tensor  # noqa: E402
from gankit.inference.sampling import resolve_ema  # noqa: E402


def held_out(n: int, mnist: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training-split digits, the first of each class in turn: (n, 1, 28, 28) in [0, 1]."""
    x, y = load_mnist(mnist, True)
    picks: list[int] = []
    seen = {k: 0 for k in range(10)}
    for i, label in enumerate(y.tolist()):
        if seen[label] < -(-n // 10):
            seen[label] += 1
            picks.append(i)
        if len(picks) == n:
            break
    idx = torch.tensor(picks)
    return x[idx], y[idx]


def judge_read(net, images: torch.Tensor) -> torch.Tensor:
    """The judge's digit for images in [-1, 1] of 28 or 32 pixels (32: centre 28)."""
    x = (images.float() + 1) / 2
    if x.shape[-1] != 28:
        o = (x.shape[-1] - 28) // 2
        x = x[..., o : o + 28, o : o + 28] if x.shape[-1] > 28 else F.interpolate(x, size=28)
    with torch.no_grad():
        return net(x).argmax(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--distances", default="pixel,dfeat")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--w-plus", action="store_true")
    ap.add_argument("--vgg")
    ap.add_argument("--lpips")
    ap.add_argument("--mnist", help="a folder with torchvision's MNIST/ (default: download)")
    a = ap.parse_args()
    from PIL import Image

    run = load_run(a.run)
    model, ema = run.model, resolve_ema(None, run.model, a.run)
    net, _ = get_judge(a.mnist)
    x, y = held_out(a.n, a.mnist)
    targets = [
        target_tensor(Image.fromarray((img[0] * 255).round().byte().numpy(), "L"), run.cfg)
        for img in x
    ]
    lpips = None
    if a.vgg and a.lpips:
        from gankit.evaluation.metrics.lpips import load_lpips

        lpips = load_lpips(a.vgg, a.lpips)
    results = {}
    for name in a.distances.split(","):
        if name == "lpips" and lpips is None:
            results[name] = {"skipped": "give --vgg and --lpips"}
            continue
        torch.manual_seed(0)
        start = time.perf_counter()
        found = project_many(
            model, torch.cat(targets), name, Schedule(steps=a.steps), ema=ema, w_plus=a.w_plus,
            restarts=a.restarts, lpips=lpips,
        )  # fmt: skip
        projected = [p.image for p in found]
        mse = [((p.image - p.target) / 2).square().mean().item() for p in found]
        read = judge_read(net, torch.cat(projected))
        results[name] = {
            "pixel_mse": round(statistics.mean(mse), 5),
            "pixel_mse_median": round(statistics.median(mse), 5),
            "judge_agreement": round((read == y).float().mean().item(), 3),
            "seconds": round(time.perf_counter() - start, 1),
        }
    scored = {k: v for k, v in results.items() if "pixel_mse" in v}
    best = max(scored, key=lambda k: (scored[k]["judge_agreement"], -scored[k]["pixel_mse"]))
    target_read = judge_read(net, torch.cat(targets))
    print(
        json.dumps(
            {
                "run": str(a.run), "step": run.step, "n": len(targets), "steps": a.steps,
                "restarts": a.restarts, "judge_on_targets": round((target_read == y).float().mean().item(), 3),
                "distances": results, "best": best,
            }
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
