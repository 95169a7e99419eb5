"""Training throughput of gankit's ``cs231n-gan`` recipe vs the cs231n assignment's own loop (JSON).

Both train the course's vanilla GAN (the same nets from ``gankit.compat.cs231n``, Adam 1e-3
(0.5, 0.999), batch 128) on full MNIST for the same number of iterations, in one process:

- gankit: ``gankit.engine.loop.train`` with the recipe (MNIST decoded once into a uint8 tensor).
- course: ``run_a_gan``'s D step and G step, fed by ``torchvision.datasets.MNIST`` +
  ``transforms.ToTensor()`` + ``DataLoader(batch_size=128, shuffle=True)``.

Images/s are counted after the first quarter of the iterations (start-up excluded); rounds
alternate gankit/course so machine noise hits both, and the medians are reported.

    python benchmarks/cs231n_speed.py [--iters 300] [--rounds 3] [--mnist ../shared/datasets/mnist]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from gankit.compat import cs231n
from gankit.engine.loop import train
from gankit.registries import build_config

BATCH = 128


def gankit_img_per_s(root: str, iters: int) -> float:
    warm = max(1, iters // 4)
    overrides = [
        "data.source=mnist",
        f"data.root={root}",
        "train.epochs=null",
        f"train.steps={iters}",
        f"train.log_every={warm}",
        f"train.sample_every={10**9}",
        f"train.ckpt_every={10**9}",
        "train.threads=1",
        "train.device=cpu",
        "train.progress=false",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        run = train(build_config("cs231n-gan", overrides), Path(tmp) / "run")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "img_per_s" in r]  # not preview_diversity or health-event rows
    # Each row's img_per_s covers its own log interval; the first one holds the start-up.
    pairs = zip(rows[:-1], rows[1:], strict=True)
    seconds = sum((r["step"] - p["step"]) * BATCH / r["img_per_s"] for p, r in pairs)
    return (rows[-1]["step"] - rows[0]["step"]) * BATCH / seconds


def course_img_per_s(root: str, iters: int) -> float:
    """The assignment's ``run_a_gan`` step for step, on its data pipeline."""
    import torchvision.datasets as dset
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    mnist = dset.MNIST(root, train=True, download=True, transform=T.ToTensor())
    loader = DataLoader(mnist, batch_size=BATCH, shuffle=True)
    D, G = cs231n.discriminator(), cs231n.generator()
    D_solver, G_solver = cs231n.get_optimizer(D), cs231n.get_optimizer(G)
    warm, done, t0 = max(1, iters // 4), 0, 0.0
    while done < iters:
        for x, _ in loader:
            if len(x) != BATCH:
                continue
            if done == warm:
                t0 = time.perf_counter()
            D_solver.zero_grad()
            logits_real = D(2 * (x - 0.5))
            fake_images = G(cs231n.sample_noise(BATCH, cs231n.NOISE_DIM)).detach()
            logits_fake = D(fake_images.view(BATCH, 1, 28, 28))
            cs231n.discriminator_loss(logits_real, logits_fake).backward()
            D_solver.step()

            G_solver.zero_grad()
            fake_images = G(cs231n.sample_noise(BATCH, cs231n.NOISE_DIM))
            cs231n.generator_loss(D(fake_images.view(BATCH, 1, 28, 28))).backward()
            G_solver.step()
            done += 1
            if done == iters:
                break
    return (iters - warm) * BATCH / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--mnist", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/mnist")
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    results: dict[str, list[float]] = {"gankit": [], "course": []}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(Path(a.mnist) / "MNIST", Path(tmp) / "MNIST")  # never write into shared/
        for _ in range(a.rounds):
            results["gankit"].append(gankit_img_per_s(tmp, a.iters))
            results["course"].append(course_img_per_s(tmp, a.iters))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        json.dumps(
            {
                "date": str(date.today()),
                "device": f"cpu ({platform.processor() or platform.machine()}, 1 thread)",
                "torch": torch.__version__,
                "iters": a.iters,
                "batch_size": BATCH,
                "img_per_s_median": {k: round(v, 1) for k, v in med.items()},
                "img_per_s_rounds": {k: [round(x, 1) for x in v] for k, v in results.items()},
                "gankit_over_course": round(med["gankit"] / med["course"], 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
