"""The GAN task's pieces: the host-counted EMA update equals AveragedModel's."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from gankit.gan.model import ema_with_warmup, update_ema

from conftest import metrics_rows


def test_update_ema_equals_averaged_model_update():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    ours = AveragedModel(copy.deepcopy(net), use_buffers=True)
    ref = AveragedModel(copy.deepcopy(net), multi_avg_fn=ema_with_warmup(0.99), use_buffers=True)
    for n in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net(torch.randn(6, 4))  # moves the BatchNorm statistics and its counter
        update_ema(ours, net, 0.99, n)
        ref.update_parameters(net)
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert int(ours.n_averaged) == 5


# --- small-data levers: ADA, R1/R2, RpGAN, FreezeD, FastGAN through the GAN task -------------


def _rows(run):
    return [r for r in metrics_rows(run) if "loss_d" in r]


def test_ada_p_is_logged_and_checkpointed(tmp_path):
    from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
    from gankit.engine.loop import train
    from gankit.registries import build_config

    from conftest import TINY

    over = ["gan.ada=adaptive", "gan.ada_kimg=0.001", "train.steps=12", "train.log_every=4"]
    run = train(build_config("dcgan-mnist", [*TINY, *over]), tmp_path / "run")
    rows = _rows(run)
    assert all("ada_p" in r and "ada_rt" in r for r in rows)
    saved = load_checkpoint(latest_checkpoint(run))["parts"]["buffers"]["ada"]
    assert float(saved[0]) == pytest.approx(rows[-1]["ada_p"], abs=1e-6)
    # D separates 64 images from a fresh G at once: r_t > 0.6, so p went up from 0
    assert rows[-1]["ada_p"] > 0


def test_r1_and_r2_are_applied_every_reg_every_steps(tmp_path, monkeypatch):
    import gankit.gan.penalties as gan_task
    from gankit.engine.loop import train
    from gankit.registries import build_config

    from conftest import TINY

    calls = []
    original = gan_task.zero_centred_penalty

    def counted(critic, x):
        calls.append(x.shape[0])
        return original(critic, x)

    monkeypatch.setattr(gan_task, "zero_centred_penalty", counted)
    over = ["nets.D.norm=none", "gan.r1=1", "gan.r2=0.5", "gan.reg_every=3", "train.steps=6"]
    run = train(build_config("dcgan-mnist", [*TINY, *over, "train.log_every=1"]), tmp_path / "r")
    assert len(calls) == 4  # steps 0 and 3, R1 and R2 each
    rows = _rows(run)
    # logged on the steps that computed them, and averaged over those steps only
    assert [("r1" in r, "r2" in r) for r in rows] == [
        (True, True),
        (False, False),
        (False, False),
    ] * 2
    assert all(r["r1"] > 0 and r["r2"] > 0 for r in rows if "r1" in r)


def test_rpgan_with_ada_and_penalties_trains_and_rejects_label_smoothing(tmp_path):
    from gankit.engine.loop import train
    from gankit.errors import ConfigError
    from gankit.registries import build_config

    from conftest import TINY

    over = ["gan.loss=rpgan", "gan.r1=1", "gan.r2=1", "nets.D.norm=none", "gan.ada=adaptive"]
    run = train(build_config("dcgan-mnist", [*TINY, *over, "train.steps=4"]), tmp_path / "r")
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in _rows(run))
    with pytest.raises(ConfigError, match="label_smoothing does not apply to gan.loss=rpgan"):
        train(
            build_config("dcgan-mnist", [*TINY, "gan.loss=rpgan", "gan.label_smoothing=0.1"]),
            tmp_path / "bad",
        )


def test_freeze_d_keeps_the_first_layers_of_an_initialised_discriminator(tmp_path):
    from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
    from gankit.engine.loop import train
    from gankit.errors import ConfigError
    from gankit.registries import build_config

    from conftest import TINY

    base = train(build_config("dcgan-mnist", [*TINY, "train.steps=2"]), tmp_path / "base")
    tuned = train(
        build_config("dcgan-mnist", [*TINY, "train.steps=3", "gan.freeze_d=1"]),
        tmp_path / "tuned",
        init_from=base,
    )
    before = load_checkpoint(latest_checkpoint(base))["parts"]["nets"]["D"]
    after = load_checkpoint(latest_checkpoint(tuned))["parts"]["nets"]["D"]
    first, last = "main.0.weight", list(k for k in before if k.endswith("weight"))[-1]
    assert torch.equal(before[first], after[first])  # frozen
    assert not torch.equal(before[last], after[last])  # still trained
    with pytest.raises(ConfigError, match="gan.freeze_d=9 would freeze all"):
        train(build_config("dcgan-mnist", [*TINY, "gan.freeze_d=9"]), tmp_path / "bad")


def test_fastgan_nets_train_in_the_gan_task_with_their_reconstruction_loss(tmp_path):
    from gankit.engine.loop import train
    from gankit.registries import build_config

    from conftest import TINY

    over = [
        "nets.G.arch=fastgan",
        "nets.D.arch=fastgan",
        "nets.G.ngf=4",
        "nets.D.ndf=4",
        "nets.G.nz=16",
        "data.image_size=32",
        "gan.loss=hinge",
        "train.steps=3",
        "train.log_every=1",
    ]
    run = train(build_config("dcgan-mnist", [*TINY, *over]), tmp_path / "r")
    rows = _rows(run)
    assert all(r["recon"] > 0 and math.isfinite(r["recon"]) for r in rows)


# --- WGAN: weight clipping with a momentum optimizer is warned about --------------------------


def test_clipped_critic_with_momentum_is_warned_about_in_one_line(caplog, monkeypatch):
    """Arjovsky et al. 2017: clipped WGANs become unstable at times with momentum (Adam with
    beta1 > 0) on the critic; they used RMSProp, as the wgan recipe does."""
    from gankit.gan import options
    from gankit.gan.options import clipping_with_momentum
    from gankit.registries import build_config

    assert clipping_with_momentum(build_config("wgan")) is None  # RMSprop without momentum
    assert clipping_with_momentum(build_config("wgan-gp")) is None  # a penalty, no clipping
    assert clipping_with_momentum(build_config("dcgan")) is None  # Adam, but no clipping
    no_momentum = ["optim.D.name=adam", "optim.D.betas=[0,0.9]"]
    assert clipping_with_momentum(build_config("wgan", no_momentum)) is None
    cases = {
        ("wgan", "optim.D.name=adam"): "optim.D is adam with betas[0]=0.5",
        ("wgan", "optim.G.name=sgd", "optim.G.momentum=0.9"): "optim.G is sgd with momentum=0.9",
        ("wgan", "optim.D.momentum=0.5"): "optim.D is rmsprop with momentum=0.5",
        ("dcgan", "gan.clip=0.02"): "(gan.clip=0.02) with momentum (optim.G is adam",
        ("dcgan", "gan.penalties=[clip:0.01]"): "(gan.penalties clip)",
    }
    for (recipe, *overrides), says in cases.items():
        message = clipping_with_momentum(build_config(recipe, overrides))
        assert message is not None and says in message and "\n" not in message
        assert "rmsprop" in message and "Arjovsky" in message

    monkeypatch.setattr(options, "_WARNED", set())
    caplog.clear()
    with caplog.at_level("WARNING", logger="gankit"):
        build_config("wgan", ["optim.D.name=adam"])
        build_config("wgan", ["optim.D.name=adam"])  # once per process, not once per parse
    warned = [r for r in caplog.records if "weight clipping" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelname == "WARNING"
