"""The GAN game in phases: penalties as objects, D's input pipeline, lazy regularisation."""

from __future__ import annotations

import pytest
import torch

from gankit.engine.loop import train
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError
from gankit.gan.options import GanOptions
from gankit.gan.penalties import PENALTIES, R1, GradientPenalty, Penalty, WeightClip
from gankit.gan.phases import compensate
from gankit.gan.pipeline import Ada, DiffAugment, InstanceNoise
from gankit.registries import build_config
from gankit.tasks.gan import GANTask
from gankit.tasks.gan_build import build_phases

from conftest import TINY, metrics_rows


def _task(over: list[str]) -> GANTask:
    cfg = build_config("dcgan-mnist", [*TINY, *over])
    return GANTask(cfg, Runtime(torch.device("cpu")), {})


def _rows(run) -> list[dict]:
    return [r for r in metrics_rows(run) if "loss_d" in r]


def test_loss_names_bring_their_papers_penalties_and_options_override_them():
    wgan = _task(["gan.loss=wgan"]).phases.penalties
    assert [(type(p), p.weight) for p in wgan] == [(WeightClip, 0.01)]
    gp = _task(["gan.loss=wgan-gp"]).phases.penalties
    assert [(type(p), p.weight, p.every) for p in gp] == [(GradientPenalty, 10.0, 1)]
    mine = _task(["gan.loss=wgan-gp", "gan.gp_weight=3", "gan.r1=2", "gan.reg_every=4"])
    assert [(p.name, p.weight, p.every) for p in mine.phases.penalties] == [
        ("r1", 1.0, 4),  # gamma / 2
        ("gp", 3.0, 1),
    ]
    assert _task([]).phases.penalties == []


def test_the_pipeline_follows_gan_d_input_and_refuses_a_transform_it_leaves_out():
    on = ["gan.ada=fixed", "gan.ada_p=0.2", "gan.augment=color", "gan.instance_noise=0.1"]
    task = _task([*on, "gan.d_input=noise,diffaugment,ada"])
    kinds = [type(t) for t in task.game.augment.transforms]
    assert kinds == [InstanceNoise, DiffAugment, Ada]
    assert set(task.parts.buffers) == {"fixed_z", "g_step", "ada"}
    with pytest.raises(ConfigError, match="gan.d_input=diffaugment,noise leaves out ada"):
        _task([*on, "gan.d_input=diffaugment,noise"])
    with pytest.raises(ConfigError, match="gan.d_input: 'blur' is unknown"):
        _task(["gan.d_input=ada,blur"])


def test_instance_noise_anneals_with_the_generator_step():
    t = InstanceNoise(0.4, 10, lambda draw, n: draw(n))
    t.begin(5)
    assert t.std == pytest.approx(0.2)
    t.begin(10)
    assert t.std == 0 and torch.equal(t(torch.ones(2, 1, 2, 2)), torch.ones(2, 1, 2, 2))


def test_compensation_is_the_references_for_adam_and_refused_for_others():
    from gankit.config import OptimConfig

    adam = compensate(OptimConfig(name="adam", lr=0.002, betas=(0.0, 0.99)), 16, "optim.D")
    assert adam.lr == pytest.approx(0.002 * 16 / 17)  # stylegan2-ada: 0.0018823...
    assert adam.betas[1] == pytest.approx(0.99 ** (16 / 17))
    assert compensate(OptimConfig(lr=0.1), 1, "optim.D").lr == 0.1
    with pytest.raises(ConfigError, match="optim.D.name=sgd"):
        compensate(OptimConfig(name="sgd", lr=0.1), 4, "optim.D")


def test_separate_lazy_regularisation_is_its_own_d_update_every_k_steps(tmp_path):
    over = ["gan.r1=1", "gan.reg_every=4", "gan.lazy_reg=separate", "nets.D.norm=none"]
    task = _task(over)
    assert [p.name for p in task.phases.critic] == ["D", "Dreg"]
    lr = task.cfg.optim["D"].lr
    assert task.opt_d.param_groups[0]["lr"] == pytest.approx(lr * 4 / 5)
    run = train(
        build_config("dcgan-mnist", [*TINY, *over, "train.steps=8", "train.log_every=1"]),
        tmp_path / "r",
    )
    from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint

    state = load_checkpoint(latest_checkpoint(run))["parts"]["optims"]["D"]["state"]
    assert int(next(iter(state.values()))["step"]) == 8 + 2  # main updates + steps 0 and 4
    assert [("r1" in r) for r in _rows(run)] == [True, False, False, False] * 2


def test_fused_lazy_regularisation_keeps_one_d_update_per_step(tmp_path):
    over = ["gan.r1=1", "gan.reg_every=4", "nets.D.norm=none", "train.steps=8"]
    task = _task(over)
    assert [p.name for p in task.phases.critic] == ["D"]
    assert task.opt_d.param_groups[0]["lr"] == task.cfg.optim["D"].lr
    run = train(build_config("dcgan-mnist", [*TINY, *over]), tmp_path / "r")
    from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint

    state = load_checkpoint(latest_checkpoint(run))["parts"]["optims"]["D"]["state"]
    assert int(next(iter(state.values()))["step"]) == 8


def test_a_separate_regularisation_needs_one_interval_per_network():
    from gankit.gan.phases import Regularise

    with pytest.raises(ConfigError, match="one interval"):
        Regularise("D", [R1(1.0, 4), R1(1.0, 8)])


class _OutputNorm(Penalty):
    """A generator-side penalty for the test: the mean square of G's images."""

    name, net = "out_norm", "G"

    def __call__(self, game, batch):
        return batch.fake.float().pow(2).mean()


