"""The semi-supervised GAN: its loss, the labelled subset, its networks, training and commands."""

from __future__ import annotations

import json

import pytest
import torch

from gankit.cli import main
from gankit.data.sources import ImageData, labelled_subset
from gankit.engine.loop import train
from gankit.errors import ConfigError, DataError
from gankit.evaluation.classifier import evaluate_run
from gankit.inference.loading import load_run
from gankit.nets.ssgan import SsganDiscriminator, WNLinear
from gankit.registries import build_config
from gankit.tasks.ssgan import SsganOptions, real_logit, ssgan_d_loss

from conftest import metrics_rows

SMALL = [
    "data.source=builtin:mnist",
    "data.labels_per_class=2",
    "nets.D.hidden=[32,16]",
    "nets.G.hidden=[16]",
    "nets.G.nz=8",
    "train.batch_size=20",
    "train.n_preview=4",
    "train.progress=false",
    "train.device=cpu",
    "train.log_every=1",
    "ssgan.eval_every=0",
]


def test_the_discriminator_loss_is_the_papers_formula():
    torch.manual_seed(0)
    lab, unl, fake = torch.randn(4, 3), torch.randn(5, 3), torch.randn(6, 3)
    y = torch.tensor([0, 2, 1, 1])
    ce, real, fk = ssgan_d_loss(lab, y, unl, fake)

    def d(logits):  # D = Z / (Z + 1), Z = sum of exp(logits)
        return logits.exp().sum(1) / (logits.exp().sum(1) + 1)

    assert torch.allclose(ce, -torch.log_softmax(lab, 1)[torch.arange(4), y].mean())
    assert torch.allclose(real, -torch.log(d(unl)).mean(), atol=1e-6)
    assert torch.allclose(fk, -torch.log(1 - d(fake)).mean(), atol=1e-6)
    assert torch.allclose(torch.sigmoid(real_logit(unl)), d(unl), atol=1e-6)


def test_labelled_subset_keeps_n_per_class_the_same_for_the_same_seed():
    labels = torch.arange(30) % 3
    data = ImageData("toy", images=torch.arange(30).view(30, 1, 1, 1), labels=labels)
    a, b = labelled_subset(data, 4, seed=0), labelled_subset(data, 4, seed=0)
    c = labelled_subset(data, 4, seed=1)
    assert torch.bincount(a.labels).tolist() == [4, 4, 4]
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert torch.equal(a.labels, a.images.view(-1) % 3)  # images keep their own labels
    with pytest.raises(DataError, match="class 0 of toy has only 10 images"):
        labelled_subset(data, 11, seed=0)


def test_data_dependent_init_normalises_each_layer_and_eval_is_deterministic():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    quiet = SsganDiscriminator(8, 1, 5, hidden=(16, 12), input_noise=0, hidden_noise=0)
    quiet.init_from_data(x)
    h = x.flatten(1)
    for layer in [quiet.body[2], quiet.body[3], quiet.body[5], quiet.body[6], quiet.head]:
        h = layer(h)
        if isinstance(layer, WNLinear):  # every linear layer: zero mean, unit std on x
            assert torch.allclose(h.mean(0), torch.zeros(h.shape[1]), atol=1e-4)
            assert torch.allclose(h.std(0), torch.ones(h.shape[1]), atol=1e-3)
    D = SsganDiscriminator(8, 1, 5, hidden=(16, 12))
    D.init_from_data(x)
    D.eval()
    assert torch.equal(D(x), D(x))
    D.train()
    assert not torch.equal(D(x), D(x))  # the noise layers are on while training
    assert D.features(x).shape == (64, 12)


