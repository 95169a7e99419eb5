"""Projection (gankit project): the reference's schedule, the distances, z and W projection of
tiny runs, the files it writes, ``gankit sample --latents`` drawing them back, and MP4 walks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gankit.cli import main
from gankit.errors import ConfigError
from gankit.evaluation.metrics.lpips import LPIPS
from gankit.inference.distances import DISTANCES, distance_binder
from gankit.inference.loading import load_run
from gankit.inference.projection import Schedule, noise_regularisation, project
from gankit.inference.projection_files import load_latents, render_latents
from gankit.inference.sampling import generate, save_individual

from conftest import TINY

TINY_SG2 = [
    "nets.G.arch=stylegan2", "nets.D.arch=stylegan2", "gan.noise=normal", "data.image_size=8",
    "nets.G.nz=8", "nets.G.w_dim=8", "nets.G.mapping_layers=2", "nets.G.fmaps=0.0039",
    "nets.G.channel_max=16", "nets.D.fmaps=0.0039", "nets.D.channel_max=16",
    "train.batch_size=4", "train.n_preview=4", "train.progress=false", "data.limit=64",
    "train.device=cpu", "gan.conditional=none", "gan.ema=0", "train.steps=2",
]  # fmt: skip
"""A StyleGAN2 of 8×8 images with 8-d ws, trained two steps (as tests/test_stylegan2.py's)."""


def _train(out: Path, recipe: str, *over: str) -> Path:
    assert main(["train", recipe, *over, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("projection")
    return {
        "dcgan": _train(root / "dcgan", "dcgan-mnist", *TINY, "train.steps=2"),
        "cgan": _train(
            root / "cgan",
            "cgan-mnist",
            *TINY,
            "gan.conditional=concat",
            "train.steps=2",
            "gan.noise=uniform",
            "gan.ema=0.9",
        ),  # fmt: skip
        "sg2": _train(root / "sg2", "dcgan-mnist32", *TINY_SG2),
    }


def _target(run: Path, seed: int = 5) -> torch.Tensor:
    """An image the run can make (the first of seed ``seed``'s grid)."""
    model = load_run(run).model
    return generate(model, 1, seed=seed, ema=model.has_ema)


def test_the_schedule_is_the_references():
    s = Schedule(steps=1000)
    assert s.lr_at(0) == 0  # ramps up over the first 5 %
    assert s.lr_at(50) == pytest.approx(0.1) and s.lr_at(500) == pytest.approx(0.1)
    assert s.lr_at(875) == pytest.approx(0.05)  # half-way down the cosine of the last 25 %
    assert s.lr_at(999) < 1e-4
    assert s.latent_noise_at(0) == pytest.approx(0.05)
    assert s.latent_noise_at(375) == pytest.approx(0.05 * 0.25)
    assert s.latent_noise_at(750) == 0 and s.latent_noise_at(900) == 0


def test_noise_regularisation_punishes_correlated_noise():
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(1, 1, 16, 16, generator=gen)
    smooth = nn.functional.interpolate(torch.randn(1, 1, 4, 4, generator=gen), size=16)
    smooth = (smooth - smooth.mean()) / smooth.std()
    assert noise_regularisation([white]) < 0.05 < noise_regularisation([smooth])


@pytest.mark.parametrize("distance", ["pixel", "dfeat"])
def test_z_projection_finds_an_image_the_generator_can_make(runs, distance):
    model = load_run(runs["dcgan"]).model
    target = _target(runs["dcgan"])
    far = distance_binder("pixel", model)(target, None)(generate(model, 32, seed=99)).mean()
    seen = []
    proj = project(
        model, target, distance, Schedule(steps=60), restarts=2, frames=6,
        progress=lambda step, n, img: seen.append((step, n, tuple(img.shape))),
    )  # fmt: skip
    assert proj.space == "z" and proj.latent.shape == (1, 8) and proj.label is None
    assert proj.image.shape == target.shape and len(proj.frames) == 6
    assert seen[-1] == (60, 60, tuple(target.shape))
    near = (proj.image - target).square().mean()
    assert near < 0.5 * far, (near, far)


def test_a_conditional_run_is_projected_over_its_classes(runs):
    model = load_run(runs["cgan"]).model
    target = generate(model, 1, seed=3, labels=torch.tensor([1]))
    proj = project(model, target, "dfeat", Schedule(steps=40), restarts=3)
    assert proj.label in range(10) and proj.latent.abs().max() <= 1  # uniform codes stay inside
    fixed = project(model, target, "pixel", Schedule(steps=5), label=7)
    assert fixed.label == 7
    with pytest.raises(ConfigError, match="--class 12"):
        project(model, target, "pixel", Schedule(steps=5), label=12)


def test_w_projection_optimises_w_and_noise_and_comes_back_exactly(runs, tmp_path):
    run = runs["sg2"]
    model = load_run(run).model
    target = _target(run)
    proj = project(model, target, "pixel", Schedule(steps=30))
    num_ws = model.w_generator().num_ws
    assert proj.space == "w" and proj.latent.shape == (1, num_ws, 8)
    assert torch.equal(proj.latent[:, 0], proj.latent[:, -1])  # one w, broadcast
    assert proj.noise and all(v.shape[:2] == (1, 1) for v in proj.noise.values())
    plus = project(model, target, "dfeat", Schedule(steps=10), w_plus=True)
    assert plus.space == "w+" and not torch.equal(plus.latent[:, 0], plus.latent[:, -1])
    # the projected image, drawn again from the saved ws and noise maps
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "t.png")
    out = tmp_path / "proj"
    args = ["project", str(run), str(tmp_path / "t.png"), "--out", str(out), "--steps", "5"]
    assert main([*args, "--distance", "pixel"]) == 0
    again = tmp_path / "again.png"
    assert main(["sample", str(run), "--latents", str(out / "t.pt"), "--out", str(again)]) == 0
    saved = np.asarray(Image.open(out / "t.png"))
    grid = np.asarray(Image.open(again).convert("L"))  # one image: no padding
    assert np.array_equal(saved, grid)


def test_the_lpips_distance_runs_on_small_grey_images(runs):
    model = load_run(runs["dcgan"]).model
    features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())  # fmt: skip
    lpips = LPIPS(features, (1, 4), [torch.ones(4), torch.ones(4)])
    target = _target(runs["dcgan"])
    proj = project(model, target, "lpips", Schedule(steps=5), lpips=lpips, restarts=1)
    assert proj.distance_name == "lpips" and proj.distance >= 0
    with pytest.raises(ConfigError, match="load LPIPS"):
        distance_binder("lpips", model)
    with pytest.raises(ConfigError, match="choose one of lpips, pixel, dfeat"):
        distance_binder("ssim", model)
    assert DISTANCES == ("lpips", "pixel", "dfeat")


def test_gankit_project_writes_its_files_and_sample_draws_them_back(runs, tmp_path, capsys):
    run = runs["cgan"]
    model = load_run(run).model
    paths = save_individual(generate(model, 2, seed=4), tmp_path / "targets")
    out = tmp_path / "out"
    args = ["project", str(run), *map(str, paths), "--out", str(out), "--steps", "20"]
    assert main([*args, "--distance", "pixel"]) == 0
    said = capsys.readouterr().out
    assert said.count("wrote") == 2 and "class" in said
    for stem in ("000000", "000001"):
        for suffix in (".png", "-target.png", ".pt", ".npy", "-progress.gif"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
    rec = torch.load(out / "000000.pt", weights_only=True)
    assert rec["space"] == "z" and rec["labels"].shape == (1,) and rec["distance"] == "pixel"
    assert np.load(out / "000000.npy").shape == (1, 8)
    codes = load_latents(out / "000000.pt", model)
    image = render_latents(model, codes, ema=True)
    saved = torch.from_numpy(np.array(Image.open(out / "000000.png"))).float() / 127.5 - 1
    assert (image[0, 0] - saved).abs().max() <= 1 / 127.5 + 1e-6
    grid = tmp_path / "back.png"
    assert main(["sample", str(run), "--latents", str(out / "000000.npy"), "--class", "3", "--out", str(grid)]) == 0  # fmt: skip
    assert grid.is_file()


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: d / "missing.pt", "no such file"),
        (lambda d: _write(d / "bad.pt", b"not a torch file"), "is not a latent file"),
        (lambda d: _npy(d / "wrong.npy", np.zeros((2, 5), np.float32)), "holds shape (2, 5)"),
        (lambda d: _npy(d / "ints.npy", np.zeros((2, 8), np.int64)), "not floats"),
    ],
)
def test_bad_latent_files_are_one_line(runs, tmp_path, capsys, make, fragment):
    path = make(tmp_path)
    code = main(["sample", str(runs["dcgan"]), "--latents", str(path), "--out", str(tmp_path / "g.png")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and "\n" not in err and "Traceback" not in err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npy(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr)
    return path


def test_project_refuses_bad_input_in_one_line(runs, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not an image")
    cases = [
        ([str(tmp_path / "notes.png")], "not an image file"),
        ([str(tmp_path / "notes.png"), "--class", "3"], "unconditional"),
        ([str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")], "share a file name"),
    ]
    for extra, fragment in cases:
        code = main(["project", str(runs["dcgan"]), *extra, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and fragment in err and "\n" not in err, err


def test_interpolate_writes_an_mp4_or_says_how_to_get_one(runs, tmp_path, capsys, monkeypatch):
    args = ["interpolate", str(runs["dcgan"]), "--rows", "2", "--steps", "4"]
    args += ["--out", str(tmp_path / "g.png"), "--mp4", str(tmp_path / "walk.mp4")]
    try:
        import av  # noqa: F401

        assert main(args) == 0
        head = (tmp_path / "walk.mp4").read_bytes()[:12]
        assert head[4:8] == b"ftyp"  # an MP4 container
    except ImportError:
        pass
    monkeypatch.setitem(sys.modules, "av", None)
    assert main([*args[:-1], str(tmp_path / "w2.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert 'pip install -e ".[video]"' in err and "\n" not in err
