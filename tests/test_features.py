"""Feature extractors: finding and downloading the Inception, preprocessing, classifier features,
the reference-feature cache. Downloads go to a local http.server on 127.0.0.1 only."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import CheckpointError, ConfigError, DataError
from gankit.evaluation.metrics import inception
from gankit.evaluation.metrics.features import ModuleFeatures
from gankit.evaluation.metrics.inception import (
    INCEPTION_FILENAME,
    InceptionFeatures,
    download_file,
    find_inception,
    inception_preprocess,
)
from gankit.evaluation.metrics.reference_cache import reference_features

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
REAL_INCEPTION = SHARED / "inception" / INCEPTION_FILENAME


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache folder and no GANKIT_INCEPTION."""
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_INCEPTION", raising=False)
    return tmp_path / "cache"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served at http://127.0.0.1:PORT/ for the duration of a test."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{INCEPTION_FILENAME}"  # nothing listens there any more


def fake_weights(folder: Path, content: bytes = b"not really an inception") -> tuple[Path, str]:
    path = folder / INCEPTION_FILENAME
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


# --- locating the Inception ---------------------------------------------------------------


def test_find_inception_explicit_path_env_then_cache(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit, _ = fake_weights(tmp_path)
    assert find_inception(explicit, download=False) == explicit

    env_dir = tmp_path / "env"
    env_dir.mkdir()
    from_env, _ = fake_weights(env_dir)
    monkeypatch.setenv("GANKIT_INCEPTION", str(from_env))
    assert find_inception(download=False) == from_env
    assert find_inception(explicit, download=False) == explicit  # explicit beats the env var

    monkeypatch.delenv("GANKIT_INCEPTION")
    isolated_cache.mkdir()
    cached, _ = fake_weights(isolated_cache)
    assert find_inception(download=False) == cached


def test_missing_explicit_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointError, match="nope.pt"):
        find_inception(tmp_path / "nope.pt")
    monkeypatch.setenv("GANKIT_INCEPTION", str(tmp_path / "gone.pt"))
    with pytest.raises(CheckpointError, match="gone.pt.*GANKIT_INCEPTION"):
        find_inception()


def test_offline_error_says_where_to_put_the_file(isolated_cache: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        find_inception(url=closed_port_url())
    message = str(info.value)
    assert str(isolated_cache / INCEPTION_FILENAME) in message and "\n" not in message
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())


