"""One StyleGAN2 iteration at 64x64 on the CPU: fused vs split modulation, eager vs compile.

The ``stylegan2`` recipe (stylegan2-ada's ``auto`` config at 64x64: batch 32 on one GPU, here
``--batch``) on the built-in digits as RGB, trained by gankit's loop for ``--steps`` steps (a
multiple of 16, so that the path-length phase every 4 and R1 every 16 are amortised as in a long
run), once per variant, in alternating rounds so that machine noise hits every variant. Reports
the median seconds per iteration and each variant's ratio to ``split/eager`` (the reference's
choice in training). Prints JSON.

    python benchmarks/stylegan2_speed.py [--steps 16] [--batch 8] [--rounds 2] [--size 64]
        [--variants split,fused,split-compile] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = {
    "split": ["nets.G.modulation=split"],
    "fused": ["nets.G.modulation=fused"],
    "split-compile": ["nets.G.modulation=split", "train.compile=true"],
    "fused-compile": ["nets.G.modulation=fused", "train.compile=true"],
}


def seconds_per_step(overrides: list[str], steps: int) -> float:
    from train_speed import ours

    img_per_s = ours(overrides, steps, "stylegan2")
    batch = int(next(o for o in overrides if o.startswith("train.batch_size=")).split("=")[1])
    return batch / img_per_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--variants", default="split,fused")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    base = [
        "data.source=builtin:mnist",
        f"data.image_size={args.size}",
        "data.channels=3",
        "data.limit=512",
        f"train.batch_size={args.batch}",
        f"train.device={args.device}",
    ]
    names = args.variants.split(",")
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name in names:
            times[name].append(seconds_per_step([*base, *VARIANTS[name]], args.steps))
    med = {n: statistics.median(t) for n, t in times.items()}
    first = names[0]
    result = {
        "date": str(date.today()),
        "machine": platform.processor() or platform.machine(),
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "s_per_step": {n: round(v, 3) for n, v in med.items()},
        f"over_{first}": {n: round(v / med[first], 3) for n, v in med.items()},
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
