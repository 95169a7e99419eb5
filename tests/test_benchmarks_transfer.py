"""benchmarks/transfer.py end to end at its --tiny size: a source run on nine classes, then the
scratch and fine-tuned arms on the tenth, each trained through `gankit train` and scored with
the FID Inception (skipped without the shared copy of it). About 30 s of CPU, most of it the
three `gankit train` processes' start-up (torch's import, the data) and the Inception's load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gankit.evaluation.metrics.inception import INCEPTION_FILENAME

from conftest import SHARED, metrics_rows

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
INCEPTION = SHARED / "inception" / INCEPTION_FILENAME


def fake_cifar(root: Path, classes: tuple[str, ...], n_train: int = 28, n_test: int = 4) -> Path:
    """A CIFAR-10-shaped folder (train/<class>/, test/<class>/) of 32x32 JPEGs, one tint a class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = 20 * k + rng.integers(0, 60, (32, 32, 3))
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.jpg")
    return root


@pytest.mark.skipif(not INCEPTION.is_file(), reason=f"no FID Inception at {INCEPTION}")
def test_tiny_transfer_benchmark_trains_both_arms_and_scores_them(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import transfer

    cifar = fake_cifar(tmp_path / "cifar", transfer.CLASSES)
    out = tmp_path / "out"
    argv = ["--out", str(out), "--cifar", str(cifar), "--inception", str(INCEPTION), "--tiny"]
    result = transfer.main([*argv, "--seeds", "0", "--minutes", "2", "--pretrain-minutes", "2"])

    data = result["data"]
    assert (data["target_class"], data["train_images"]) == ("ship", transfer.TINY_TRAIN)
    assert data["heldout_images"] == 28 + 4 - transfer.TINY_TRAIN
    assert data["fid_reference_images"] == 32 and data["source_images"] == 9 * 8
    assert not list((out / "data" / "source-no-ship").glob("ship*"))  # the target stays out
    rows = {r["arm"]: r for r in [result["source"], *result["rows"]]}
    assert set(rows) == {"source (no fine-tuning)", "scratch", "fine-tuned"}
    for row in rows.values():
        assert "error" not in row, row.get("error")
        assert math.isfinite(row["fid"]) and math.isfinite(row["kid"]) and row["steps"] >= 1
        assert 0 <= row["fraction_flagged"] <= 1 and Path(row["grid_png"]).is_file()
    tuned = Path(rows["fine-tuned"]["run"])
    events = metrics_rows(tuned)
    assert any(e.get("event") == "init_from" for e in events)
    assert "freeze_d: 2" in (tuned / "config.yaml").read_text()
    assert json.loads((out / "transfer.json").read_text())["summary"] == result["summary"]
    table = capsys.readouterr().err
    assert "| fine-tuned | mean of 1 | 2 (+ 2) |" in table and "FID fine-tuned / scratch" in table
