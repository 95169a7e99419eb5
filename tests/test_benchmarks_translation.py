"""benchmarks/translation.py's spread: the data draws, the table, and an interrupted spread going
on from its finished runs (training and scoring replaced by a stand-in: the real ones take
minutes per run, and `run` is the command the benchmark's published numbers came from)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def translation(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import translation

    return translation


def test_data_seed_zero_is_the_original_build_and_others_draw_disjoint_sets(translation):
    a, b, ta, tb = translation._draw(0, 10_000)
    assert (a == np.arange(10_000)).all() and b[0] == 30_000 and b[-1] == 39_999
    assert ta[0] == 0 and tb[0] == 5_000 and len(tb) == translation.N_TEST
    a1, b1, ta1, tb1 = translation._draw(1, 5_000)
    assert len(a1) == len(b1) == 5_000 and not set(a1) & set(b1)
    assert not set(ta1) & set(tb1)
    a2, *_ = translation._draw(2, 5_000)
    assert not (a1 == a2).all()  # another data seed, another draw
    assert (translation._draw(1, 5_000)[0] == a1).all()  # and the same seed, the same one


def test_parse_builds_reads_pairs_and_refuses_anything_else(translation):
    assert translation.parse_builds("1:5000,2:10000") == [(1, 5000), (2, 10000)]
    for bad in ("1-5000", "1:5000:3", "a:b", ""):
        with pytest.raises(SystemExit, match="--builds"):
            translation.parse_builds(bad)


def test_spread_runs_every_combination_once_and_summarises(translation, tmp_path, monkeypatch):
    built, trained = [], []

    def fake_build(root, shared, *, data_seed, n_train):
        built.append((data_seed, n_train))
        root.mkdir(parents=True)
        (root / "testB_labels.json").write_text("{}")

    def fake_run(root, recipe, out, overrides, log):
        trained.append((root.name, recipe, overrides[0]))
        seed = int(overrides[0].split("=")[1])
        acc = {"cyclegan-mnistm": 0.6, "cut-mnistm": 0.7}[recipe] + 0.1 * seed
        assert "train.minutes=2.5" in overrides and overrides[-1] == "train.batch_size=4"
        return {
            "recipe": recipe,
            "train_minutes": 2.0 + seed,
            "steps": 100 * (seed + 1),
            "accuracy": acc,
        }

    monkeypatch.setattr(translation, "build", fake_build)
    monkeypatch.setattr(translation, "run", fake_run)
    args = (tmp_path, ["cyclegan-mnistm", "cut-mnistm"], [0, 1], [(1, 50), (2, 80)])
    result = translation.spread(*args, ["train.batch_size=4"], minutes=2.5)
    assert built == [(1, 50), (2, 80)] and len(trained) == 8
    cyc = result["summary"]["cyclegan-mnistm"]
    assert cyc["runs"] == 4 and cyc["accuracy_min"] == pytest.approx(0.6)
    assert cyc["accuracy_max"] == pytest.approx(0.7) and cyc["accuracy_mean"] == pytest.approx(0.65)
    assert cyc["minutes_max"] == 3.0 and cyc["steps_mean"] == 150
    assert json.loads((tmp_path / "spread.json").read_text())["summary"] == result["summary"]
    table = translation.table(result["summary"])
    assert "| `cut-mnistm` | 4 | 75.0 % | 70.0 % | 80.0 % | 2.5, 3.0 | 150 |" in table

    # Cut off after three runs: the next invocation trains only what is missing.
    for name in sorted((tmp_path / "results").iterdir())[3:]:
        name.unlink()
    trained.clear()
    again = translation.spread(*args, ["train.batch_size=4"], minutes=2.5)
    assert len(trained) == 5 and built == [(1, 50), (2, 80)]
    assert again["summary"] == result["summary"]
