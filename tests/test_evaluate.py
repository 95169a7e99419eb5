"""`gankit evaluate` and evaluation during training (eval.every, best.pt), on tiny runs.

The metrics themselves are tested in test_fid/kid/prdc/modes/memorisation; here: the command line,
the reference split, classifier features, one-line errors, and the loop's best checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import evaluate as evaluation_cli
from gankit.cli import main
from gankit.config import DataConfig, merge_dicts, to_dict
from gankit.data.sources import load_source
from gankit.engine.checkpoint import best_checkpoint, load_checkpoint, read_best, save_checkpoint
from gankit.engine.loop import train
from gankit.errors import CheckpointError, ConfigError
from gankit.evaluation import evaluate as evaluation
from gankit.evaluation.evaluate import TrainingEvaluator
from gankit.evaluation.metrics import inception
from gankit.evaluation.reference import load_reference
from gankit.registries import build_config, from_dict, load_config

from conftest import SHARED, TINY, metrics_rows

REAL_INCEPTION = SHARED / "inception" / inception.INCEPTION_FILENAME


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty feature cache per test, no GANKIT_INCEPTION, and no network for the Inception."""
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_INCEPTION", raising=False)

    def offline(url, dest, *args, **kwargs):
        raise CheckpointError(f"cannot download {url} (offline in tests)")

    monkeypatch.setattr(inception, "download_file", offline)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def clf(tmp_path_factory) -> Path:
    """A small MNIST classifier at 16x16 (about 88 % accurate, confident on about half the digits)."""
    out = tmp_path_factory.mktemp("clf") / "run"
    args = [
        "train",
        "classifier-mnist",
        "data.source=builtin:mnist",
        "data.image_size=16",
        "data.fit=resize",
        "data.limit=4000",
        "nets.net.nf=8",
        "classifier.pad=1",
        "classifier.lr=0.1",
        "classifier.eval_every=0",
        "train.epochs=null",
        "train.steps=60",
        "train.batch_size=32",
        "train.progress=false",
        "train.device=cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gan") / "run"
    assert (
        main(["train", "dcgan-mnist", *TINY, "train.steps=3", "gan.ema=0.9", "--out", str(out)])
        == 0
    )
    return out


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict[str, Path]:
    """Folders of real MNIST digits (28x28 PNGs): ``mixed`` (the first 200), ``ones`` (200 ones)."""
    data = load_source(DataConfig(source="builtin:mnist", image_size=28), progress=False)
    root = tmp_path_factory.mktemp("digits")
    picks = {
        "mixed": torch.arange(200),
        "ones": torch.nonzero(data.labels == 1).flatten()[:200],  # type: ignore[operator]
    }
    for name, index in picks.items():
        (root / name).mkdir()
        for k, i in enumerate(index.tolist()):
            Image.fromarray(data.images[i, 0].numpy(), "L").save(root / name / f"{k:04d}.png")  # type: ignore[index]
    return {name: root / name for name in picks}


def cli(*args: str | Path) -> int:
    return main(["evaluate", *map(str, args)])


def saved(path: Path) -> dict:
    return json.loads(path.read_text())


# --- gankit evaluate ---------------------------------------------------------------------------


def test_run_with_classifier_features(gan_run, clf, isolated_cache, capsys):
    args = (gan_run, "--ref", "builtin:mnist", "--n", "80", "--ema")
    assert cli(*args, "--features", f"classifier:{clf}", "--classifier", clf) == 0
    out = capsys.readouterr().out
    assert "fid" in out and "precision" in out and "wrote" in out
    first = saved(gan_run / "eval" / "evaluation-step-000003.json")
    m = first["metrics"]
    assert set(m) == {"fid", "kid", "prdc", "modes", "memorisation"}
    assert first["n"] == first["ref_images"] == first["heldout_images"] == 80
    assert first["ref_source_images"] == 10_000 and first["step"] == 3 and first["ema"]
    assert np.isfinite(m["fid"]["fid"]) and m["fid"]["fid"] > 0
    assert all(0 <= m["prdc"][k] <= 1 for k in ("precision", "recall", "coverage"))
    assert m["modes"]["num_classes"] == 10 and len(m["modes"]["histogram"]) == 10
    assert m["memorisation"]["memorised_fraction"] < 0.1  # three steps of training copy nothing
    assert (gan_run / "eval" / "memorisation-step-000003.png").is_file()
    assert len(first["closest_pairs"]) == 16 and not first["notes"]
    # Reference features are cached: a second evaluation reads them and gives the same numbers.
    assert len(list((isolated_cache / "features").glob("*.npy"))) == 2  # reference and held-out
    assert cli(*args, "--features", f"classifier:{clf}", "--classifier", clf) == 0
    assert saved(gan_run / "eval" / "evaluation-step-000003.json")["metrics"] == m


