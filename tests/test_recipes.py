"""Every recipe trains a few steps on tiny random data, at its own image size and networks."""

import pytest

from gankit.config import recipe_names
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.gan.options import GanOptions
from gankit.registries import build_config

from conftest import write_domains, write_random_images


@pytest.mark.parametrize("name", recipe_names())
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
