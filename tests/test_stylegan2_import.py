"""``gankit import stylegan2-ada``: a stylegan2-ada-pytorch snapshot as a gankit run directory.

The snapshots are written here in the reference's persistent-object format (the helpers of
tests/test_stylegan2_pickle.py) from tiny *gankit* StyleGAN2 networks, whose state_dict keys are
the reference's; each module that filters (FIR resampling) gets a persistent ``resample_filter``
buffer, as the reference's state dicts have. Every ``module_src`` writes a marker file if run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from test_stylegan2_pickle import TRAINING_SET, EasyDict, Persistent, payload, write_pickle
from torch import nn

from gankit.cli import main
from gankit.compat.stylegan2_import import SOURCE_PLACEHOLDER
from gankit.inference.loading import load_run
from gankit.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from gankit.nets.stylegan2.discriminator import DiscriminatorBlock
from gankit.nets.stylegan2.layers import fir_filter

from conftest import metrics_rows, write_random_images

SIZE, Z, W, BASE, CMAX = 16, 8, 8, 256, 16


def tiny_nets(c_dim: int = 0, d_arch: str = "resnet") -> dict[str, nn.Module]:
    """G, D and G_ema (G with other weights) of a tiny 16×16 StyleGAN2, in eval mode."""
    torch.manual_seed(0)
    g = StyleGAN2Generator(Z, W, SIZE, 3, c_dim, 2, BASE, CMAX, 0, 256.0)
    d = StyleGAN2Discriminator(SIZE, 3, c_dim, d_arch, BASE, CMAX, 0, None, 4, 1, 2)
    g_ema = copy.deepcopy(g)
    with torch.no_grad():
        for p in g_ema.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for name, b in g_ema.named_buffers():
            if name.endswith(("noise_const", "w_avg")):
                b.copy_(torch.randn_like(b))
    return {"G": g.eval(), "D": d.eval(), "G_ema": g_ema.eval()}


def reference_like(net: nn.Module, taps: tuple[float, ...] = (1, 3, 3, 1)) -> nn.Module:
    """A copy whose FIR filters are persistent buffers, as in training/networks.py: every module
    that resamples (SynthesisBlock, SynthesisLayer, Conv2dLayer) and every DiscriminatorBlock."""
    net = copy.deepcopy(net)
    for module in net.modules():
        if isinstance(module, DiscriminatorBlock):
            module.register_buffer("resample_filter", fir_filter())
        if "resample_filter" in module._buffers:
            module._non_persistent_buffers_set.discard("resample_filter")
            module.resample_filter = fir_filter(taps)
    return net


def g_kwargs(c_dim: int = 0, architecture: str = "skip") -> EasyDict:
    return EasyDict(
        z_dim=Z,
        c_dim=c_dim,
        w_dim=W,
        img_resolution=SIZE,
        img_channels=3,
        mapping_kwargs=EasyDict(num_layers=2),
        synthesis_kwargs=EasyDict(
            channel_base=BASE,
            channel_max=CMAX,
            num_fp16_res=0,
            conv_clamp=256,
            architecture=architecture,
        ),
    )


def d_kwargs(c_dim: int = 0, architecture: str = "resnet") -> EasyDict:
    return EasyDict(
        c_dim=c_dim,
        img_resolution=SIZE,
        img_channels=3,
        architecture=architecture,
        channel_base=BASE,
        channel_max=CMAX,
        num_fp16_res=0,
        conv_clamp=None,
        block_kwargs=EasyDict(),
        mapping_kwargs=EasyDict(num_layers=2),
        epilogue_kwargs=EasyDict(mbstd_group_size=4),
    )


def write_snapshot(
    path: Path,
    nets: dict[str, nn.Module],
    c_dim: int = 0,
    keys: tuple[str, ...] = ("G", "D", "G_ema"),
    g_arch: str = "skip",
    d_arch: str = "resnet",
    taps: tuple[float, ...] = (1, 3, 3, 1),
    training_set: dict[str, Any] | None = None,
) -> Path:
    src = payload(path.parent / "pwned")
    data: dict[str, Any] = {}
    for key in keys:
        net = reference_like(nets[key], taps)
        kind, kwargs = (
            ("Discriminator", d_kwargs(c_dim, d_arch))
            if key == "D"
            else ("Generator", g_kwargs(c_dim, g_arch))
        )
        data[key] = Persistent(net, kind, src, kwargs)
    if training_set is not None:
        data["training_set_kwargs"] = training_set
    return write_pickle(path, data, pickle.HIGHEST_PROTOCOL)


def assert_same_weights(ours: nn.Module, source: nn.Module) -> None:
    theirs = source.state_dict()
    for name, tensor in ours.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name


# --- importing ---------------------------------------------------------------------------------


def test_import_gives_a_run_with_the_snapshots_networks(tmp_path, capsys):
    nets = tiny_nets()
    pkl = write_snapshot(tmp_path / "network-snapshot-000100.pkl", nets, training_set=TRAINING_SET)
    reference = reference_like(nets["G"]).state_dict()
    assert "synthesis.b8.conv0.resample_filter" in reference and "synthesis.b4.resample_filter"
    run = tmp_path / "run"

    assert main(["import", "stylegan2-ada", str(pkl), "--out", str(run)]) == 0

    out = capsys.readouterr().out
    assert not (tmp_path / "pwned").exists()
    assert "16x16, 3 channels, unconditional" in out
    g_params = sum(p.numel() for p in nets["G"].parameters())
    assert f"G {g_params:,} / D " in out
    assert f"gankit sample {run} --truncation 0.7" in out and f"--init-from {run}" in out
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "imported.json",
        "samples",
    ]
    record = json.loads((run / "imported.json").read_text())
    assert record["imported_from"] == "stylegan2-ada-pytorch"
    assert record["sha256"] == hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert record["source"] == str(pkl.resolve())

    loaded = load_run(run)
    assert loaded.step == 0 and loaded.cfg.nets["G"].arch == "stylegan2"
    assert loaded.cfg.data.source == "folder:/data/faces.zip" and loaded.cfg.data.flip
    model = loaded.model
    assert_same_weights(model.G, nets["G"])
    assert_same_weights(model.D, nets["D"])
    assert_same_weights(model.ema.module, nets["G_ema"])
    z = torch.randn(5, Z, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = nets["G_ema"](z, noise_mode="const").clamp(-1, 1)
    assert torch.equal(model.sample(z), expected)

    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "4", "--out", str(grid), "--truncation", "0.7"]) == 0
    assert grid.stat().st_size > 0
    assert main(["sample", str(run), "--n", "4"]) == 0
    assert list((run / "samples").glob("*.png"))


def test_a_conditional_snapshot_imports_with_its_classes(tmp_path, capsys):
    nets = tiny_nets(c_dim=3)
    pkl = write_snapshot(tmp_path / "cond.pkl", nets, c_dim=3, keys=("D", "G_ema"))
    run = tmp_path / "run"

    assert main(["import", "stylegan2-ada", str(pkl), "--out", str(run)]) == 0

    assert "3 classes" in capsys.readouterr().out
    loaded = load_run(run)
    gan = loaded.cfg.options["gan"]
    assert gan.conditional == "projection" and gan.classes == ("0", "1", "2")
    assert loaded.cfg.data.source == SOURCE_PLACEHOLDER
    assert_same_weights(loaded.model.G, nets["G_ema"])  # no G in the file: G_ema for both
    assert_same_weights(loaded.model.D, nets["D"])
    z, labels = torch.randn(6, Z), torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        expected = nets["G_ema"](z, labels, noise_mode="const").clamp(-1, 1)
    assert torch.equal(loaded.model.sample(z, labels), expected)
    assert main(["sample", str(run), "--n", "3", "--class", "2"]) == 0


def test_the_imported_run_fine_tunes_and_exports(tmp_path):
    pkl = write_snapshot(tmp_path / "snap.pkl", tiny_nets(d_arch="orig"), d_arch="orig")
    run = tmp_path / "run"
    assert main(["import", "stylegan2-ada", str(pkl), "--out", str(run)]) == 0
    images = tmp_path / "imgs"
    write_random_images(images, n=8, size=16)
    tuned = tmp_path / "tuned"
    args = [
        "train",
        str(run / "config.yaml"),
        f"data.source=folder:{images}",
        "train.steps=1",
        "train.batch_size=4",
        "train.n_preview=4",
        "train.progress=false",
        "train.device=cpu",
        "--init-from",
        str(run),
        "--out",
        str(tuned),
    ]

    assert main(args) == 0

    rows = metrics_rows(tuned)
    assert any(r.get("event") == "init_from" and r.get("run") == str(run) for r in rows)
    assert load_run(tuned).step == 1
    assert main(["export", str(run), "--out", str(tmp_path / "g.safetensors")]) == 0
    assert (tmp_path / "g.safetensors").stat().st_size > 0


def test_force_replaces_a_run_and_only_a_run(tmp_path, capsys):
    nets = tiny_nets()
    pkl = write_snapshot(tmp_path / "snap.pkl", nets)
    run = tmp_path / "run"
    assert main(["import", "stylegan2-ada", str(pkl), "--out", str(run)]) == 0
    (run / "checkpoints" / "step-000500.pt").write_bytes(b"an older run's")
    assert main(["import", "stylegan2-ada", str(pkl), "--out", str(run), "--force"]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000000.pt"]
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    capsys.readouterr()

    assert main(["import", "stylegan2-ada", str(pkl), "--out", str(other), "--force"]) == 2

    assert "not a gankit run directory" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["keep.jpg"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


# --- refusals ----------------------------------------------------------------------------------


def _bad(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(the pickle, --out) of one refused import."""
    nets, out = tiny_nets(), tmp_path / "run"
    pkl = tmp_path / f"{kind}.pkl"
    if kind == "missing":
        return pkl, out
    if kind == "not-a-snapshot":
        pkl.write_bytes(pickle.dumps({"state_dict": {"w": 1}}))
    elif kind == "out-not-empty":
        write_snapshot(pkl, nets)
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif kind == "g-architecture":
        write_snapshot(pkl, nets, g_arch="resnet")
    elif kind == "d-architecture":
        write_snapshot(pkl, nets, d_arch="skip")
    elif kind == "filter":
        write_snapshot(pkl, nets, taps=(1, 1))
    elif kind == "missing-key":
        del nets["D"].b4.fc.bias
        nets["D"].b4.fc.bias = None
        write_snapshot(pkl, nets)
    elif kind == "shape":
        nets["G_ema"].mapping.w_avg = torch.zeros(W + 1)
        write_snapshot(pkl, nets)
    elif kind == "no-d":
        write_snapshot(pkl, nets, keys=("G_ema",))
    return pkl, out


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("missing", "no such file"),
        ("not-a-snapshot", "not a stylegan2-ada-pytorch network snapshot"),
        ("out-not-empty", "exists and is not empty"),
        ("g-architecture", "generator's architecture is 'resnet'"),
        ("d-architecture", "discriminator's architecture is 'skip'"),
        ("filter", "another resample_filter is not supported"),
        ("missing-key", "its D does not fit gankit's StyleGAN2 StyleGAN2Discriminator: b4.fc.bias"),
        ("shape", "its G_ema does not fit gankit's StyleGAN2 StyleGAN2Generator: mapping.w_avg"),
        ("no-d", "it holds no discriminator (D)"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, kind, fragment):
    pkl, out = _bad(tmp_path, kind)
    before = sorted(p.name for p in out.iterdir()) if out.exists() else None

    assert main(["import", "stylegan2-ada", str(pkl), "--out", str(out)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else None) == before
    assert not (tmp_path / "pwned").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
