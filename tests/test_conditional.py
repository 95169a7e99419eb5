"""Class-conditional GANs: the wrappers, training on labelled data, sampling one class."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gankit.cli import main
from gankit.errors import ConfigError
from gankit.gan.options import GanOptions
from gankit.inference.loading import load_run
from gankit.inference.sampling import class_index, generate, generate_from, seeded_noise
from gankit.nets import build_net, entry
from gankit.nets.conditional import ConditionalGenerator, LabelDiscriminator, feature_dim

from conftest import TINY, metrics_rows


def _opts(kind: str, arch: str, **kw):
    return entry(kind, arch).options(arch=arch, **kw)


@pytest.mark.parametrize("arch", ["dcgan", "mnist-dc", "mlp"])
def test_a_conditional_generator_changes_with_the_label_and_not_otherwise(arch):
    size = 28 if arch == "mnist-dc" else 16
    kw = (
        {"nz": 8 + 10}
        | ({"ngf": 4} if arch == "dcgan" else {})
        | ({"hidden": 16} if arch == "mlp" else {})
    )
    torch.manual_seed(0)
    G = ConditionalGenerator(
        build_net("generator", _opts("generator", arch, **kw), size, 1), 10, 10
    )
    G.eval()
    z = torch.randn(1, 8).repeat(3, 1)
    out = G(z, torch.tensor([3, 3, 7]))
    assert out.shape == (3, 1, size, size)
    torch.testing.assert_close(out[0], out[1])  # same z, same label: same image
    assert (out[0] - out[2]).abs().max() > 0.05 * out.abs().max()  # other label: other image


@pytest.mark.parametrize("mode", ["concat", "projection", "acgan"])
@pytest.mark.parametrize("arch", ["dcgan", "mnist-dc", "mlp"])
def test_label_discriminators_on_every_family(arch, mode):
    size = 28 if arch == "mnist-dc" else 16
    kw = {"ndf": 4} if arch == "dcgan" else {"hidden": 16} if arch == "mlp" else {}
    base = build_net(
        "discriminator", _opts("discriminator", arch, **kw), size, 1 + 10 * (mode == "concat")
    )
    dim = 0 if mode == "concat" else feature_dim(base, 1, size)
    D = LabelDiscriminator(base, mode, 10, dim)
    x, y = torch.randn(4, 1, size, size), torch.tensor([0, 1, 2, 9])
    logits, aux = D(x, y)
    assert logits.shape == (4,)
    assert (aux is None) == (mode != "acgan")
    if mode == "acgan":
        assert aux.shape == (4, 10)
    if mode != "acgan":  # the label changes the score
        other, _ = D(x, torch.tensor([5, 5, 5, 5]))
        assert not torch.allclose(logits, other)


def test_projection_is_the_unconditional_score_plus_the_inner_product():
    torch.manual_seed(0)
    base = build_net("discriminator", _opts("discriminator", "mlp", hidden=16), 8, 1)
    D = LabelDiscriminator(base, "projection", 3, feature_dim(base, 1, 8))
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 1, 0])
    phi = base.net[:-1](x)
    expect = base(x) + (D.embed.weight[y] * phi).sum(1)
    torch.testing.assert_close(D(x, y)[0], expect)


COND = [*TINY, "data.source=builtin:mnist", "train.steps=3", "train.n_preview=20"]


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgan") / "run"
    assert main(["train", *COND, "gan.conditional=projection", "--out", str(out)]) == 0
    return out


def test_a_conditional_run_previews_one_row_per_class_and_samples_one_class(
    cond_run, tmp_path, capsys
):
    loaded = load_run(cond_run)
    model = loaded.model
    assert model.classes == tuple(str(k) for k in range(10))
    assert loaded.cfg.section(GanOptions).classes == model.classes
    preview = sorted((cond_run / "samples").glob("step-*.png"))[-1]
    w, h = Image.open(preview).size
    assert h == 10 * (16 + 2) + 2 and w == 2 * (16 + 2) + 2  # 10 rows of 20 // 10 = 2 images
    # --class K gives the same images as generate() with labels K, and other ones than K'
    out = tmp_path / "ones"
    assert (
        main(["sample", str(cond_run), "--class", "1", "--n", "6", "--individual", str(out)]) == 0
    )
    assert len(list(out.glob("*.png"))) == 6
    ones = generate(model, 6, labels=torch.full((6,), 1))
    sevens = generate(model, 6, labels=torch.full((6,), 7))
    assert (ones - sevens).abs().max() > 1e-3
    assert main(["sample", str(cond_run), "--class", "eleven"]) == 2
    assert "--class 'eleven'" in capsys.readouterr().err
    assert main(["sample", str(cond_run), "--rank-by-d", "--n", "2", "--from", "4"]) == 2
    assert "label" in capsys.readouterr().err


def test_a_conditional_generator_exports_with_a_labels_input(cond_run, tmp_path):
    import onnxruntime as ort

    import gankit

    model = load_run(cond_run).model
    z = model.noise(6, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 3, 3, 9, 1, 7])
    want = model.sample(z, labels=y)
    for fmt, name in (("onnx", "g.onnx"), ("torchscript", "g.pt"), ("safetensors", "g.st")):
        out = tmp_path / (name if fmt != "safetensors" else "g.safetensors")
        assert main(["export", str(cond_run), "--format", fmt, "--out", str(out)]) == 0
        meta = json.loads(out.with_name(out.name + ".json").read_text())
        assert meta["classes"] == [str(k) for k in range(10)] and meta["embed_dim"] == 10
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["z", "labels"]
    got = sess.run(None, {"z": z.numpy(), "labels": y.numpy()})[0]
    assert (torch.from_numpy(got) - want).abs().max() <= 1e-4
    assert (torch.jit.load(str(tmp_path / "g.pt"))(z, y) - want).abs().max() <= 1e-5
    # the safetensors export samples as the run does, class by class
    run, exported = gankit.load(cond_run), gankit.load(tmp_path / "g.safetensors")
    assert exported.classes == run.classes == [str(k) for k in range(10)]
    assert torch.equal(exported.sample(10, seed=1), run.sample(10, seed=1))
    assert torch.equal(exported.sample(4, labels=7), run.sample(4, labels=torch.full((4,), 7)))
    assert not torch.equal(run.sample(4, labels=7), run.sample(4, labels=2))
    with pytest.raises(ConfigError, match="3 labels for n=4"):
        run.sample(4, labels=torch.tensor([1, 2, 3]))
    with pytest.raises(ConfigError, match="class indices in 0..9"):
        run.sample(2, labels=torch.tensor([1, 12]))


def test_every_class_in_turn_runs_across_batches(cond_run):
    # the labels of 0, 1, ..., 9, 0, ... ran afresh in every batch of 256 before (a sample of
    # 1,000 drew the classes out of turn after the first batch)
    model = load_run(cond_run).model
    z = seeded_noise(model, 23)
    labels = torch.arange(23) % 10
    want = generate_from(model, z, labels=labels, batch_size=23)
    torch.testing.assert_close(generate_from(model, z, batch_size=4), want)


def test_a_conditional_interpolation_keeps_one_class_per_row(cond_run):
    from gankit.inference.latent import interpolate, interpolation_codes

    model = load_run(cond_run).model
    images = interpolate(model, rows=3, steps=4, seed=2)
    z = interpolation_codes(model, 3, 4, seed=2).flatten(0, 1)
    labels = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    torch.testing.assert_close(images, generate_from(model, z, labels=labels))


def test_class_names_and_refusals(tmp_path, capsys):
    class Uncond:
        label_classes = None

    with pytest.raises(ConfigError, match="unconditional"):
        class_index(Uncond(), "3")

    class SemiSupervised:  # its discriminator classifies; its generator takes no labels
        classes = ("cat", "dog")

    with pytest.raises(ConfigError, match="unconditional"):
        class_index(SemiSupervised(), "dog")

    class Named:  # a ConditionalGenerative
        label_classes = ("cat", "dog")

        def default_labels(self, n):
            return torch.arange(n) % 2

    assert class_index(Named(), "dog") == 1 and class_index(Named(), "0") == 0
    # a source without labels
    folder = tmp_path / "flat"
    folder.mkdir()
    from conftest import write_random_images

    write_random_images(folder, 8, 16)
    argv = ["train", "dcgan-mnist", *TINY, f"data.source=folder:{folder}", "gan.conditional=concat"]
    assert main([*argv, "train.steps=1", "--out", str(tmp_path / "r")]) == 2
    assert "has no class sub-folders (PATH/<class>/*.jpg)" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["concat", "acgan"])
def test_other_conditionings_train_and_resume(mode, tmp_path):
    out = tmp_path / mode
    assert main(["train", *COND, f"gan.conditional={mode}", "--out", str(out)]) == 0
    metrics = metrics_rows(out)
    keys = set().union(*metrics)
    assert ("aux_d" in keys) == (mode == "acgan")
    assert main(["train", "--resume", str(out), "train.steps=5"]) == 0
    assert load_run(out).step == 5


def test_truncation_and_noise_scale():
    class M:
        def noise(self, n, generator=None):
            return torch.randn(n, 16, generator=generator)

    z = seeded_noise(M(), 500, seed=1)
    t = seeded_noise(M(), 500, seed=1, truncation=0.5)
    assert t.abs().max() <= 0.5
    inside = z.abs() <= 0.5
    torch.testing.assert_close(t[inside], z[inside])  # codes inside the bound are kept
    torch.testing.assert_close(seeded_noise(M(), 500, seed=1, noise_std=0.3), 0.3 * z)
    with pytest.raises(ConfigError, match="noise-std"):
        seeded_noise(M(), 5, noise_std=0)


class _Pixels:
    """A stand-in feature extractor: 4x4 average-pooled pixels (the Inception is not needed to
    test the per-class bookkeeping)."""

    feature_id = "pixels4"
    split = False

    def __call__(self, images):
        return F.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)


def test_per_class_scores_compare_each_class_with_its_own_real_images(cond_run, tmp_path):
    from gankit.evaluation.per_class import format_per_class, per_class_scores

    scores = per_class_scores(cond_run, "builtin:mnist", _Pixels(), n=20, progress=False)
    assert list(scores) == [str(k) for k in range(10)]
    real = [row["reference"] for row in scores.values()]
    assert sum(real) == 10000 and real[1] == 1135  # the MNIST test set's ones
    assert all(row["fid"] > 0 and row["samples"] == 20 for row in scores.values())
    assert "<- worst" in format_per_class(scores)
    with pytest.raises(ConfigError, match="at least 2 samples"):
        per_class_scores(cond_run, "builtin:mnist", _Pixels(), n=1, progress=False)


def test_per_class_refuses_an_unconditional_run(tmp_path):
    from gankit.evaluation.per_class import per_class_scores

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "dcgan-mnist",
                *TINY,
                "data.source=builtin:mnist",
                "train.steps=1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with pytest.raises(ConfigError, match="--per-class needs a class-conditional run"):
        per_class_scores(out, "builtin:mnist", _Pixels(), n=4, progress=False)


def test_evaluate_refuses_per_class_before_the_main_evaluation(tmp_path, capsys, monkeypatch):
    """The main evaluation takes half an hour at the default n on a CPU: check first."""
    import gankit.evaluation.evaluate as evaluate

    out = tmp_path / "run"
    cmd = ["train", "dcgan-mnist", *TINY, "data.source=builtin:mnist", "train.steps=1"]
    assert main([*cmd, "--out", str(out)]) == 0

    def never(*a, **k):
        raise AssertionError("the main evaluation ran before the --per-class check")

    monkeypatch.setattr(evaluate, "evaluate_source", never)
    for target in (out, tmp_path):
        args = ["evaluate", str(target), "--ref", "builtin:mnist", "--per-class", "4"]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "--per-class needs a" in err and "\n" not in err, err


def test_the_default_job_on_a_folder_without_classes_says_what_to_run(tmp_path, capsys):
    from conftest import write_random_images

    folder = tmp_path / "flat"
    write_random_images(folder, n=8, size=16)
    assert main(["train", f"data.source=folder:{folder}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "recipe cgan-mnist" in err and "gankit train dcgan-mnist" in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_noise_mean_shifts_the_seeded_codes(cond_run, tmp_path, capsys):
    """--noise-mean M (the seed notes' gen_mean) gives codes M + S·z of the same seed."""
    model = load_run(cond_run).model
    base = seeded_noise(model, 6, seed=3)
    shifted = seeded_noise(model, 6, seed=3, noise_std=0.5, noise_mean=0.25)
    assert torch.allclose(shifted, base * 0.5 + 0.25)
    out = tmp_path / "g.png"
    assert (
        main(["sample", str(cond_run), "--n", "4", "--noise-mean", "0.3", "--out", str(out)]) == 0
    )
    assert out.is_file()
    bank = ["--bank", str(tmp_path / "b.pt"), "--noise-mean", "0.3"]
    assert main(["sample", str(cond_run), "--n", "4", *bank]) == 2
    assert "--noise-mean" in capsys.readouterr().err
