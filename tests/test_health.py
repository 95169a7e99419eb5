"""Training health: D winning after K logged steps, collapse of the previews, NaN, all recorded."""

import json

import pytest
import torch

from gankit.config import HealthConfig
from gankit.engine.health import HealthMonitor, preview_diversity, read_rows
from gankit.engine.loop import train
from gankit.engine.metrics_log import MetricsWriter
from gankit.errors import ConfigError, TrainingError
from gankit.gan.options import gan_advice
from gankit.registries import build_config

from conftest import TINY


class Sink:
    """Collects what the monitor writes to metrics.jsonl."""

    def __init__(self):
        self.values, self.events = [], []

    def write(self, step, values):
        self.values.append({"step": step, **values})

    def event(self, step, record):
        self.events.append({"step": step, **record})


WIN = {"d_real": 0.99, "d_fake": 0.01}
EVEN = {"d_real": 0.6, "d_fake": 0.4}


def monitor(sink=None, probabilities=True, **cfg):
    return HealthMonitor(HealthConfig(**cfg), sink or Sink(), probabilities, {"d_winning": "try X"})


def test_d_winning_fires_after_k_logged_steps_and_not_before(capsys):
    sink = Sink()
    m = monitor(sink, d_win_steps=3)
    for step in (10, 20):
        m.observe_row(step, WIN)
    assert sink.events == []
    m.observe_row(30, WIN)
    assert [(e["step"], e["event"]) for e in sink.events] == [(30, "d_winning")]
    assert "try X" in sink.events[0]["message"] and "D(x)" in sink.events[0]["message"]
    m.observe_row(40, WIN)  # the same episode: no second event
    assert len(sink.events) == 1
    m.observe_row(50, EVEN)  # a break resets the streak; a new episode is recorded again
    for step in (60, 70):
        m.observe_row(step, WIN)
    assert len(sink.events) == 1
    m.observe_row(80, WIN)
    assert [e["step"] for e in sink.events] == [30, 80]
    assert capsys.readouterr().out.count("warning: step") == 1  # printed once per kind


def test_d_winning_needs_both_conditions_and_probabilities():
    sink = Sink()
    m = monitor(sink, d_win_steps=1)
    m.observe_row(1, {"d_real": 0.99, "d_fake": 0.2})
    m.observe_row(2, {"d_real": 0.9, "d_fake": 0.01})
    m.observe_row(3, {"loss": 1.0})  # a classifier row
    assert sink.events == []
    wgan = monitor(sink, probabilities=False, d_win_steps=1)  # critic scores are unbounded
    wgan.observe_row(1, {"d_real": 5.0, "d_fake": -5.0})
    assert sink.events == []


def test_preview_diversity():
    same = torch.zeros(4, 1, 8, 8)
    assert preview_diversity(same) == 0.0
    assert preview_diversity(same[:1]) is None
    pair = torch.stack([-torch.ones(1, 8, 8), torch.ones(1, 8, 8)])
    assert preview_diversity(pair) == pytest.approx(2.0)  # the RMS distance of -1 and 1


def test_collapse_fires_on_a_diversity_drop():
    sink = Sink()
    m = monitor(sink, collapse_fraction=0.3, collapse_warmup=2)
    gen = torch.Generator().manual_seed(0)
    diverse = torch.rand(16, 1, 8, 8, generator=gen) * 2 - 1
    m.observe_previews(100, diverse * 0.5)
    m.observe_previews(200, diverse)  # the early value: the maximum of the first two
    m.observe_previews(300, diverse * 0.4)  # 0.4 of the early value: still fine
    assert sink.events == []
    collapsed = diverse[:1].expand(16, -1, -1, -1) + 0.01 * diverse
    m.observe_previews(400, collapsed)
    assert [(e["step"], e["event"]) for e in sink.events] == [(400, "collapse")]
    assert [v["step"] for v in sink.values] == [100, 200, 300, 400]
    assert all("preview_diversity" in v for v in sink.values)


def test_disabled_monitor_does_nothing():
    sink = Sink()
    m = monitor(sink, enabled=False, d_win_steps=1)
    m.observe_row(1, WIN)
    m.observe_previews(1, torch.zeros(4, 1, 4, 4))
    m.non_finite(1, "nan")
    assert sink.events == sink.values == []


def test_replay_restores_state_after_resume(capsys):
    rows = [
        {"step": 10, "preview_diversity": 1.0},
        {"step": 20, "event": "d_winning", "message": "..."},
        {"step": 20, **WIN},
        {"step": 30, "preview_diversity": 0.9},
        {"step": 99, "preview_diversity": 0.0},  # after the checkpoint: ignored
    ]
    sink = Sink()
    m = monitor(sink, collapse_warmup=2, d_win_steps=1)
    m.replay(rows, until=30)
    assert sink.events == [] and m.diversities == [1.0, 0.9]
    m.observe_row(40, WIN)  # the episode from before the resume goes on: no new event
    m.observe_previews(40, torch.zeros(4, 1, 4, 4))  # 0 < 0.3 of the early value 1.0
    assert [e["event"] for e in sink.events] == ["collapse"]


