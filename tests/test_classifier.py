"""The classifier task: labelled data, learning, exact resume, evaluation, lr-find, recipes, errors."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.config import DataConfig, recipe_names, to_dict
from gankit.data.sources import load_source
from gankit.data.stream import make_stream
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError, DataError
from gankit.registries import build_config, from_dict
from gankit.tasks.classifier import ClassifierOptions, ClassifierTask

from conftest import TINY, metrics_rows, write_random_images

CLASSES = ("blue", "green", "red")


def write_class_folders(
    root: Path, n: int = 16, size: int = 12, splits=("train", "test"), seed: int = 0
) -> Path:
    """``root/<split>/<class>/*.png``: noisy images whose class is their dominant colour channel."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
                a[..., 2 - k] += 120  # blue, green, red: channels 2, 1, 0
                Image.fromarray(a).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    return write_class_folders(tmp_path_factory.mktemp("colours") / "data")


def tiny(data: Path, *extra: str) -> list[str]:
    """Overrides that make darknet-cifar10 a job of a second or two on the colour folders."""
    darknet = [] if "nets.net.arch=mnistnet" in extra else ["nets.net.num_blocks=[1, 1]"]
    return [
        f"data.source=folder:{data}",
        "data.image_size=12",
        "data.workers=0",
        "nets.net.nf=4",
        *darknet,
        "classifier.lr=0.05",
        "classifier.eval_batch_size=20",
        "train.batch_size=8",
        "train.epochs=null",
        "train.progress=false",
        "train.device=cpu",
        *extra,
    ]


# --- data --------------------------------------------------------------------------------------


def test_class_folder_labels_splits_and_balanced_limit(colours):
    cfg = DataConfig(source=f"folder:{colours}", image_size=12, channels=3, workers=0)
    train_set = load_source(cfg, progress=False, with_labels=True)
    assert train_set.classes == list(CLASSES) and len(train_set) == 48
    # labels follow the folders: the dominant channel of each image names its class
    dominant = train_set.images.float().mean((2, 3)).argmax(1)
    assert torch.equal(2 - dominant, train_set.labels)
    limited = load_source(
        DataConfig(source=f"folder:{colours}", image_size=12, channels=3, workers=0, limit=6),
        progress=False,
        with_labels=True,
    )
    assert sorted(limited.labels.tolist()) == [0, 0, 1, 1, 2, 2]  # round-robin over classes
    test_cfg = DataConfig(
        source=f"folder:{colours}", split="test", image_size=12, channels=3, workers=0
    )
    test_set = load_source(test_cfg, progress=False, with_labels=True)
    assert len(test_set) == 48 and not torch.equal(test_set.images, train_set.images)
    streamed = load_source(
        DataConfig(source=f"folder:{colours}", image_size=12, channels=3, in_memory="no"),
        progress=False,
        with_labels=True,
    )
    assert streamed.images is None and torch.equal(streamed.labels, train_set.labels)
    # without labels (a GAN) the same folder is all 96 images, as before
    assert len(load_source(cfg, progress=False)) == 96


def test_class_folder_errors(tmp_path):
    write_random_images(tmp_path / "flat", n=4)
    with pytest.raises(DataError, match="no class sub-folders"):
        load_source(DataConfig(source=f"folder:{tmp_path / 'flat'}"), False, with_labels=True)
    write_class_folders(tmp_path / "only_train", n=2, splits=("train",))
    with pytest.raises(DataError, match="has no test/ folder"):
        load_source(
            DataConfig(source=f"folder:{tmp_path / 'only_train'}", split="test"),
            False,
            with_labels=True,
        )


def test_labelled_streams_yield_uint8_and_labels(colours):
    cfg = DataConfig(source=f"folder:{colours}", image_size=12, channels=3, workers=0)
    data = load_source(cfg, progress=False, with_labels=True)
    x, y = next(make_stream(data, cfg, 5, torch.device("cpu"), 0, with_labels=True))
    assert x.dtype == torch.uint8 and x.shape == (5, 3, 12, 12) and y.dtype == torch.int64
    assert torch.equal(2 - x.float().mean((2, 3)).argmax(1), y)
    plain = next(make_stream(data, cfg, 5, torch.device("cpu"), 0))
    assert plain.dtype == torch.float32 and plain.min() >= -1  # the GAN stream is unchanged
    sdata = load_source(
        DataConfig(source=f"folder:{colours}", image_size=12, channels=3, in_memory="no"),
        progress=False,
        with_labels=True,
    )
    sx, sy = next(make_stream(sdata, cfg, 5, torch.device("cpu"), 0, with_labels=True))
    assert sx.dtype == torch.uint8 and torch.equal(2 - sx.float().mean((2, 3)).argmax(1), sy)


# --- config ------------------------------------------------------------------------------------


def test_config_round_trip_and_gan_configs_unaffected():
    for name in ("darknet-cifar10", "darknet-cifar10-cpu", "classifier-mnist", "dcgan-mnist"):
        cfg = build_config(name)
        assert from_dict(to_dict(cfg)) == cfg
    cfg = build_config("darknet-cifar10", ["nets.net.num_blocks=[1, 1, 2, 1]"])
    assert cfg.task == "classifier" and cfg.nets["net"].num_blocks == (1, 1, 2, 1)
    assert build_config("dcgan-mnist").task == "gan"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("classifier.pct=100", "classifier.pct=100"),
        ("classifier.div=1", "classifier.div=1"),
        ("classifier.mom_min=0.99", "mom_min <= mom_max"),
        ("classifier.mean=[0.5]", "one value per channel"),
        ("nets.net.num_blocks=[]", "one count >= 0 per group"),
        ("nets.net.arch=resnet", "choose one of darknet, mnistnet"),
        ("nets.net.num_blocks=[1, 1, 1, 1, 1, 1, 1]", "too small"),
        ("data.source=lmdb:/x", "needs labelled data"),
    ],
)
def test_bad_classifier_values_fail_in_one_line(override, fragment):
    with pytest.raises(ConfigError) as e:
        build_config("darknet-cifar10", [override])
    assert fragment in str(e.value) and "\n" not in str(e.value)


# --- training ----------------------------------------------------------------------------------


def test_task_learns_and_evaluates_each_epoch(colours, tmp_path):
    extra = ("nets.net.arch=mnistnet", "train.epochs=6", "train.log_every=6")
    run = train(build_config("darknet-cifar10", tiny(colours, *extra)), tmp_path / "run")
    train_rows = [r for r in metrics_rows(run) if "loss" in r]
    test_rows = [r for r in metrics_rows(run) if "test_acc" in r]
    assert train_rows[-1]["loss"] < train_rows[0]["loss"] / 2
    assert train_rows[-1]["acc"] > train_rows[0]["acc"] and train_rows[-1]["acc"] > 0.9
    assert [r["step"] for r in test_rows] == [6, 12, 18, 24, 30, 36]  # once per epoch of 6 steps
    assert test_rows[-1]["test_acc"] > 0.9
    assert not any((run / "samples").iterdir())  # a classifier has no previews
    saved = build_config(str(run / "config.yaml"))
    assert (
        saved.section(ClassifierOptions).classes == CLASSES
        and saved.section(ClassifierOptions).num_classes == 3
    )
    assert saved.section(ClassifierOptions).mean is not None and saved.train.steps == 36
    state = load_checkpoint(latest_checkpoint(run))
    assert state["task"] == "classifier" and state["config"]["classifier"]["classes"] == list(
        CLASSES
    )


@pytest.mark.parametrize("arch", ["darknet", "mnistnet"])
def test_stop_and_resume_is_bit_exact(colours, tmp_path, monkeypatch, arch):
    extra = (f"nets.net.arch={arch}", "train.steps=10", "classifier.eval_every=4")
    straight = train(build_config("darknet-cifar10", tiny(colours, *extra)), tmp_path / "a")
    original = ClassifierTask.step

    def term_at_5(self, batches):  # a real SIGTERM in the middle of the run
        out = original(self, batches)
        if self.sched.last_epoch == 5:
            signal.raise_signal(signal.SIGTERM)
        return out

    monkeypatch.setattr(ClassifierTask, "step", term_at_5)
    stopped = train(build_config("darknet-cifar10", tiny(colours, *extra)), tmp_path / "b")
    assert load_checkpoint(latest_checkpoint(stopped))["step"] == 5
    monkeypatch.setattr(ClassifierTask, "step", original)
    resumed = train(build_config(str(stopped / "config.yaml")), stopped, resume=True)
    sa = load_checkpoint(latest_checkpoint(straight))["parts"]
    sb = load_checkpoint(latest_checkpoint(resumed))["parts"]
    assert sa["scheds"]["net"]["last_epoch"] == sb["scheds"]["net"]["last_epoch"] == 10
    for k, v in sa["nets"]["net"].items():
        assert torch.equal(v, sb["nets"]["net"][k]), f"{k} differs after resume"
    oa, ob = sa["optims"]["net"], sb["optims"]["net"]
    for k, v in oa["state"].items():
        assert torch.equal(v["momentum_buffer"], ob["state"][k]["momentum_buffer"])
    assert oa["param_groups"][0]["lr"] == ob["param_groups"][0]["lr"]
    tests_a = [r for r in metrics_rows(straight) if "test_acc" in r]
    tests_b = [r for r in metrics_rows(resumed) if "test_acc" in r]
    assert [(r["step"], r["test_loss"]) for r in tests_a] == [
        (r["step"], r["test_loss"]) for r in tests_b
    ]


def test_evaluate_with_and_without_flip_tta(colours):
    cfg = build_config("darknet-cifar10", tiny(colours, "train.steps=10"))
    data = load_source(cfg.data, progress=False, with_labels=True)
    ClassifierTask.resolve(cfg, {"labelled": data})
    task = ClassifierTask(cfg, Runtime.from_config(cfg.train), {})
    x = data.images[:7]
    plain, tta = task.predict(x, tta_flip=False), task.predict(x, tta_flip=True)
    mirrored = task.predict(x.flip(-1), tta_flip=False)
    torch.testing.assert_close(tta, (plain + mirrored) / 2)
    assert not torch.allclose(plain, tta)
    for flag in (False, True):
        scores = task.evaluate(tta_flip=flag)
        assert set(scores) == {"test_loss", "test_acc"} and 0 <= scores["test_acc"] <= 1
    assert task.net.training  # evaluation leaves the net in training mode


# --- command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(colours, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clf") / "run"
    extra = ("nets.net.arch=mnistnet", "train.epochs=4", "classifier.tta_flip=true")
    assert main(["train", "darknet-cifar10", *tiny(colours, *extra), "--out", str(out)]) == 0
    return out


def test_evaluate_classifier_prints_per_class_accuracy_and_draws(
    trained, colours, tmp_path, capsys
):
    out = tmp_path / "eval"
    assert (
        main(
            ["evaluate-classifier", str(trained), "--data", f"folder:{colours}", "--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "accuracy" in text and "flip TTA" in text
    for name in CLASSES:
        assert any(line.strip().startswith(name) and "%" in line for line in text.splitlines())
    img = Image.open(out / "confusion.png")
    assert img.size[0] > 100 and img.size[1] > 100
    saved = json.loads((out / "evaluation.json").read_text())
    assert sum(map(sum, saved["confusion"])) == 48 and saved["classes"] == list(CLASSES)
    assert saved["accuracy"] > 0.9


def test_lr_find_writes_a_plot_and_suggests(colours, tmp_path, capsys):
    out = tmp_path / "lr"
    args = ["lr-find", "darknet-cifar10", *tiny(colours), "--num", "20", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "suggested lr" in text and Image.open(out / "lr_find.png").size == (800, 500)
    result = json.loads((out / "lr_find.json").read_text())
    assert 1e-5 <= result["suggestion"] <= 10 and len(result["lrs"]) <= 20
    assert not (out / "checkpoints").exists()


def test_bad_inputs_give_one_line_errors(trained, colours, tmp_path, capsys):
    flat = tmp_path / "flat"
    write_random_images(flat, n=10, size=12)
    only_train = write_class_folders(tmp_path / "only_train", n=4, splits=("train",))
    other = tmp_path / "other"
    for name in ("cat", "dog"):
        write_random_images(other / "test" / name, n=2, size=12)
    gan_run = tmp_path / "gan"
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=1", "--out", str(gan_run)]) == 0
    cases = {
        "no class folders": ["train", "darknet-cifar10", *tiny(flat, "train.steps=3")],
        "no test split": ["train", "darknet-cifar10", *tiny(only_train, "train.steps=3")],
        "pct out of range": ["train", "darknet-cifar10", "classifier.pct=150"],
        "too few steps for a cycle": ["train", "darknet-cifar10", *tiny(colours, "train.steps=1")],
        "lr-find on a gan": ["lr-find", "dcgan-mnist"],
        "lr-find without recipe": ["lr-find", "train.steps=3"],
        "evaluate a gan run": ["evaluate-classifier", str(gan_run), "--data", "builtin:mnist"],
        "evaluate a non-run": ["evaluate-classifier", str(flat), "--data", "builtin:mnist"],
        "other classes": ["evaluate-classifier", str(trained), "--data", f"folder:{other}"],
        "flat evaluation data": ["evaluate-classifier", str(trained), "--data", f"folder:{flat}"],
        "sample a classifier": ["sample", str(trained)],
        "bad split": ["evaluate-classifier", str(trained), "--data", "x", "--split", "val"],
    }
    for name, args in cases.items():
        code = main(args)
        err = capsys.readouterr().err.strip()
        assert code == 2, f"{name}: exit {code}, stderr {err!r}"
        assert err.startswith("error: ") and "\n" not in err, f"{name}: {err!r}"


# --- recipes -----------------------------------------------------------------------------------


CLASSIFIER_RECIPES = [n for n in recipe_names() if build_config(n).task == "classifier"]


def test_classifier_recipes_exist():
    assert {"darknet-cifar10", "darknet-cifar10-cpu", "classifier-mnist"} <= set(CLASSIFIER_RECIPES)


@pytest.mark.parametrize("name", CLASSIFIER_RECIPES)
def test_classifier_recipe_smoke(name, tmp_path):
    base = build_config(name)
    data = write_class_folders(tmp_path / "data", n=2, size=base.data.image_size)
    cfg = build_config(
        name,
        [
            f"data.source=folder:{data}",
            "data.workers=0",
            "train.epochs=null",
            "train.steps=3",
            "train.batch_size=2",
            "train.progress=false",
            "train.device=cpu",
        ],
    )
    assert (
        cfg.section(ClassifierOptions) == base.section(ClassifierOptions)
        and cfg.data.image_size == base.data.image_size
    )
    run = train(cfg, tmp_path / "run")
    assert load_checkpoint(latest_checkpoint(run))["step"] == 3
    assert any("test_acc" in r for r in metrics_rows(run))


def test_resume_with_a_new_peak_lr_and_length_follows_the_new_cycle(colours, tmp_path):
    """One-cycle resumed with other classifier.lr and train.steps continues on the new schedule."""
    from gankit.engine.schedules import one_cycle

    extra = (
        "nets.net.arch=mnistnet",
        "train.steps=10",
        "train.log_every=1",
        "classifier.eval_every=0",
    )
    run = train(
        build_config("darknet-cifar10", tiny(colours, *extra, "train.steps=5")), tmp_path / "r"
    )
    cfg = build_config(str(run / "config.yaml"), ["train.steps=20", "classifier.lr=0.1"])
    train(cfg, run, resume=True)
    lrs = {r["step"]: r["lr"] for r in metrics_rows(run) if "lr" in r}
    c = cfg.section(ClassifierOptions)
    for step in (6, 12, 20):  # the lr a step used is the schedule's value before it
        want = one_cycle(step - 1, 20, 0.1, c.div, c.pct, c.mom_max, c.mom_min)[0]
        assert lrs[step] == pytest.approx(want, rel=1e-6), step
    first = one_cycle(4, 5, 0.05, c.div, c.pct, c.mom_max, c.mom_min)[0]
    assert lrs[5] == pytest.approx(first, rel=1e-6)  # the first run's own schedule