def test_download_verifies_checksum(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    _, sha = fake_weights(root, b"x" * 3_000_000)
    dest = tmp_path / "dl" / "weights.pt"
    assert download_file(f"{base}/{INCEPTION_FILENAME}", dest, sha, progress=False) == dest
    assert dest.read_bytes() == b"x" * 3_000_000

    other = tmp_path / "dl2" / "weights.pt"
    with pytest.raises(CheckpointError, match="expected"):
        download_file(f"{base}/{INCEPTION_FILENAME}", other, "0" * 64, progress=False)
    assert list(other.parent.iterdir()) == []  # no partial or temporary file left behind

    with pytest.raises(CheckpointError, match="404|Not Found"):
        download_file(f"{base}/missing.pt", other, sha, progress=False)
    assert list(other.parent.iterdir()) == []


def test_find_inception_downloads_into_the_cache(
    http_root: tuple[Path, str], isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, base = http_root
    _, sha = fake_weights(root)
    monkeypatch.setattr(inception, "INCEPTION_SHA256", sha)
    path = find_inception(url=f"{base}/{INCEPTION_FILENAME}")
    assert (
        path == isolated_cache / INCEPTION_FILENAME
        and path.read_bytes() == (root / INCEPTION_FILENAME).read_bytes()
    )


def test_unreadable_weights_file(tmp_path: Path) -> None:
    bad, _ = fake_weights(tmp_path)
    with pytest.raises(CheckpointError, match="not a readable TorchScript"):
        InceptionFeatures(bad, progress=False)(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# --- preprocessing and extractors ---------------------------------------------------------


def test_inception_preprocess_is_the_documented_resize() -> None:
    grey = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    x = inception_preprocess(grey, "legacy-pytorch")  # gankit 0.2's resize, still an option
    assert x.shape == (2, 3, 299, 299) and x.dtype == torch.float32
    expected = F.interpolate(grey.float(), size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.equal(x[:, 1:2], (expected - 128) / 128)
    assert torch.equal(x[:, 0], x[:, 2])
    full = torch.full((1, 3, 299, 299), 128, dtype=torch.uint8)
    assert torch.equal(inception_preprocess(full), torch.zeros(1, 3, 299, 299))
    # The default is the TF1 resize of the original FID code (tests/test_resize.py checks it).
    default = inception_preprocess(grey)
    assert torch.equal(default, inception_preprocess(grey, "legacy-tensorflow"))
    assert not torch.equal(default, x)


def test_extractors_reject_non_uint8() -> None:
    extractor = ModuleFeatures(nn.Linear(4, 2), lambda x: x.float().flatten(1), progress=False)
    with pytest.raises(DataError, match="uint8"):
        extractor(torch.rand(2, 1, 2, 2))
    with pytest.raises(DataError, match="uint8"):
        extractor(torch.zeros(2, 4, 2, 2, dtype=torch.uint8))


def tiny_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )


def test_module_features_are_penultimate_activations() -> None:
    net = tiny_classifier().train()
    pre = functools.partial(torch.div, other=255.0)
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    feats = ModuleFeatures(net, pre, batch_size=4, progress=False)(images)
    with torch.no_grad():
        expected = net[:3](images.float() / 255)  # the input of the last Linear (dropout off)
    assert feats.shape == (10, 8) and torch.allclose(feats, expected)
    assert net.training  # mode restored

    first_linear = ModuleFeatures(net, pre, layer="1", progress=False)(images)
    assert first_linear.shape == (10, 8) and torch.allclose(
        first_linear, net[1](images.float().flatten(1) / 255)
    )
    with pytest.raises(ConfigError, match="no layer"):
        ModuleFeatures(net, pre, layer="head")
    with pytest.raises(ConfigError, match="nn.Linear"):
        ModuleFeatures(nn.Conv2d(1, 2, 3), pre)


def test_module_feature_id_follows_the_weights() -> None:
    net = tiny_classifier()
    before = ModuleFeatures(net, torch.Tensor.float).feature_id
    with torch.no_grad():
        net[4].bias += 1
    assert ModuleFeatures(net, torch.Tensor.float).feature_id != before


def test_reference_features_are_cached(isolated_cache: Path) -> None:
    extractor = ModuleFeatures(tiny_classifier(), lambda x: x.float() / 255, progress=False)
    images = torch.randint(0, 256, (12, 1, 4, 4), dtype=torch.uint8)
    calls: list[int] = []

    def load() -> torch.Tensor:
        calls.append(1)
        return images

    first = reference_features(extractor, "toy", 12, load)
    second = reference_features(extractor, "toy", 12, load)
    assert len(calls) == 1 and torch.equal(first, second) and first.shape == (12, 8)
    files = sorted(p.suffix for p in (isolated_cache / "features").iterdir())
    assert files == [".json", ".npy"]
    reference_features(extractor, "toy-other", 12, load)
    assert len(calls) == 2  # another dataset id is another key
    with pytest.raises(DataError, match="expected n=5"):
        reference_features(extractor, "toy", 5, load)


@pytest.mark.skipif(
    not REAL_INCEPTION.is_file(), reason=f"FID Inception not found at {REAL_INCEPTION}"
)
def test_real_inception_on_four_digit_like_images() -> None:
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    for i in range(4):  # a bar and a blob in different places, like crude digits
        images[i, 0, 4 + i : 24, 12 + i : 15 + i] = 255
        images[i, 0, 6 : 10 + 2 * i, 8:20] = 200
    extractor = InceptionFeatures(REAL_INCEPTION, batch_size=2, progress=False)
    a = extractor(images)
    assert a.shape == (4, 2048) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, extractor(images))
    assert not torch.allclose(a[0], a[1])


# --- the ONNX Runtime backend ------------------------------------------------------------------


def _digits(n: int = 6) -> torch.Tensor:
    from gankit.config import DataConfig
    from gankit.data.sources import load_source

    data = load_source(DataConfig(image_size=28, channels=1, fit="pad", limit=n), progress=False)
    return data.images


@pytest.mark.skipif(
    not REAL_INCEPTION.is_file(), reason=f"FID Inception not found at {REAL_INCEPTION}"
)
@pytest.mark.skipif(not inception.onnx_runtime_available(), reason="onnxruntime is not installed")
def test_onnx_and_torch_backends_give_the_same_features(isolated_cache: Path) -> None:
    images = _digits(6)  # real MNIST digits (the built-in test set)
    onnx = InceptionFeatures(REAL_INCEPTION, batch_size=4, progress=False, backend="onnx")
    torch_ = InceptionFeatures(REAL_INCEPTION, batch_size=4, progress=False, backend="torch")
    a, b = onnx(images), torch_(images)
    assert a.shape == b.shape == (6, 2048)
    assert (a - b).abs().max().item() <= 1e-4
    assert onnx.feature_id == torch_.feature_id  # one cache for both: same network, same resize
    # The export is made once, next to a read-only network in the cache folder, keyed by checksum.
    exported = inception.inception_onnx(REAL_INCEPTION)
    assert (
        exported.parent == isolated_cache and inception.file_digest(REAL_INCEPTION) in exported.name
    )
    stamp = exported.stat().st_mtime_ns
    assert inception.inception_onnx(REAL_INCEPTION).stat().st_mtime_ns == stamp


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(inception, "onnx_runtime_available", lambda: True)
    assert inception.resolve_backend("auto", cpu) == "onnx"
    assert inception.resolve_backend("auto", gpu) == "torch"
    with pytest.raises(ConfigError, match="runs on the CPU"):
        inception.resolve_backend("onnx", gpu)
    monkeypatch.setattr(inception, "onnx_runtime_available", lambda: False)
    assert inception.resolve_backend("auto", cpu) == "torch"  # the fallback without the runtime
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        inception.resolve_backend("onnx", cpu)
    with pytest.raises(ConfigError, match="choose one of auto, torch, onnx"):
        inception.resolve_backend("tf", cpu)
