"""Bit-identity of training across a refactor: 20 steps per configuration, then a sha256 of every
network and EMA tensor of the final checkpoint (prints JSON, writes OUT/hashes.json).

Run it on the commit before a change (a git worktree, PYTHONPATH=WORKTREE/src) and after it; equal
hashes mean equal weights. The cases cover every switch of the GAN step (losses, penalties, ADA,
DiffAugment, instance noise, the conditional modes, the stabilisers, FastGAN), SSGAN and CycleGAN,
on tiny generated data, one thread.

    python benchmarks/weights_hash.py OUT [CASE ...]
"""

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.registries import build_config


def main() -> None:
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    only = sys.argv[2:]  # optional subset
    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    imgs = root / "imgs"
    imgs.mkdir()
    for i in range(64):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
            imgs / f"{i:03d}.png"
        )
    labelled = root / "lab"
    for c in ("a", "b", "c"):
        (labelled / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                labelled / c / f"{i}.png"
            )
    dom = root / "dom"
    for name in ("trainA", "trainB", "testA", "testB"):
        (dom / name).mkdir(parents=True)
        for i in range(8):
            small = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8))
            small.resize((24, 24), Image.Resampling.BICUBIC).save(dom / name / f"{i}.png")

    COMMON = [
        "train.steps=20",
        "train.progress=false",
        "train.device=cpu",
        "train.n_preview=4",
        "train.sample_every=1000",
        "train.ckpt_every=1000",
    ]
    TINYDC = [
        "data.image_size=16",
        "nets.G.ngf=4",
        "nets.D.ndf=4",
        "nets.G.nz=8",
        "train.batch_size=4",
        "data.limit=64",
        f"data.source=folder:{imgs}",
    ]
    CASES = {
        "dcgan-mnist": ("dcgan-mnist", ["train.batch_size=8", "data.limit=64"]),
        "cgan-mnist": ("cgan-mnist", ["train.batch_size=8", "data.limit=64"]),
        "wgan-gp": ("wgan-gp", TINYDC),
        "small-data-ada": ("small-data", TINYDC + ["gan.ada=adaptive", "gan.ada_kimg=0.001"]),
        "cs231n-gan": ("cs231n-gan", ["train.batch_size=8", "data.limit=64", "train.epochs=null"]),
        "cyclegan-mnistm": (
            "cyclegan-mnistm",
            [
                f"data.root={dom}",
                "data.image_size=24",
                "nets.G_A.ngf=4",
                "nets.G_B.ngf=4",
                "nets.D_A.ndf=4",
                "nets.D_B.ndf=4",
                "train.batch_size=2",
            ],
        ),
        # beyond the list: every other switch of the GAN step
        "wgan-clip": ("wgan", TINYDC + ["gan.d_schedule=wgan"]),
        "r1r2-lazy-fixedada": (
            "dcgan",
            TINYDC
            + [
                "gan.r1=1",
                "gan.r2=0.5",
                "gan.reg_every=4",
                "gan.ada=fixed",
                "gan.ada_p=0.3",
                "gan.instance_noise=0.1",
                "gan.ema=0.99",
                "gan.augment=color,translation",
            ],
        ),
        "rpgan-r1r2": (
            "dcgan",
            TINYDC + ["gan.loss=rpgan", "gan.r1=1", "gan.r2=1", "gan.ada=adaptive"],
        ),
        "acgan-fm": (
            "dcgan",
            TINYDC[:-1]
            + [
                f"data.source=folder:{labelled}",
                "gan.conditional=acgan",
                "gan.feature_matching=true",
                "gan.label_smoothing=0.1",
            ],
        ),
        "projection-mbstd-gp": (
            "dcgan",
            TINYDC[:-1]
            + [
                f"data.source=folder:{labelled}",
                "gan.conditional=projection",
                "gan.mbstd=true",
                "gan.gp_weight=1",
                "gan.r1=1",
                "gan.loss=hinge",
            ],
        ),
        "minibatch-vbn-lsgan": (
            "dcgan",
            TINYDC
            + ["gan.minibatch=4", "gan.vbn=true", "gan.loss=lsgan", "gan.lr_decay_start=0.5"],
        ),
        "fastgan": (
            "fastgan-256",
            [
                "data.image_size=64",
                "train.batch_size=2",
                "data.limit=16",
                f"data.source=folder:{imgs}",
                "nets.G.ngf=4",
                "nets.D.ndf=4",
                "nets.G.nz=8",
                "train.steps=4",
            ],
        ),
        "ssgan": (
            "ssgan-mnist-100",
            [
                "train.batch_size=8",
                "data.limit=200",
                "data.labels_per_class=2",
                "data.source=builtin:mnist",
            ],
        ),
    }
    res = {}
    for name, (recipe, over) in CASES.items():
        if only and name not in only:
            continue
        try:
            cfg = build_config(recipe, [*over, *COMMON])
            run = train(cfg, root / "runs" / name)
            parts = load_checkpoint(latest_checkpoint(run))["parts"]
            h = hashlib.sha256()
            for group in ("nets", "ema"):
                for k, sd in sorted(parts[group].items()):
                    for kk, t in sorted(sd.items()):
                        if isinstance(t, torch.Tensor):
                            h.update(f"{group}.{k}.{kk}".encode())
                            h.update(t.detach().cpu().contiguous().numpy().tobytes())
            res[name] = h.hexdigest()[:16]
        except Exception as e:
            res[name] = f"ERROR {type(e).__name__}: {str(e)[:200]}"
    (out / "hashes.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