def test_a_generator_penalty_plugs_in_as_a_greg_phase(monkeypatch):
    """Adding a penalty is a class and a registry line; a G penalty gets the Greg phase."""
    monkeypatch.setitem(PENALTIES, "out_norm", _OutputNorm)
    cfg = build_config("dcgan-mnist", [*TINY, "gan.lazy_reg=separate"])
    phases = build_phases(
        cfg.section(GanOptions), torch.nn.Linear(1, 1), [_OutputNorm(1.0, every=2)]
    )
    assert [p.name for p in phases.generator] == ["G", "Greg"]
    assert [p.name for p in phases.critic] == ["D"]
    fused = build_phases(
        build_config("dcgan-mnist", TINY).section(GanOptions), torch.nn.Linear(1, 1), []
    )
    assert [p.name for p in fused.generator] == ["G"]

    from gankit.tasks.base import Streams

    task = _task(["gan.lazy_reg=separate"])
    task.phases = build_phases(task.cfg.section(GanOptions), task.D, [_OutputNorm(1.0, every=2)])
    real = iter(lambda: torch.rand(4, 1, 16, 16) * 2 - 1, None)
    outs = [task.step(Streams({"real": real})) for _ in range(3)]
    assert ["out_norm" in o for o in outs] == [True, False, True]
    g_state = next(iter(task.opt_g.state.values()))
    assert int(g_state["step"]) == 3 + 2  # G's main updates and the two Greg updates


def test_the_worked_example_penalty_is_listed_by_name_and_trained(tmp_path):
    """docs/design.md, "Add a penalty": ZeroCentredGP is one class and one registry line."""
    from gankit.gan.penalties import ZeroCentredGP

    task = _task(["gan.penalties=zero-gp:10,r1:2:4"])
    pens = task.phases.penalties
    assert [(type(p), p.weight, p.every) for p in pens] == [(ZeroCentredGP, 10.0, 1), (R1, 2.0, 4)]
    over = ["gan.penalties=zero-gp:10", "nets.D.norm=none", "train.steps=3", "train.log_every=1"]
    run = train(build_config("dcgan-mnist", [*TINY, *over]), tmp_path / "r")
    assert all(r["zero_gp"] >= 0 for r in _rows(run))
    with pytest.raises(ConfigError, match="'zero_gp' is unknown: did you mean zero-gp"):
        _task(["gan.penalties=zero_gp:1"])
    with pytest.raises(ConfigError, match="must be NAME:WEIGHT or NAME:WEIGHT:EVERY"):
        _task(["gan.penalties=r1:-1"])


def test_the_zero_centred_gp_is_the_squared_gradient_norm_at_interpolates():
    from gankit.gan.game import PhaseBatch
    from gankit.gan.penalties import ZeroCentredGP

    class Linear:  # D(x) = <w, x>: the gradient is w everywhere, so the penalty is |w|^2
        w = torch.arange(4.0).view(1, 1, 2, 2)

        def discriminate(self, x, y, compiled=True):
            return (x * self.w).flatten(1).sum(1), None

    batch = PhaseBatch(torch.rand(3, 1, 2, 2), None, torch.rand(3, 1, 2, 2), None, 0, True)
    assert ZeroCentredGP(1.0)(Linear(), batch).item() == pytest.approx(0 + 1 + 4 + 9)


def test_g_steps_updates_g_that_many_times_each_on_new_noise():
    from gankit.tasks.base import Streams

    task = _task(["gan.g_steps=3"])
    real = iter(lambda: torch.rand(4, 1, 16, 16) * 2 - 1, None)
    draws = []
    original = task.game.redraw
    task.game.redraw = lambda b: draws.append(1) or original(b)
    for _ in range(2):
        task.step(Streams({"real": real}))
    assert int(next(iter(task.opt_g.state.values()))["step"]) == 6  # 3 per step
    assert int(next(iter(task.opt_d.state.values()))["step"]) == 2
    assert len(draws) == 4  # the first G update of a step reuses D's fakes
    with pytest.raises(ConfigError, match="gan.g_steps=0 must be > 0"):
        _task(["gan.g_steps=0"])


def test_watched_gradient_norms_are_logged_every_k_steps_and_equal_r1_when_penalised(tmp_path):
    from gankit.gan.game import PhaseBatch
    from gankit.gan.phases import _watched_grads

    class Linear:  # D(x) = <w, x>: |grad|^2 = |w|^2 on any image, real or generated
        w = torch.arange(4.0).view(1, 1, 2, 2)

        def discriminate(self, x, y, compiled=True):
            return (x * self.w).flatten(1).sum(1), None

        def augment(self, x):
            return x

    batch = PhaseBatch(torch.rand(3, 1, 2, 2), None, torch.rand(3, 1, 2, 2), None, 0, True)
    got = _watched_grads(Linear(), batch)
    assert got["grad_real"].item() == pytest.approx(14) and got["grad_fake"].item() == 14

    over = ["gan.watch_grads=2", "gan.r1=1", "nets.D.norm=none", "train.steps=6"]
    over += ["train.log_every=1"]
    rows = _rows(train(build_config("dcgan-mnist", [*TINY, *over]), tmp_path / "r"))
    watched = [r for r in rows if "grad_real" in r]
    assert [r["step"] for r in watched] == [1, 3, 5]  # generator steps 0, 2, 4 (rows count from 1)
    assert all(r["grad_fake"] > 0 for r in watched)
    # the monitor measures what R1 penalises: same images, same D, before the update
    assert all(r["grad_real"] == pytest.approx(r["r1"], rel=1e-4) for r in watched)
