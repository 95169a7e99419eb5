"""pix2pix: paired data through the loop, falling L1, direction, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gankit.cli import main
from gankit.engine.loop import train
from gankit.errors import ConfigError, DataError
from gankit.registries import build_config

from conftest import metrics_rows, write_domains

TINY = ["data.image_size=32", "nets.G.ngf=4", "nets.D.ndf=4", "train.batch_size=2", "train.n_preview=2",
        "train.progress=false", "train.device=cpu", "train.steps=3"]  # fmt: skip


def aligned(root, n=6, size=32):
    """Flat-coloured pairs whose B is the colour-inverted A: learnt in a few dozen steps."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    for i in range(n):
        a = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (size, size, 3))
        Image.fromarray(np.concatenate([a, 255 - a], 1)).save(root / "train" / f"{i}.png")
    return root


def test_trains_on_aligned_pairs_and_l1_falls(tmp_path):
    root = aligned(tmp_path / "facades")
    cfg = build_config(
        "pix2pix-mnistm",
        [f"data.root={root}", *TINY, "train.steps=30", "train.log_every=5", "optim.G.lr=2e-3"],
    )
    run = train(cfg, tmp_path / "run")
    l1 = [r["loss_G_L1"] for r in metrics_rows(run) if "loss_G_L1" in r]
    assert l1[-1] < 0.8 * l1[0]
    assert (run / "samples" / "step-000030.png").is_file()
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                str(run),
                str(root / "train" / "0.png"),
                "--direction",
                "AtoB",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert (
        main(["translate", str(run), str(root / "train"), "--direction", "BtoA", "--out", str(out)])
        == 0
    )
    assert Image.open(out / "0.png").size == (64, 32)  # any size: the whole side-by-side file


def test_unpaired_folders_and_missing_root_are_refused(tmp_path):
    root = write_domains(tmp_path / "unpaired")
    with pytest.raises(
        DataError, match="holds unpaired trainA/ and trainB/ folders: pix2pix needs pairs"
    ):
        train(build_config("pix2pix-mnistm", [f"data.root={root}", *TINY]), tmp_path / "run")
    with pytest.raises(ConfigError, match="pix2pix needs paired data: set data.root=DIR"):
        train(build_config("pix2pix-mnistm", TINY), tmp_path / "run2")
    with pytest.raises(ConfigError, match="pix2pix.source='folder:x': pix2pix needs paired data"):
        train(build_config("pix2pix-mnistm", ["pix2pix.source=folder:x", *TINY]), tmp_path / "run3")
