"""The 2-D lab's stabiliser table: modes covered and high-quality share over seeds (VEEGAN protocol).

Each row trains ``gankit toy``'s MLP GAN with one switch on the guide's settings for --seeds seeds
and reports the final snapshot's modes (of 8 on ring8) and high-quality share, their means, and on
how many seeds all modes were covered with >= 70 % high-quality samples. Prints one JSON object;
``--rows`` picks rows by name. Timed alone on the 2-core CPU (one process, 2 threads).

    python benchmarks/toy_lab.py [--data ring8] [--seeds 5|1,3] [--steps 8000] [--rows plain,unroll5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from gankit.toy.cli import summarise
from gankit.toy.lab import ToyOptions, train_toy

GUIDE: dict = {}
"""The guide's settings are the lab's defaults: the unrolled-GAN demo's nets, batch, Adam, learning
rates and minimax objective, 8,000 steps (see docs/guides/stabilisation.md); --set changes them."""

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
    ap.add_argument("--seeds", default="5", help="N (seeds 0..N-1) or a list: 1,3")
    ap.add_argument("--steps", type=int, default=ToyOptions.steps)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], help="extra KEY=VALUE for every row")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    base = ToyOptions(data=a.data, steps=a.steps, **{**GUIDE, **extra})
    seeds = [int(k) for k in a.seeds.split(",")] if "," in a.seeds else range(int(a.seeds))
    table = {}
    for name in a.rows.split(","):
        start = time.perf_counter()
        results = [train_toy(dataclasses.replace(base, seed=seed, **ROWS[name])) for seed in seeds]
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
