"""Inception Score: the formula by hand and against torch-fidelity, the full network's head (and
the head-less copy's one-line refusal), finding and downloading the full network, the CLI."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from inception_fakes import full_network, headless_network
from PIL import Image

from gankit.cli import main
from gankit.errors import CheckpointError, ConfigError
from gankit.evaluation.metrics import inception
from gankit.evaluation.metrics.inception import (
    FULL_INCEPTION_FILENAME,
    FULL_INCEPTION_URL,
    InceptionFeatures,
    find_full_inception,
)
from gankit.evaluation.metrics.inception_score import compute_is, inception_logits, inception_score

from conftest import SHARED

REAL_INCEPTION = SHARED / "inception" / inception.INCEPTION_FILENAME


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_INCEPTION", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def networks(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nets")
    return {
        "full": full_network(root / "full.pt"),
        "headless": headless_network(root / "headless.pt"),
    }


# --- the formula ---------------------------------------------------------------------------


def test_confident_and_balanced_predictions_score_the_number_of_classes() -> None:
    k, n = 10, 200
    logits = np.zeros((n, 1008))
    logits[np.arange(n), np.arange(n) % k] = 60.0  # each part of 20 holds every class twice
    out = inception_score(logits)
    assert out["is"] == pytest.approx(k, rel=1e-9) and out["is_std"] == pytest.approx(0, abs=1e-9)
    one_class = np.zeros((n, 1008))
    one_class[:, 3] = 60.0
    assert inception_score(one_class)["is"] == pytest.approx(1.0, rel=1e-9)


def test_by_hand_on_two_splits() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in (p[:3], p[3:]):
        q = part.mean(0)
        scores.append(np.exp(np.mean([(row * np.log(row / q)).sum() for row in part])))
    out = inception_score(logits, splits=2)
    assert out["is"] == pytest.approx(np.mean(scores), rel=1e-12)
    assert out["is_std"] == pytest.approx(np.std(scores), rel=1e-9)


@pytest.mark.parametrize("shuffle", [False, True])
def test_equals_torch_fidelity_on_the_same_logits(shuffle: bool) -> None:
    isc = pytest.importorskip("torch_fidelity.metric_isc")
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(503, 1008)) * 4).float()
    theirs = isc.isc_features_to_metric(logits, splits=10, shuffle=shuffle, rng_seed=2020)
    ours = inception_score(logits, splits=10, shuffle_seed=2020 if shuffle else None)
    assert ours["is"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours["is_std"] == pytest.approx(theirs["inception_score_std"], rel=1e-6)


def test_logits_have_no_bias_and_errors_are_one_line() -> None:
    rng = np.random.default_rng(2)
    feats, weight = rng.normal(size=(20, 8)), rng.normal(size=(5, 8))
    assert np.allclose(inception_logits(feats, weight), feats @ weight.T)
    assert compute_is(feats, weight, splits=4)["splits"] == 4
    with pytest.raises(Exception, match="at least 10 samples") as info:
        inception_score(np.zeros((5, 3)))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="splits"):
        inception_score(np.zeros((5, 3)), splits=0)


# --- the network's head ----------------------------------------------------------------------


def test_the_full_network_gives_its_head_and_the_same_features(networks) -> None:
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    full = InceptionFeatures(networks["full"], backend="torch", progress=False)
    headless = InceptionFeatures(networks["headless"], backend="torch", progress=False)
    assert torch.equal(full(x), headless(x))  # its layers on gankit's resize, not its forward
    module = inception.load_inception(networks["full"])
    weight = full.head_weight()
    assert weight.shape == (1008, 2048) and weight.dtype == torch.float64
    assert torch.equal(weight, module.output.weight.detach().double())
    assert full.has_head() and not headless.has_head()


def test_the_headless_copy_refuses_in_one_line(networks) -> None:
    with pytest.raises(ConfigError) as info:
        InceptionFeatures(networks["headless"], progress=False).head_weight()
    message = str(info.value)
    assert "\n" not in message and "--inception PATH" in message and FULL_INCEPTION_URL in message


@pytest.mark.skipif(not REAL_INCEPTION.is_file(), reason=f"no shared Inception at {REAL_INCEPTION}")
def test_the_shared_inception_is_headless() -> None:
    with pytest.raises(ConfigError, match="head-less"):
        InceptionFeatures(REAL_INCEPTION, progress=False).head_weight()


# --- finding and downloading the full network ------------------------------------------------


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_of_the_full_network_is_checksummed(http_root, isolated_cache, networks) -> None:
    root, base = http_root
    data = networks["full"].read_bytes()
    (root / "inception-2015-12-05.pt").write_bytes(data)
    url = f"{base}/inception-2015-12-05.pt"
    with pytest.raises(CheckpointError, match="--inception PATH"):
        find_full_inception(url=url, sha256="0" * 64)  # a wrong checksum: nothing is kept
    assert not (isolated_cache / FULL_INCEPTION_FILENAME).exists()
    path = find_full_inception(url=url, sha256=hashlib.sha256(data).hexdigest())
    assert path == isolated_cache / FULL_INCEPTION_FILENAME and path.read_bytes() == data
    assert find_full_inception(download=False) == path  # found in the cache next time


def test_no_pinned_checksum_means_no_download(isolated_cache, monkeypatch) -> None:
    monkeypatch.setattr(inception, "FULL_INCEPTION_SHA256", None)
    monkeypatch.setattr(inception, "download_file", pytest.fail)  # never reached
    with pytest.raises(CheckpointError) as info:
        find_full_inception()
    message = str(info.value)
    assert "\n" not in message and "no checksum" in message and FULL_INCEPTION_URL in message


def test_explicit_path_and_environment_come_first(networks, monkeypatch) -> None:
    assert find_full_inception(networks["full"], download=False) == networks["full"]
    monkeypatch.setenv("GANKIT_INCEPTION", str(networks["headless"]))
    assert find_full_inception(download=False) == networks["headless"]  # refused when loaded


# --- gankit evaluate --metrics is ------------------------------------------------------------


def test_cli_scores_a_folder_without_a_reference(tmp_path, networks, capsys) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "eval"
    args = ["evaluate", str(folder), "--metrics", "is", "--n", "20", "--out", str(out)]
    assert main([*args, "--inception", str(networks["full"])]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["metrics"]["is"]["is"] >= 1.0 and result["metrics"]["is"]["splits"] == 10
    assert "is " in capsys.readouterr().out
    assert main([*args, "--inception", str(networks["headless"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "head-less" in err