def test_events_land_in_metrics_jsonl(tmp_path):
    metrics = MetricsWriter(tmp_path)
    m = HealthMonitor(HealthConfig(d_win_steps=2), metrics, True)
    for step in (1, 2):
        metrics.write(step, WIN)
        m.observe_row(step, WIN)
    metrics.close()
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert rows[-1]["step"] == 2 and rows[-1]["event"] == "d_winning"
    assert rows[-1]["message"].startswith("the discriminator is winning")


def test_nan_is_recorded_before_the_loop_stops(tmp_path, monkeypatch):
    from gankit.tasks.gan import GANTask

    original = GANTask.step

    def poisoned(self, batches):
        out = original(self, batches)
        if self.g_step == 3:
            out["loss_d"] = torch.tensor(float("inf"))
        return out

    monkeypatch.setattr(GANTask, "step", poisoned)
    with pytest.raises(TrainingError):
        train(build_config("dcgan-mnist", [*TINY, "train.steps=5"]), tmp_path / "run")
    rows = read_rows(tmp_path / "run" / "metrics.jsonl")
    events = [r for r in rows if "event" in r and r["event"] != "start"]
    assert [(e["step"], e["event"]) for e in events] == [(3, "non_finite")]
    assert "loss_d became inf at step 3" in events[0]["message"]


def test_training_logs_preview_diversity(tmp_path):
    run = train(
        build_config("dcgan-mnist", [*TINY, "train.steps=4", "train.sample_every=2"]),
        tmp_path / "run",
    )
    lines = (run / "metrics.jsonl").read_text().splitlines()
    div = [json.loads(r) for r in lines if "preview_diversity" in r]
    assert [r["step"] for r in div] == [2, 4] and all(r["preview_diversity"] >= 0 for r in div)


def test_advice_is_concrete_for_the_config():
    plain = ["gan.label_smoothing=0", "gan.augment=[]", "nets.D.norm=batch"]
    dcgan = ["nets.G.arch=dcgan", "nets.D.arch=dcgan", "data.image_size=32"]
    cfg = build_config("dcgan-mnist", [*dcgan, *plain, "optim.D.lr=0.0004"])
    advice = gan_advice(cfg)
    assert "optim.D.lr=0.0002" in advice["d_winning"]
    assert "gan.label_smoothing=0.1" in advice["d_winning"]
    assert "nets.D.norm=spectral" in advice["collapse"]
    # mnist-dc's discriminator has no norm option: spectral norm is not suggested for it
    assert "spectral" not in gan_advice(build_config("dcgan-mnist"))["collapse"]
    smoothed = gan_advice(build_config("dcgan-mnist", ["gan.label_smoothing=0.2"]))
    assert "label_smoothing" not in smoothed["d_winning"]


def test_health_config_is_validated():
    with pytest.raises(ConfigError, match="d_win_fake"):
        build_config("dcgan-mnist", ["health.d_win_fake=0.99"])
    with pytest.raises(ConfigError, match="d_win_steps"):
        build_config("dcgan-mnist", ["health.d_win_steps=0"])


def test_d_too_weak_fires_when_d_sits_at_chance():
    """D(x) and D(G(z)) both near 0.5 for K logged steps: D cannot tell real from generated."""
    sink = Sink()
    m = monitor(sink, d_weak_steps=3)
    chance = {"d_real": 0.52, "d_fake": 0.48}
    for step in (10, 20):
        m.observe_row(step, chance)
    assert sink.events == []
    m.observe_row(30, chance)
    assert [(e["step"], e["event"]) for e in sink.events] == [(30, "d_weak")]
    assert "within 0.05 of 0.5 for 3" in sink.events[0]["message"]
    for step in (40, 50, 60):
        m.observe_row(step, EVEN)  # 0.6 / 0.4: D separates them a little, no event
    assert len(sink.events) == 1
    m2 = monitor(Sink(), probabilities=False, d_weak_steps=1)
    m2.observe_row(10, chance)  # a critic's scores are not probabilities: never judged
    assert not m2.active
    advice = gan_advice(build_config("dcgan-mnist", [*TINY, "gan.g_steps=2"]))["d_weak"]
    assert "optim.D.lr=" in advice and "gan.g_steps=1" in advice
    with pytest.raises(ConfigError, match="health.d_weak_margin=0.6"):
        build_config("dcgan-mnist", ["health.d_weak_margin=0.6"])
