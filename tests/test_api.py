"""The Python API: the same results as the command line, typed results, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.cli import main
from gankit.errors import ConfigError, GankitError

from conftest import TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> gankit.Run:
    out = tmp_path_factory.mktemp("api") / "run"
    return gankit.train("dcgan-mnist", [*TINY, "train.steps=3"], out=out)


def tiles(grid_png: Path, n: int, size: int) -> torch.Tensor:
    """The images of a square grid written by gankit sample (padding 2), channel 0."""
    grid = np.asarray(Image.open(grid_png))[..., 0]
    per_row = int(round(n**0.5))
    out = [
        grid[
            2 + r * (size + 2) : 2 + r * (size + 2) + size,
            2 + c * (size + 2) : 2 + c * (size + 2) + size,
        ]
        for r in range(per_row)
        for c in range(per_row)
    ]
    return torch.from_numpy(np.stack(out))


def test_api_sample_equals_cli_sample_pixel_for_pixel(run, tmp_path):
    images = gankit.load(run.path).sample(16, seed=0)
    assert images.shape == (16, 1, 16, 16) and images.dtype == torch.uint8
    assert (
        main(
            ["sample", str(run.path), "--n", "16", "--seed", "0", "--out", str(tmp_path / "g.png")]
        )
        == 0
    )
    assert torch.equal(tiles(tmp_path / "g.png", 16, 16), images[:, 0])
    pil = gankit.load(run.path).sample(4, seed=0, pil=True)
    assert len(pil) == 4 and pil[0].size == (16, 16)
    assert not torch.equal(images, gankit.load(run.path).sample(16, seed=1))


def test_train_returns_a_run_like_the_cli(run, tmp_path):
    assert isinstance(run, gankit.Run) and run.step == 3 and run.stopped_by is None
    cli_run = tmp_path / "cli"
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=3", "--out", str(cli_run)]) == 0

    def names(p: Path) -> list[str]:
        return sorted(x.relative_to(p).as_posix() for x in p.rglob("*") if "tb" not in x.parts)

    assert names(run.path) == names(cli_run)
    assert (run.path / "config.yaml").read_text() == (cli_run / "config.yaml").read_text()
    a = torch.load(run.path / "checkpoints/step-000003.pt", weights_only=True)["parts"]["nets"]["G"]
    b = torch.load(cli_run / "checkpoints/step-000003.pt", weights_only=True)["parts"]["nets"]["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in run.metrics() if "loss_d" in r] == [3] and run.previews()
    # sections instead of overrides, and resume with a change
    more = gankit.train(resume=run.path, train={"steps": 4})
    assert more.step == 4 and more.config.train.steps == 4


def test_recipes_and_scores_types(run):
    names = gankit.recipes()
    assert "dcgan-mnist" in names and names["dcgan-mnist"]
    assert set(gankit.__all__) >= {"train", "load", "evaluate", "recipes", "Run", "Model", "Scores"}


def test_exports_load_without_gankit_and_match(run, tmp_path):
    import onnxruntime as ort
    from safetensors.torch import load_file

    model = gankit.load(run.path)
    z = model.inner.noise(5, generator=torch.Generator().manual_seed(3))
    want = model.inner.sample(z)
    for fmt in ("safetensors", "onnx", "torchscript"):
        out = (
            tmp_path
            / f"g.{ {'safetensors': 'safetensors', 'onnx': 'onnx', 'torchscript': 'pt'}[fmt] }"
        )
        assert main(["export", str(run.path), "--format", fmt, "--out", str(out)]) == 0
        meta = json.loads(Path(str(out) + ".json").read_text())
        assert meta["nz"] == 8 and meta["arch"]["arch"] == "dcgan" and meta["ema"] is True
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(None, {"z": z.numpy()})[0])
    assert (got - want).abs().max() <= 1e-4
    traced = torch.jit.load(str(tmp_path / "g.pt"))
    assert (traced(z) - want).abs().max() <= 1e-5
    # safetensors + the architecture file, rebuilt with only torch, safetensors and gankit's nets
    from gankit.nets.dcgan import DCGANGenerator

    arch = meta["arch"]
    net = DCGANGenerator(16, arch["nz"], arch["ngf"], 1, arch["n_extra_layers"], arch["norm"])
    net.load_state_dict(load_file(str(tmp_path / "g.safetensors")))
    assert torch.allclose(net.eval()(z), want, atol=1e-6)
    # gankit.load takes the export too, and samples as the run does
    assert torch.equal(
        gankit.load(tmp_path / "g.safetensors").sample(8, seed=0), model.sample(8, seed=0)
    )


def test_bad_inputs_are_one_line(run, tmp_path, capsys):
    model = gankit.load(run.path)
    with pytest.raises(ConfigError, match="does not translate"):
        model.translate(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="is not a classifier"):
        model.classify(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="takes no labels"):
        model.sample(4, labels=torch.zeros(4))
    with pytest.raises(GankitError, match="not a gankit run directory"):
        gankit.load(tmp_path)
    from gankit.config import save_config
    from gankit.registries import build_config

    clf = tmp_path / "clf"
    clf.mkdir()
    save_config(build_config("classifier-mnist"), clf / "config.yaml")  # a classifier's run
    for args, fragment in (
        (["export", str(clf)], "is a classifier run: gankit export writes the generator of a GAN"),
        (["export", str(run.path), "--format", "pickle"], "choose one of safetensors, onnx"),
        (["export", str(run.path), "--out", str(tmp_path / "g.onnx")], "ending in .safetensors"),
        (["export", str(tmp_path)], "not a gankit run directory"),
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert fragment in err and "\n" not in err, err


def test_load_translates_any_size_with_a_translation_run(tmp_path):
    from conftest import TINY_CYCLEGAN, write_domains

    root = write_domains(tmp_path / "d", n=4)
    run = gankit.train("cyclegan-mnistm", [f"data.root={root}", *TINY_CYCLEGAN], out=tmp_path / "r")
    model = gankit.load(run.path)
    out = model.translate(torch.randint(0, 256, (2, 3, 30, 45), dtype=torch.uint8), "BtoA")
    assert out.shape == (2, 3, 30, 45) and out.dtype == torch.uint8
    with pytest.raises(ConfigError, match="has no generator"):
        model.sample(2)
    # the command line's conversions and one-line refusals, from Python too
    from PIL import Image

    from gankit.errors import DataError

    grey = Image.new("L", (20, 20), 128)
    assert model.translate([grey]).shape == (1, 3, 20, 20)  # grey converted to the run's RGB
    grey_tensor = torch.full((1, 1, 20, 20), 128, dtype=torch.uint8)
    assert model.translate(grey_tensor).shape == (1, 3, 20, 20)
    mixed = [Image.new("RGB", (32, 32)), Image.new("RGB", (40, 40))]
    with pytest.raises(DataError, match="different sizes .32x32 and 40x40"):
        model.translate(mixed)
    with pytest.raises(DataError, match="no images given"):
        model.translate([])


def test_classify_refuses_an_empty_list(tmp_path):
    from gankit.api import from_images
    from gankit.errors import DataError

    with pytest.raises(DataError, match="no images given"):
        from_images([], channels=1)
    rgb = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert from_images(rgb, channels=1).shape == (2, 1, 4, 4)
