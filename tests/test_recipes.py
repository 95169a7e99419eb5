"""Every recipe trains a few steps on tiny random data, at its own image size and networks."""

import pytest

from gankit.config import recipe_names
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.gan.options import GanOptions
from gankit.registries import build_config

from conftest import write_domains, write_random_images

GPU_SIZED = (
    *("stylegan2", "stylegan2-paper256", "stylegan2-small-data", "stylegan2-cifar10"),
    *("r3gan-cifar10", "r3gan-ffhq64", "r3gan-ffhq256", "r3gan-stacked-mnist"),
)
"""20-30 M-parameter recipes: a step at full size takes 10 s to 3 min on 2 CPU cores, so the
default suite runs them at a tiny size (test_gpu_recipe_at_a_tiny_size) and the full-size smoke
is ``slow`` (``pytest -m slow``)."""


def _smoke_params():
    return [
        pytest.param(n, marks=pytest.mark.slow) if n in GPU_SIZED else n for n in recipe_names()
    ]


TINY_NETS = {
    "stylegan2": ["nets.G.fmaps=0.002", "nets.G.channel_max=8", "nets.G.nz=8", "nets.G.w_dim=8",
                  "nets.D.fmaps=0.002", "nets.D.channel_max=8"],
    "r3gan": ["nets.G.widths=16,16,16", "nets.D.widths=16,16,16", "nets.G.blocks=1",
              "nets.D.blocks=1"],
}  # fmt: skip


@pytest.mark.parametrize("name", GPU_SIZED)
def test_gpu_recipe_at_a_tiny_size(name, tmp_path):
    """The recipe's whole game (phases, penalties, schedules, ADA, EMA) with its nets shrunk."""
    arch = build_config(name).nets["G"].arch
    base = build_config(name, ["data.image_size=16", *TINY_NETS[arch]])  # auto follows the size
    if base.section(GanOptions).conditional != "none":  # labels from class sub-folders
        for name_ in ("a", "b"):
            write_random_images(tmp_path / "imgs" / name_, n=2, size=24, mode="RGB")
    else:
        write_random_images(tmp_path / "imgs", n=4, size=24, mode="RGB")
    overrides = [
        f"data.source=folder:{tmp_path / 'imgs'}", "data.image_size=16", "data.workers=0",
        "train.steps=2", "train.batch_size=2", "train.n_preview=2", "train.progress=false",
        "train.device=cpu", *TINY_NETS[arch],
    ]  # fmt: skip
    cfg = build_config(name, overrides)
    assert cfg.section(GanOptions) == base.section(GanOptions)  # the recipe's own game
    run = train(cfg, tmp_path / "run")
    assert load_checkpoint(latest_checkpoint(run))["step"] == 2


@pytest.mark.parametrize("name", _smoke_params())
def test_recipe_smoke(name, tmp_path):
    base = build_config(name)
    if base.task == "classifier":
        pytest.skip(
            f"{name} is a {base.task} recipe: it needs labelled class folders, "
            "see test_classifier.py::test_classifier_recipe_smoke"
        )
    if base.task == "ssgan":
        pytest.skip(f"{name} needs MNIST's labels: see test_ssgan.py (its own nets, few steps)")
    if base.task != "gan":
        pytest.skip(f"{name} is a {base.task} recipe: see test_translation_recipe_smoke")
    if base.section(GanOptions).conditional != "none":  # labels from class sub-folders
        for name_ in ("a", "b"):
            write_random_images(tmp_path / "imgs" / name_, n=2, size=24, mode="RGB")
    else:
        write_random_images(tmp_path / "imgs", n=4, size=24, mode="RGB")
    overrides = [
        f"data.source=folder:{tmp_path / 'imgs'}",
        "data.workers=0",
        "train.steps=2",
        "train.epochs=null",  # recipes sized in epochs would otherwise ignore train.steps
        "train.batch_size=2",
        "train.n_preview=2",
        "train.progress=false",
        "train.device=cpu",
        "gan.d_schedule=constant",  # the wgan schedule's 100 critic steps are too slow for a smoke test
    ]
    cfg = build_config(name, overrides)
    assert cfg.data.image_size == base.data.image_size and cfg.nets == base.nets
    run = train(cfg, tmp_path / "run")
    state = load_checkpoint(latest_checkpoint(run))
    assert state["step"] == 2 and (run / "samples" / "step-000002.png").is_file()


@pytest.mark.parametrize(
    "name", [n for n in recipe_names() if build_config(n).task in ("cyclegan", "pix2pix", "cut")]
)
def test_translation_recipe_smoke(name, tmp_path):
    """One step of every translation recipe at its own size and networks (256² ones included)."""
    base = build_config(name)
    size = base.data.load_size or base.data.image_size
    root = write_domains(tmp_path / "data", n=2, size=size)
    if base.task == "pix2pix":  # aligned pairs: A | B side by side
        from PIL import Image

        (root / "train").mkdir()
        for f in (root / "trainA").iterdir():
            pair = Image.new("RGB", (2 * size, size))
            pair.paste(Image.open(f), (0, 0))
            pair.paste(Image.open(root / "trainB" / f.name), (size, 0))
            pair.save(root / "train" / f.name)
    overrides = [f"data.root={root}", "train.steps=1", "train.epochs=null", "train.batch_size=1"]
    overrides += ["train.n_preview=1", "train.progress=false", "train.device=cpu"]
    cfg = build_config(name, overrides)
    assert cfg.data.image_size == base.data.image_size and cfg.nets == base.nets
    run = train(cfg, tmp_path / "run")
    assert load_checkpoint(latest_checkpoint(run))["step"] == 1
    assert (run / "samples" / "step-000001.png").is_file()
