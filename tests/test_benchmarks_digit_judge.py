"""benchmarks/digit_judge.py judges any run that generates: a semi-supervised run (whose
discriminator has classes but whose generator takes no labels) and a conditional one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from gankit.engine.loop import train
from gankit.registries import build_config

from conftest import TINY_SSGAN

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def judge(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import digit_judge

    # a stand-in judge (the real one trains on MNIST): 10 logits from the mean pixel
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))
    monkeypatch.setattr(digit_judge, "get_judge", lambda root: (net, 0.5))
    return digit_judge


@pytest.mark.parametrize("kind", ["ssgan", "cgan"])
def test_judges_a_semi_supervised_and_a_conditional_run(judge, kind, tmp_path, monkeypatch, capsys):
    if kind == "ssgan":
        run = train(build_config("ssgan-mnist-100", TINY_SSGAN), tmp_path / "run")
    else:
        over = ["train.steps=1", "train.batch_size=20", "data.limit=100", "train.n_preview=10"]
        fast = ["train.progress=false", "train.device=cpu"]
        run = train(build_config("cgan-mnist", [*over, *fast]), tmp_path / "run")
    monkeypatch.setattr(sys, "argv", ["digit_judge.py", str(run), "--n", "20"])
    judge.main()
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["step"] == 1 and "classes_present" in res
    assert ("requested_class_fraction" in res) == (kind == "cgan")


MNIST_RAW = Path(__file__).resolve().parents[2] / "shared/datasets/mnist/MNIST/raw"


@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="shared MNIST files not present")
def test_without_mnist_it_downloads_mnist_through_torchvision(judge, tmp_path, monkeypatch):
    """A fresh clone has no MNIST copy: --mnist left out downloads it (here from a local
    server standing in for torchvision's mirror) into the cache, once."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import torchvision

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(MNIST_RAW))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
        monkeypatch.setattr(judge, "CACHE", tmp_path / "bench")
        x, y = judge.load_mnist(None, train=False)
    finally:
        server.shutdown()
    assert x.shape == (10_000, 1, 28, 28) and len(y) == 10_000 and 0 <= x.min() <= x.max() <= 1
    assert (tmp_path / "bench" / "mnist" / "MNIST" / "raw").is_dir()
