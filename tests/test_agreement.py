"""Agreement with the established implementations on the same inputs: pytorch-fid's Fréchet
distance, clean-fid's KID on the same subsets, and, with the shared Inception, `gankit evaluate`'s
FID under each resizer against a pipeline built from clean-fid's and torch-fidelity's resize
functions and the same network (benchmarks/fid_protocols.py at n = 6; ``--n 2000`` gives the
guide's figures). The resizes themselves: tests/test_resize.py; IS: tests/test_inception_score.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gankit.evaluation.metrics.fid import frechet_distance
from gankit.evaluation.metrics.kid import compute_kid

from conftest import SHARED

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
INCEPTION = SHARED / "inception" / "inception-2015-12-05.pt"
MNIST_TEST = SHARED / "mnist" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"


def statistics(d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3 * d, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + rng.normal(size=d)
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_frechet_distance_equals_pytorch_fids(method: str) -> None:
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    for d, seed in ((16, 0), (128, 1)):
        (mu1, s1), (mu2, s2) = statistics(d, seed), statistics(d, seed + 10)
        theirs = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
        assert frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(theirs, rel=1e-6)


def test_kid_equals_clean_fids_on_the_same_subsets() -> None:
    cleanfid = pytest.importorskip("cleanfid.fid")
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 64)), rng.normal(size=(250, 64)) + 0.05
    # clean-fid draws from numpy's global generator: fake rows, then real rows, per subset
    np.random.seed(123)
    subsets = []
    m = 200
    for _ in range(20):
        j = np.random.choice(len(fake), m, replace=False)
        i = np.random.choice(len(real), m, replace=False)
        subsets.append((i, j))
    np.random.seed(123)
    theirs = cleanfid.kernel_distance(real, fake, num_subsets=20, max_subset_size=m)
    ours = compute_kid(real, fake, subsets=subsets)["kid"]
    assert ours == pytest.approx(theirs, rel=1e-6)


@pytest.mark.skipif(not INCEPTION.is_file(), reason=f"no shared Inception at {INCEPTION}")
@pytest.mark.skipif(not MNIST_TEST.is_file(), reason=f"no shared MNIST at {MNIST_TEST}")
def test_gankit_evaluate_equals_the_libraries_pipelines(monkeypatch, tmp_path) -> None:
    pytest.importorskip("cleanfid")
    pytest.importorskip("torch_fidelity")
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(BENCH))
    import fid_protocols

    resizers = ("legacy-tensorflow", "clean", "legacy-pytorch")
    out = fid_protocols.run(6, SHARED, INCEPTION, resizers, how="nuclear")
    for resizer, row in out["resizers"].items():
        assert row["relative_difference"] <= 1e-3, (resizer, row)
        assert row["max_abs_feature_diff_first_50"] <= 1e-3, (resizer, row)
    values = [row["gankit_fid"] for row in out["resizers"].values()]
    assert len(set(values)) == 3  # the resize changes the number