def test_folder_of_training_images_is_flagged_as_copies(digits, clf, tmp_path):
    out = tmp_path / "eval"
    args = ("--ref", "builtin:mnist", "--n", "200", "--ref-n", "8000", "--out", out)
    assert cli(digits["mixed"], *args, "--features", f"classifier:{clf}") == 0
    result = saved(out / "evaluation.json")
    assert result["n"] == 200 and result["ref_images"] == 8000 and result["step"] is None
    # About 4/5 of these digits are in the reference part of the split, at distance 0.
    assert result["metrics"]["memorisation"]["memorised_fraction"] > 0.6
    assert result["closest_pairs"][0]["distance"] < 1e-3
    assert result["metrics"]["fid"]["fid"] < 50
    assert "modes skipped" in result["notes"][0]  # no --classifier
    assert (out / "memorisation.png").is_file()


def test_one_digit_generator_is_flagged_by_modes(digits, clf):
    for name in ("ones", "mixed"):
        args = ("--ref", "builtin:mnist", "--n", "200", "--metrics", "modes", "--classifier", clf)
        assert cli(digits[name], *args) == 0
    ones = saved(digits["ones"].parent / "ones-eval" / "evaluation.json")["metrics"]["modes"]
    mixed = saved(digits["mixed"].parent / "mixed-eval" / "evaluation.json")["metrics"]["modes"]
    assert ones["classes_hit"] <= 2 and ones["histogram"][1] > 0.9
    assert mixed["classes_hit"] >= 7 and mixed["kl"] < 0.2 < ones["kl"]


def test_bad_inputs_give_one_line_errors(gan_run, clf, tmp_path, capsys):
    (tmp_path / "one.png").write_bytes(b"")
    cases = {
        "missing run": ([tmp_path / "nope", "--ref", "builtin:mnist"], "does not exist"),
        "a file, not a folder": (
            [tmp_path / "one.png", "--ref", "builtin:mnist", "--metrics", "modes"],
            "is not a folder: give a GAN run directory or a folder of images",
        ),
        "unknown metric": ([gan_run, "--ref", "builtin:mnist", "--metrics", "fid,isc"], "isc"),
        "unknown ref": ([gan_run, "--ref", "imagenet", "--metrics", "modes"], "imagenet"),
        "missing ref folder": (
            [gan_run, "--ref", f"folder:{tmp_path / 'none'}", "--metrics", "modes"],
            "does not exist",
        ),
        "torchvision ref without root": (
            [gan_run, "--ref", "cifar10", "--metrics", "modes"],
            "root",
        ),
        "inception offline": (
            [gan_run, "--ref", "builtin:mnist", "--metrics", "fid"],
            "put inception-2015-12-05.pt",
        ),
        "bad inception path": (
            [gan_run, "--ref", "builtin:mnist", "--inception", tmp_path / "x.pt"],
            "is not a file",
        ),
        "unknown features": ([gan_run, "--ref", "builtin:mnist", "--features", "vgg"], "vgg"),
        "classifier as samples": (
            [clf, "--ref", "builtin:mnist", "--metrics", "modes"],
            "classifier run",
        ),
        "gan as classifier": (
            [gan_run, "--ref", "builtin:mnist", "--metrics", "modes", "--classifier", gan_run],
            "give a classifier run",
        ),
        "no best.pt": ([gan_run, "--ref", "builtin:mnist", "--checkpoint", "best"], "best.pt"),
        "modes without a classifier": (
            [gan_run, "--ref", "builtin:mnist", "--metrics", "modes"],
            "--metrics modes needs --classifier RUN",
        ),
    }
    for name, (args, fragment) in cases.items():
        assert cli(*args) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, (name, err)
        assert fragment in err, (name, err)


