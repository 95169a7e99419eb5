"""Training throughput, measured as ratios inside one run (prints JSON).

1. DCGAN-64 (ngf = ndf = 64, 3 channels): gankit's full training loop vs a plain eager reference
   loop of the same networks in the style of the PyTorch DCGAN example (BCE on sigmoid outputs,
   separate real/fake D passes, one G step per batch, data from a DataLoader over a float tensor).
2. dcgan-mnist (the default recipe's nets and step): gankit's in-memory uint8 data path vs a
   per-image DataLoader path (torchvision-style Dataset returning one normalised image per
   __getitem__, two workers).

Rounds alternate ours/theirs so that machine noise hits both; the medians are reported.

    python benchmarks/train_speed.py [--rounds 3] [--steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from gankit.data.sources import load_source
from gankit.engine.loop import train
from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.nets.init import init_weights
from gankit.registries import build_config


def ours(overrides: list[str], steps: int, recipe: str) -> float:
    """img/s of gankit's loop over the steps after the first log interval (start-up excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_config(
            recipe,
            [
                *overrides,
                f"train.steps={steps}",
                f"train.log_every={steps // 4}",
                "train.progress=false",
                f"train.sample_every={10**9}",
                f"train.ckpt_every={10**9}",
            ],
        )
        run = train(cfg, Path(tmp) / "run")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "img_per_s" in r]  # not preview_diversity or health-event rows
    return statistics.mean(r["img_per_s"] for r in rows[1:])


def reference_dcgan(images: torch.Tensor, steps: int, batch: int, device: torch.device) -> float:
    """The plain eager loop of the PyTorch DCGAN example, on the same nets; img/s after warm-up."""
    G = init_weights(DCGANGenerator(64, 100, 64, 3)).to(device)
    D = init_weights(DCGANDiscriminator(64, 64, 3)).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    loader = DataLoader(
        TensorDataset(images.float() / 127.5 - 1), batch_size=batch, shuffle=True, drop_last=True
    )
    it, done, t0, warm = iter(loader), 0, 0.0, max(1, steps // 4)
    for i in range(steps):
        if i == warm:
            t0 = time.perf_counter()
        try:
            (real,) = next(it)
        except StopIteration:
            it = iter(loader)
            (real,) = next(it)
        real = real.to(device)
        D.zero_grad()
        out = torch.sigmoid(D(real))
        err_real = bce(out, torch.ones_like(out))
        err_real.backward()
        fake = G(torch.randn(batch, 100, 1, 1, device=device))
        out = torch.sigmoid(D(fake.detach()))
        err_fake = bce(out, torch.zeros_like(out))
        err_fake.backward()
        opt_d.step()
        G.zero_grad()
        out = torch.sigmoid(D(fake))
        bce(out, torch.ones_like(out)).backward()
        opt_g.step()
        if i >= warm:
            done += batch
    return done / (time.perf_counter() - t0)


class PerImageMNIST(Dataset):
    """One image per __getitem__, padded to the recipe's size and normalised: the usual
    torchvision pipeline."""

    def __init__(self, images: torch.Tensor, size: int):
        self.images = images  # uint8 (N, 1, 28, 28)
        self.pad = (size - images.shape[-1]) // 2

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i].float().div(255)
        if self.pad:
            x = torch.nn.functional.pad(x, (self.pad,) * 4)
        return (x - 0.5) / 0.5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--batch64", type=int, default=64, help="batch size for the DCGAN-64 comparison"
    )
    a = ap.parse_args()
    dev = torch.device(a.device)
    data64 = load_source(
        build_config("dcgan", ["data.source=builtin:mnist", "data.limit=2048"]).data, progress=False
    ).images
    base64 = [
        "data.source=builtin:mnist",
        "data.limit=2048",
        f"train.batch_size={a.batch64}",
        f"train.device={a.device}",
    ]
    results: dict[str, list[float]] = {
        k: []
        for k in ("dcgan64_ours", "dcgan64_reference", "mnist_in_memory", "mnist_per_image_loader")
    }
    mnist = load_source(build_config("dcgan-mnist").data, progress=False)
    o = (mnist.images.shape[-1] - 28) // 2  # the in-memory images are padded to the recipe's size
    raw = mnist.images[:, :, o : o + 28, o : o + 28].contiguous()
    for _ in range(a.rounds):
        results["dcgan64_ours"].append(ours(base64, a.steps, "dcgan"))
        results["dcgan64_reference"].append(reference_dcgan(data64, a.steps, a.batch64, dev))
        results["mnist_in_memory"].append(
            ours([f"train.device={a.device}"], a.steps * 5, "dcgan-mnist")
        )
        results["mnist_per_image_loader"].append(per_image_loader_run(raw, a.steps * 5, dev))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        json.dumps(
            {
                "date": str(date.today()),
                "device": torch.cuda.get_device_name(dev)
                if dev.type == "cuda"
                else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
                "torch": torch.__version__,
                "img_per_s_median": {k: round(v, 1) for k, v in med.items()},
                "img_per_s_rounds": {k: [round(x, 1) for x in v] for k, v in results.items()},
                "dcgan64_ours_over_reference": round(
                    med["dcgan64_ours"] / med["dcgan64_reference"], 3
                ),
                "mnist_in_memory_over_loader": round(
                    med["mnist_in_memory"] / med["mnist_per_image_loader"], 3
                ),
            },
            indent=1,
        )
    )


def per_image_loader_run(raw: torch.Tensor, steps: int, device: torch.device) -> float:
    """gankit's dcgan-mnist networks and step, fed by a per-image DataLoader; img/s after warm-up."""
    from gankit.engine.runtime import Runtime
    from gankit.tasks.base import Streams
    from gankit.tasks.gan import GANTask

    cfg = build_config("dcgan-mnist", [f"train.device={device}"])
    task = GANTask(cfg, Runtime(device), {})
    loader = DataLoader(
        PerImageMNIST(raw, cfg.data.image_size),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        persistent_workers=True,
    )

    def batches():
        while True:
            for x in loader:
                yield x.to(device)

    stream, warm = Streams({"real": batches()}), max(1, steps // 4)
    for i in range(steps):
        if i == warm:
            t0 = time.perf_counter()
        task.step(stream)
    return (steps - warm) * cfg.train.batch_size / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
