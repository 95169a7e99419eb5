"""benchmarks/gpu.py: refused without a GPU, and every part runs on a CPU at tiny sizes.

The first GPU window must not be spent debugging the script, so the test suite runs it end to end
with ``--device cpu --tiny`` (seconds) and checks the JSON it writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SHARED_INCEPTION = (
    Path(__file__).resolve().parents[2] / "shared/datasets/inception/inception-2015-12-05.pt"
)


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu as module

    return module


def test_without_cuda_it_is_one_line_and_exit_2(gpu, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.main(["--out", str(tmp_path / "g.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no CUDA GPU") and "\n" not in err
    assert not (tmp_path / "g.json").exists()
    assert gpu.main(["--device", "cpu", "--out", str(tmp_path / "g.json")]) == 2


def test_tiny_dry_run_of_every_part(gpu, tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--tiny", "--out", str(out)]
    if SHARED_INCEPTION.is_file():
        args += ["--inception", str(SHARED_INCEPTION)]
    assert gpu.main(args) == 0
    result = json.loads(out.read_text())
    assert set(result["parts"]) == set(gpu.PARTS) and result["tiny"] is True
    for name, part in result["parts"].items():
        assert "error" not in part, (name, part)
    assert result["parts"]["dcgan64"]["ours_img_per_s"] > 0
    assert result["parts"]["dcgan64_switches"]["bf16"]["over_plain"] > 0
    dark = result["parts"]["darknet_cifar10"]
    assert len(dark["epochs"]) >= 1 and 0 <= dark["best_test_acc"] <= 1
    fid = result["parts"]["fid"]
    if SHARED_INCEPTION.is_file():
        assert fid["img_per_s"] > 0 and fid["values"]["fid"] >= 0
    else:
        assert "skipped" in fid
    cyc = result["parts"]["cyclegan"]
    assert cyc["ours_s_per_step"] > 0 and cyc["reference_style_s_per_step"] > 0
    sg2 = result["parts"]["stylegan2"]
    assert sg2["fp32"]["img_per_s"] > 0 and sg2["bf16_autocast"]["over_fp32"] > 0
    r3 = result["parts"]["r3gan"]
    assert r3["fp32"]["img_per_s"] > 0 and r3["bf16_autocast"]["over_fp32"] > 0
    assert sys.modules["gpu"] is gpu