def test_exit_status_through_the_console_script(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "gankit.cli", "evaluate", str(tmp_path / "nope"), "--ref", "x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "does not exist" in p.stderr


def test_cli_constants_match_the_library():
    assert evaluation_cli.METRIC_CHOICES == evaluation.METRIC_CHOICES
    assert evaluation_cli.DEFAULT_METRICS == evaluation.DEFAULT_METRICS


def test_reference_split_is_disjoint_and_fixed():
    like = DataConfig(image_size=28)
    a = load_reference("builtin:mnist", like, 300, progress=False)
    b = load_reference("builtin:mnist", like, 100, progress=False)
    assert len(a.images) == len(a.heldout) == 300 and a.size == 10_000
    assert torch.equal(a.images[:100], b.images)  # a prefix of one fixed order
    flat = lambda x: {bytes(img.numpy().tobytes()) for img in x}  # noqa: E731
    assert not flat(a.images) & flat(a.heldout)
    small = load_reference("builtin:mnist", like, 9_000, progress=False)
    assert len(small.heldout) == 2_000 and len(small.images) == 8_000  # at most 1/5 held out


@pytest.mark.skipif(
    not REAL_INCEPTION.is_file(), reason=f"FID Inception not found at {REAL_INCEPTION}"
)
def test_with_the_real_inception(gan_run, tmp_path):
    out = tmp_path / "eval"
    args = ("--ref", "builtin:mnist", "--n", "10", "--metrics", "fid,kid", "--out", out)
    assert cli(gan_run, *args, "--inception", REAL_INCEPTION) == 0
    result = saved(out / "evaluation-step-000003.json")
    assert result["features"].startswith("inception-2015-12-05")
    assert result["metrics"]["fid"]["fid"] > 0


# --- evaluation during training --------------------------------------------------------------


def eval_config(clf: Path, *extra: str):
    return build_config(
        "dcgan-mnist",
        [
            *TINY,
            "train.log_every=2",
            "train.ckpt_every=2",
            "train.keep_ckpts=1",
            "eval.every=2",
            "eval.n=40",
            f"eval.features=classifier:{clf}",
            *extra,
        ],
    )


def test_eval_every_logs_scores_and_keeps_best_across_resume(clf, tmp_path):
    run = train(eval_config(clf, "train.steps=4"), tmp_path / "run")
    rows = metrics_rows(run)
    evals = [r for r in rows if "eval_fid" in r]
    assert [r["step"] for r in evals] == [2, 4]
    best = read_best(run)
    winner = min(evals, key=lambda r: r["eval_fid"])
    assert best == {"key": "eval_fid", "value": winner["eval_fid"], "step": winner["step"]}
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.pt", "step-000004.pt"]  # pruning keeps best.pt
    assert load_checkpoint(run / "checkpoints" / "step-000004.pt")["best"] == best

    # A record nothing can beat must survive a resume: the run reads it back from best.pt.
    state = load_checkpoint(best_checkpoint(run))
    state["best"]["value"] = -1.0
    save_checkpoint(state, best_checkpoint(run))
    cfg = from_dict(merge_dicts(to_dict(load_config(run / "config.yaml")), {"train": {"steps": 6}}))
    train(cfg, run, resume=True)
    assert read_best(run)["value"] == -1.0
    assert load_checkpoint(run / "checkpoints" / "step-000006.pt")["best"]["value"] == -1.0
    rows = metrics_rows(run)
    assert [r["step"] for r in rows if "eval_fid" in r] == [2, 4, 6]

    # Evaluating never moves the training RNG: the resumed run equals a straight one.
    straight = train(eval_config(clf, "train.steps=6"), tmp_path / "straight")
    a = load_checkpoint(run / "checkpoints" / "step-000006.pt")["parts"]["nets"]["G"]
    b = load_checkpoint(straight / "checkpoints" / "step-000006.pt")["parts"]["nets"]["G"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (
        cli(
            run,
            "--ref",
            "builtin:mnist",
            "--n",
            "40",
            "--metrics",
            "modes",
            "--checkpoint",
            "best",
            "--classifier",
            clf,
        )
        == 0
    )
    assert (run / "eval" / f"evaluation-best-step-{winner['step']:06d}.json").is_file()


def test_higher_is_better_metrics_and_eval_config_errors(clf):
    for metric, higher in (("coverage", True), ("kid", False), ("fid", False)):
        ev = TrainingEvaluator(eval_config(clf, f"eval.metric={metric}"), "cpu")
        assert (ev.key, ev.higher_is_better) == (f"eval_{metric}", higher)
    assert build_config("dcgan-mnist").eval.every == 0  # off by default
    bad = {
        "eval.metric=is": "choose one of",
        "eval.every=-1": "eval.every",
        "eval.n=3": "eval.n",
        "eval.features=vgg": "eval.features",
        "eval.ref=imagenet": "eval.ref",
        "eval.resizer=bicubic": "eval.resizer",
        "eval.resizer=clean eval.features=classifier:x": "eval.resizer",
    }
    for override, fragment in bad.items():
        with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")) as e:
            build_config("dcgan-mnist", override.split())
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="a classifier run evaluates itself"):
        build_config("classifier-mnist", ["eval.every=10"])


def test_translation_runs_are_scored_on_their_translated_test_images(tmp_path):
    """`gankit evaluate` on a cyclegan/cut run translates the source domain's test split."""
    from gankit.evaluation.samples import load_samples

    from conftest import TINY_CYCLEGAN, write_domains

    root = write_domains(tmp_path / "d", n=5)
    run = train(
        build_config("cyclegan-mnistm", [f"data.root={root}", *TINY_CYCLEGAN]), tmp_path / "r"
    )
    s = load_samples(run, 3, direction="BtoA")
    assert s.images.shape == (3, 3, 24, 24) and s.images.dtype == torch.uint8 and s.is_run
    assert len(load_samples(run, 100).images) == 5  # all of testA
    with pytest.raises(ConfigError, match="translation run; it has no EMA"):
        load_samples(run, 3, ema=True)


def test_modes_of_a_stacked_mnist_run_read_each_channel(clf, tmp_path, capsys):
    """A 3-channel run scored with a 1-channel digit classifier: 1,000 Stacked MNIST modes."""
    from gankit.engine.loop import train
    from gankit.registries import build_config

    over = ["data.source=stacked-mnist:64", "data.channels=3", "train.steps=1"]
    run = train(build_config("dcgan-mnist", [*TINY, *over]), tmp_path / "stk")
    code = cli(
        run, "--ref", "stacked-mnist:64", "--n", "40", "--metrics", "modes", "--classifier", clf,
        "--out", tmp_path / "ev",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    modes = json.loads(next((tmp_path / "ev").glob("evaluation-*.json")).read_text())["metrics"]
    assert modes["modes"]["num_modes"] == 1000 and 1 <= modes["modes"]["modes"] <= 40
    assert modes["modes"]["n"] == 40


def test_modes_of_a_stacked_mnist_run_train_the_digit_classifier_once(
    tmp_path, monkeypatch, capsys
):
    """Without --classifier gankit trains its own digit classifier into the cache, once."""
    from gankit.engine.loop import train
    from gankit.evaluation import digit_classifier
    from gankit.registries import build_config

    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    fast = ["data.image_size=16", "data.fit=resize", "data.limit=256", "nets.net.nf=4"]
    fast += ["classifier.eval_every=0", "train.epochs=null", "train.steps=4"]
    monkeypatch.setattr(
        digit_classifier, "CLASSIFIER_OVERRIDES", (*digit_classifier.CLASSIFIER_OVERRIDES, *fast)
    )
    over = ["data.source=stacked-mnist:64", "data.channels=3", "train.steps=1"]
    run = train(build_config("dcgan-mnist", [*TINY, *over]), tmp_path / "stk")
    for out in ("ev1", "ev2"):
        code = cli(run, "--ref", "stacked-mnist:64", "--n", "40", "--metrics", "modes",
                   "--out", tmp_path / out)  # fmt: skip
        assert code == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert said.count("training the digit classifier") == 1  # the second evaluation reuses it
    cached = tmp_path / "cache" / "classifiers" / "mnist-builtin"
    assert (cached / "DONE").is_file() and (cached / "config.yaml").is_file()
    modes = json.loads(next((tmp_path / "ev2").glob("evaluation-*.json")).read_text())["metrics"]
    assert modes["modes"]["num_modes"] == 1000


def test_eval_resizer_reaches_the_training_evaluators_inception(tmp_path, monkeypatch):
    from inception_fakes import headless_network

    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    net = headless_network(tmp_path / "inception.pt", dim=16)
    ids = {}
    for resizer in ("legacy-tensorflow", "clean"):
        cfg = build_config(
            "dcgan-mnist",
            [
                *TINY,
                "eval.every=2",
                "eval.n=10",
                f"eval.inception={net}",
                f"eval.resizer={resizer}",
            ],
        )
        ev = TrainingEvaluator(cfg, "cpu")
        assert ev.extractor.resizer == resizer
        ids[resizer] = ev.extractor.feature_id
    assert ids["clean"] != ids["legacy-tensorflow"]  # so their cached features never mix


def test_eval_resizer_choices_are_the_resizers():
    from typing import get_args, get_type_hints

    from gankit.config.sections import EvalConfig
    from gankit.evaluation.metrics.resize import DEFAULT_RESIZER, RESIZERS

    assert get_args(get_type_hints(EvalConfig)["resizer"]) == RESIZERS
    assert EvalConfig().resizer == DEFAULT_RESIZER
