"""The Task protocol, driven by the generic loop with a toy task that is not a GAN.

``ToyTask`` is the worked example of docs/design.md ("Adding a task"): three networks, two
optimizers, two streams, a buffer sized from the first batch, its own options section. Nothing in
the loop, the checkpoint code or the config parser knows it; registering it is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.config import OptimConfig
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.engine.runtime import Runtime
from gankit.errors import CheckpointError, ConfigError
from gankit.nets import build_net
from gankit.registries import build_config
from gankit.tasks import TASKS
from gankit.tasks.base import Parts, Streams, StreamSpec, Task, TaskInfo, make_optimizer


@dataclass
class ToyOptions:
    """``toy.*``: the weight of the encoder's matching loss."""

    match_weight: float = 0.5


class ToyTask(Task[ToyOptions]):
    """G makes images from noise; D tells them from ``real``; E matches them to ``other``.

    Optimizer ``G`` trains G and E together, optimizer ``D`` trains D. The buffer ``pool`` keeps
    the last two fakes; ``centre`` is the mean of the first batch (a part sized from data).
    """

    name = "toy"
    Options = ToyOptions
    networks = {"G": ("generator", "mlp"), "D": ("discriminator", "mlp"), "E": ("discriminator", "mlp")}  # fmt: skip
    optimizers = {"G": OptimConfig(lr=1e-3), "D": OptimConfig(lr=1e-3)}
    needs_first_batch = True

    @classmethod
    def streams(cls, cfg) -> dict[str, StreamSpec]:
        return {"real": StreamSpec(cfg.data), "other": StreamSpec(cfg.data)}

    @classmethod
    def validate(cls, cfg) -> None:
        if cls.options(cfg).match_weight < 0:
            raise ConfigError(f"toy.match_weight={cls.options(cfg).match_weight} must be >= 0")

    def __init__(self, cfg, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        size, ch = cfg.data.image_size, cfg.data.channels
        nets = {k: build_net(kind, cfg.nets[k], size, ch) for k, (kind, _) in self.networks.items()}
        params = [*nets["G"].parameters(), *nets["E"].parameters()]
        self.parts = Parts(
            nets=nets,
            optims={
                "G": make_optimizer(params, cfg.optim["G"]),
                "D": make_optimizer(nets["D"].parameters(), cfg.optim["D"]),
            },
            buffers={
                "pool": torch.zeros(2, ch, size, size),
                "centre": first["real"].mean(0),
                "steps": torch.zeros((), dtype=torch.int64),
            },
        )
        self.info = TaskInfo(progress_keys=("loss_d", "loss_g"), diversity_row="fake")

    def step(self, batches: Streams) -> dict[str, Tensor]:
        G, D, E = (self.parts.nets[k] for k in "GDE")
        opt_g, opt_d = self.parts.optims["G"], self.parts.optims["D"]
        real, other = next(batches["real"]), next(batches["other"])
        fake = G(torch.randn(real.shape[0], self.cfg.nets["G"].nz))
        loss_d = F.softplus(D(fake.detach())).mean() + F.softplus(-D(real)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        match = (E(fake) - E(other - self.parts.buffers["centre"])).pow(2).mean()
        loss_g = F.softplus(-D(fake)).mean() + self.options(self.cfg).match_weight * match
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        self.parts.buffers["pool"].copy_(fake[:2].detach())
        self.parts.buffers["steps"] += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "match": match.detach()}

    def previews(self) -> dict[str, Tensor]:
        return {"fake": self.parts.buffers["pool"].clone()}


TOY = [
    "task=toy",
    "nets.G.hidden=16",
    "nets.G.nz=4",
    "nets.D.hidden=8",
    "nets.E.hidden=8",
    "train.batch_size=4",
    "train.progress=false",
    "train.device=cpu",
    "train.log_every=2",
    "train.sample_every=3",
    "data.limit=32",
]


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """Config builder for the toy task, registered for the test (one line: TASKS["toy"])."""
    monkeypatch.setitem(TASKS, "toy", ToyTask)
    recipe = tmp_path / "toy.yaml"  # its own recipe: a GAN recipe's gan section would not fit
    recipe.write_text(
        "description: toy\ndata: {source: builtin:mnist, image_size: 28, channels: 1, fit: pad}\n"
    )
    return lambda *extra: build_config(str(recipe), [*TOY, *extra])


def test_toy_config_has_its_sections_and_checks(toy):
    cfg = toy("toy.match_weight=2", "optim.D.lr=5e-4")
    assert (
        cfg.section(ToyOptions).match_weight == 2
        and cfg.optim["D"].lr == 5e-4
        and cfg.optim["G"].lr == 1e-3
    )
    assert sorted(cfg.nets) == ["D", "E", "G"] and cfg.nets["E"].hidden == 8
    with pytest.raises(ConfigError, match="toy.match_weight=-1"):
        toy("toy.match_weight=-1")
    with pytest.raises(ConfigError, match="belongs to task gan"):
        toy("gan.loss=hinge")


def test_three_nets_two_optimizers_and_buffers_resume_bit_exact(toy, tmp_path):
    straight = train(toy("train.steps=8"), tmp_path / "a")
    first = train(toy("train.steps=5", "train.ckpt_every=5"), tmp_path / "b")
    resumed = train(toy("train.steps=8"), first, resume=True)
    a = load_checkpoint(latest_checkpoint(straight))
    b = load_checkpoint(latest_checkpoint(resumed))
    assert a["step"] == b["step"] == 8 and sorted(a["streams"]) == ["other", "real"]
    for k in "GDE":
        for name, v in a["parts"]["nets"][k].items():
            assert torch.equal(v, b["parts"]["nets"][k][name]), f"nets.{k}.{name}"
    for k in "GD":
        for i, s in a["parts"]["optims"][k]["state"].items():
            assert torch.equal(s["exp_avg"], b["parts"]["optims"][k]["state"][i]["exp_avg"])
    for name, v in a["parts"]["buffers"].items():
        assert torch.equal(v, b["parts"]["buffers"][name]), f"buffers.{name}"
    assert int(a["parts"]["buffers"]["steps"]) == 8
    assert (straight / "samples" / "step-000006.png").is_file()


def test_parts_that_do_not_match_are_one_line_errors(toy, tmp_path):
    run = train(toy("train.steps=2"), tmp_path / "a")
    state = load_checkpoint(latest_checkpoint(run))
    task = ToyTask(
        toy("train.steps=2"), Runtime(torch.device("cpu")), {"real": torch.zeros(1, 1, 28, 28)}
    )
    del state["parts"]["buffers"]["pool"]
    with pytest.raises(CheckpointError, match="checkpoint buffers are") as e:
        task.parts.load_state_dict(state["parts"])
    assert "\n" not in str(e.value)
    state = load_checkpoint(latest_checkpoint(run))
    state["parts"]["buffers"]["pool"] = torch.zeros(3, 1, 28, 28)
    with pytest.raises(CheckpointError, match="part buffers.pool does not match"):
        task.parts.load_state_dict(state["parts"])