def test_hidden_weight_norm_scales_are_fixed_after_init_and_the_output_scale_trains():
    torch.manual_seed(0)
    D = SsganDiscriminator(8, 1, 5, hidden=(16, 12))
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    D.init_from_data(x)
    hidden = [m for m in D.body if isinstance(m, WNLinear)]
    before = [m.scale.clone() for m in hidden] + [D.head.scale.detach().clone()]
    opt = torch.optim.Adam(D.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(D(x), torch.arange(64) % 5).backward()
        opt.step()
    assert all(torch.equal(m.scale, b) for m, b in zip(hidden, before[:-1], strict=True))
    assert not torch.equal(D.head.scale.detach(), before[-1])
    assert "body.2.scale" in D.state_dict()  # a buffer still goes into the checkpoint
    trainable = SsganDiscriminator(8, 1, 5, hidden=(16, 12), train_scale=True)
    assert len(list(trainable.parameters())) == len(list(D.parameters())) + 2


def test_labels_per_class_on_a_task_without_labels_is_refused(tmp_path):
    cfg = build_config("dcgan-mnist", ["data.labels_per_class=10", "train.steps=1"])
    with pytest.raises(ConfigError, match="data.labels_per_class=10: needs"):
        train(cfg, tmp_path / "run")


def test_supervised_only_learns_its_labels(tmp_path):
    cfg = build_config("ssgan-mnist-100", [*SMALL, "ssgan.supervised_only=true", "train.steps=40"])
    run = train(cfg, tmp_path / "run")
    rows = metrics_rows(run)
    ce = [r["ce"] for r in rows if "ce" in r]
    assert len(ce) == 40 and sum(ce[-5:]) / 5 < 0.5 * sum(ce[:5]) / 5
    assert cfg.section(SsganOptions).classes == tuple(str(k) for k in range(10))


def test_ssgan_trains_and_its_run_is_a_classifier_and_a_generator(tmp_path, capsys):
    cfg = build_config("ssgan-mnist-100", [*SMALL, "train.steps=6"])
    run = train(cfg, tmp_path / "run")
    rows = metrics_rows(run)
    last = [r for r in rows if "loss_g" in r][-1]
    assert {"ce", "acc", "loss_d", "d_real", "d_fake"} <= last.keys()
    assert (run / "samples" / "step-000006.png").is_file()

    ev = evaluate_run(run, "builtin:mnist")
    assert 0 <= ev.accuracy <= 1 and len(ev.per_class) == 10 and sum(ev.counts) == 10000
    main(["evaluate-classifier", str(run), "--data", "builtin:mnist"])
    assert json.loads((run / "evaluation.json").read_text())["accuracy"] == pytest.approx(
        ev.accuracy
    )
    loaded = load_run(run)
    x = loaded.model.sample(loaded.model.noise(3))
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    logits = loaded.model.predict(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert logits.shape == (2, 10)
    assert torch.allclose(loaded.model.discriminate(x), real_logit(loaded.model._logits(x)))
    main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert (tmp_path / "s.png").is_file()
    # the API: its classes are the classifier's; its generator takes no labels
    import gankit

    api_model = gankit.load(run)
    assert api_model.classes == [str(k) for k in range(10)]
    with pytest.raises(ConfigError, match="unconditional"):
        api_model.sample(2, labels=1)


def test_the_recipe_trains_with_its_own_networks(tmp_path):
    """ssgan-mnist-100 as shipped (its nets and 10 labels per class), on the built-in digits."""
    base = build_config("ssgan-mnist-100")
    over = ["data.source=builtin:mnist", "train.steps=2", "train.progress=false"]
    cfg = build_config("ssgan-mnist-100", [*over, "train.device=cpu", "ssgan.eval_every=0"])
    assert cfg.nets == base.nets and cfg.data.labels_per_class == 10
    run = train(cfg, tmp_path / "run")
    assert (run / "checkpoints").is_dir() and (run / "samples" / "step-000002.png").is_file()


def test_a_labelled_set_smaller_than_the_batch_is_a_clear_error(tmp_path):
    cfg = build_config("ssgan-mnist-100", [*SMALL, "train.batch_size=32", "train.steps=1"])
    with pytest.raises(
        DataError,
        match="labels_per_class=2 leaves 20 labelled images, fewer than train.batch_size=32",
    ):
        train(cfg, tmp_path / "run")
