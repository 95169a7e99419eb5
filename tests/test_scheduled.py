"""gan.schedules: R3GAN's cosine burn-in of gamma, lr and beta2, on the live objects, resumable."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError
from gankit.gan.scheduled import Schedule, parse_schedules
from gankit.registries import build_config
from gankit.tasks.base import Streams
from gankit.tasks.gan import GANTask

from conftest import TINY


def test_the_cosine_at_zero_half_end_and_after():
    s = Schedule("r1", "cosine", 2.0, 0.2, 100.0)
    assert s.value(0) == 2.0
    assert s.value(50) == pytest.approx(1.1)  # half way: the mean of start and end
    assert s.value(25) == pytest.approx(2.0 + (0.2 - 2.0) * (1 - math.cos(math.pi / 4)) / 2)
    assert s.value(100) == 0.2 and s.value(1e6) == 0.2
    assert Schedule("lr", "linear", 1.0, 0.0, 10.0).value(2.5) == 0.75


RPGAN = ["gan.loss=rpgan", "gan.r1=1", "gan.r2=1", "nets.D.norm=none", "gan.label_smoothing=0"]
SCHEDULES = (
    "gan.schedules=[r1:cosine:1:0.1:0.016,lr:cosine:0.001:0.0001:0.016,beta2:linear:0.9:0.99:0.016]"
)


def test_scheduled_values_reach_the_penalties_and_optimizers():
    cfg = build_config("dcgan-mnist", [*TINY, *RPGAN, SCHEDULES])  # batch 4: 2 kimg per 500 steps
    task = GANTask(cfg, Runtime(torch.device("cpu")), {})
    real = iter(lambda: torch.rand(4, 1, 16, 16) * 2 - 1, None)
    rows = [task.step(Streams({"real": real})) for _ in range(5)]
    assert float(rows[0]["sched_r1"]) == 1.0 and float(rows[4]["sched_r1"]) == pytest.approx(0.1)
    assert float(rows[2]["sched_r1"]) == pytest.approx(0.55)  # 8 of 16 images: half way
    r1 = next(p for p in task.phases.penalties if p.name == "r1")
    assert r1.weight == pytest.approx(0.05)  # gamma/2 at the end
    for opt in (task.opt_g, task.opt_d):
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
        assert opt.param_groups[0]["betas"][1] == pytest.approx(0.99)


def test_a_run_resumed_mid_schedule_is_bit_exact(tmp_path):
    over = [*TINY, *RPGAN, SCHEDULES.replace("0.016", "0.024")]
    straight = train(build_config("dcgan-mnist", [*over, "train.steps=8"]), tmp_path / "a")
    first = train(build_config("dcgan-mnist", [*over, "train.steps=3"]), tmp_path / "b")
    resumed = train(build_config("dcgan-mnist", [*over, "train.steps=8"]), first, resume=True)
    sa = load_checkpoint(latest_checkpoint(straight))["parts"]
    sb = load_checkpoint(latest_checkpoint(resumed))["parts"]
    for net in ("G", "D"):
        for k, v in sa["nets"][net].items():
            assert torch.equal(v, sb["nets"][net][k]), f"{net}.{k} differs after resume"


def test_bad_schedules_are_one_line_errors():
    assert parse_schedules([]) == []
    for item, match in (
        ("r1:cosine:1:0.1", "must be NAME:SHAPE:START:END:KIMG"),
        ("gamma:cosine:1:0.1:5", "must be NAME:SHAPE"),
        ("r1:cosine:1:x:5", "needs numbers"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_schedules([item])
    for over, match in (
        (["gan.schedules=[r1:cosine:1:0.1:5]"], "r1 needs gan.r1 > 0"),
        (["gan.schedules=[ada_p:linear:0:0.5:5]"], "ada_p needs gan.ada=fixed"),
        ([*RPGAN, "gan.lazy_reg=separate", "gan.reg_every=4", "gan.schedules=[lr:cosine:1e-3:1e-4:5]"],
         "lr needs gan.lr_decay_start=null and gan.lazy_reg=fused"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            build_config("dcgan-mnist", [*TINY, *over])
