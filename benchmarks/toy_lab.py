"""The 2-D lab's stabiliser table: modes covered and high-quality share over seeds (VEEGAN protocol).

Each row trains ``gankit toy``'s MLP GAN with one switch on the guide's settings for --seeds seeds
and reports the final snapshot's modes (of 8 on ring8) and high-quality share, their means, and on
how many seeds all modes were covered with >= 70 % high-quality samples. Prints one JSON object;
``--rows`` picks rows by name. Timed alone on the 2-core CPU (one process, 2 threads).

    python benchmarks/toy_lab.py [--data ring8] [--seeds 5 | --seed-list 1,3] [--steps 16000] [--rows plain,unroll5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from gankit.cli.toy import summarise, write_pictures
from gankit.toy.lab import ToyOptions, train_toy

GUIDE: dict = {}
"""The guide's settings are the lab's defaults: the unrolled-GAN demo's nets, batch, Adam, learning
rates and minimax objective, 16,000 steps (see docs/guides/stabilisation.md); --set changes them."""

ROWS = {
    "plain": {},
    "unroll5": {"unroll": 5},
    "minibatch8": {"minibatch": 8},
    "mbstd": {"mbstd": True},
    "feature_matching": {"feature_matching": True},
    "instance_noise": {"instance_noise": 0.1},
    "vbn": {"vbn": True},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="ring8")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    ap.add_argument("--seed-list", help="these seeds instead, e.g. 1,3 (to split runs over cores)")
    ap.add_argument("--steps", type=int, default=ToyOptions.steps)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], help="extra KEY=VALUE for every row")
    ap.add_argument("--pictures", help="folder for each run's PNG and GIF (ROW-seedK.png)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    base = ToyOptions(data=a.data, steps=a.steps, **{**GUIDE, **extra})
    seeds = [int(k) for k in a.seed_list.split(",")] if a.seed_list else list(range(a.seeds))
    if not seeds:
        raise SystemExit("--seeds must be positive")
    if a.pictures:
        Path(a.pictures).mkdir(parents=True, exist_ok=True)
    table = {}
    for name in a.rows.split(","):
        start = time.perf_counter()
        results = []
        for seed in seeds:
            results.append(train_toy(dataclasses.replace(base, seed=seed, **ROWS[name])))
            if a.pictures:
                write_pictures(results[-1], Path(a.pictures) / f"{name}-seed{seed}")
        row = summarise(results)
        row["seed_list"] = list(seeds)
        row["seconds_per_run"] = round((time.perf_counter() - start) / len(seeds), 1)
        table[name] = row
        print(json.dumps({name: row}), flush=True)
    print(
        json.dumps(
            {"data": a.data, "steps": a.steps, "settings": {**GUIDE, **extra}, "rows": table}
        )
    )


if __name__ == "__main__":
    main()
