"""The training loop: run directory contents, exact resume, NaN guard, signals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.errors import ConfigError, TrainingError
from gankit.registries import build_config

from conftest import TINY, metrics_rows


def cfg_for(*extra, recipe="dcgan-mnist"):
    return build_config(recipe, [*TINY, *extra])


def scalar_rows(run):
    """The logged training rows of metrics.jsonl (not preview_diversity or health events)."""
    rows = metrics_rows(run)
    return [r for r in rows if "loss_d" in r]


def test_run_directory_contents(tmp_path):
    run = train(
        cfg_for("train.steps=6", "train.log_every=2", "train.sample_every=3", "train.ckpt_every=4"),
        tmp_path / "run",
    )
    assert (run / "config.yaml").is_file() and (run / "run.log").is_file()
    rows = scalar_rows(run)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "img_per_s"} <= set(rows[0])
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000003.png",
        "step-000006.png",
    ]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-000004.pt",
        "step-000006.pt",
    ]
    assert any((run / "tb").iterdir())


def test_losses_move_and_discriminator_learns(tmp_path):
    run = train(cfg_for("train.steps=40", "train.log_every=5", "data.limit=256"), tmp_path / "run")
    rows = scalar_rows(run)
    assert rows[-1]["loss_d"] < rows[0]["loss_d"]  # D quickly learns to separate real and fake


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["gan.loss=wgan-gp", "gan.d_steps=2", "gan.ema=0.9"],
        ["gan.loss=wgan", "gan.d_schedule=wgan"],
        # ADA's p and accumulators, lazy R1/R2 on the step count, the relativistic G loss
        ["gan.ada=adaptive", "gan.ada_kimg=0.01", "gan.ada_interval=2", "gan.loss=rpgan"]
        + ["gan.r1=1", "gan.r2=1", "gan.reg_every=2", "nets.D.norm=none"],
    ],
)
def test_stop_and_resume_is_bit_exact(tmp_path, extra):
    straight = train(cfg_for("train.steps=8", *extra), tmp_path / "a")
    first = train(cfg_for("train.steps=5", *extra), tmp_path / "b")
    resumed = train(cfg_for("train.steps=8", *extra), first, resume=True)
    sa = load_checkpoint(latest_checkpoint(straight))["parts"]
    sb = load_checkpoint(latest_checkpoint(resumed))["parts"]
    for net in ("G", "D"):
        for k, v in sa["nets"][net].items():
            assert torch.equal(v, sb["nets"][net][k]), f"{net}.{k} differs after resume"
    assert int(sa["buffers"]["g_step"]) == int(sb["buffers"]["g_step"]) == 8


def test_wgan_clips_critic_weights(tmp_path):
    run = train(cfg_for("train.steps=2", "gan.loss=wgan", "gan.d_steps=3"), tmp_path / "run")
    d = load_checkpoint(latest_checkpoint(run))["parts"]["nets"]["D"]
    weights = [v for k, v in d.items() if k.endswith("weight")]
    assert max(w.abs().max().item() for w in weights) <= 0.01 + 1e-7


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from gankit.tasks.gan import GANTask

    original = GANTask.step

    def poisoned(self, batches):
        out = original(self, batches)
        if self.g_step == 5:
            out["loss_g"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(GANTask, "step", poisoned)
    with pytest.raises(TrainingError, match="loss_g became nan at step 5"):
        train(cfg_for("train.steps=10", "train.ckpt_every=2"), tmp_path / "run")
    assert latest_checkpoint(tmp_path / "run").name == "step-000004.pt"


def test_sigint_leaves_a_checkpoint_that_resumes(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "gankit.cli",
        "train",
        "dcgan-mnist",
        *TINY,
        "train.steps=100000",
        "train.log_every=1",
        "--out",
        str(run),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        m = run / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # a clean stop by Ctrl-C: checkpoint written, resumable
    assert "--resume" in err + out
    step = load_checkpoint(latest_checkpoint(run))["step"]
    assert step >= 3
    env = dict(os.environ)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gankit.cli",
            "train",
            "--resume",
            str(run),
            f"train.steps={step + 2}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(latest_checkpoint(run))["step"] == step + 2


def test_epochs_set_the_number_of_steps(tmp_path):
    run = train(cfg_for("train.epochs=2", "data.limit=20", "gan.d_steps=2"), tmp_path / "run")
    # 2 epochs of 20 images at 4 images per batch and 2 batches per step: 5 steps
    assert load_checkpoint(latest_checkpoint(run))["step"] == 5
    assert "steps: 5" in (run / "config.yaml").read_text()


def test_speed_switches_run_on_cpu(tmp_path):
    run = train(
        cfg_for("train.steps=2", "train.channels_last=true", "train.autocast=bf16"),
        tmp_path / "run",
    )
    rows = scalar_rows(run)
    assert all(torch.isfinite(torch.tensor(r["loss_d"])) for r in rows)


@pytest.mark.slow
def test_compile_switch(tmp_path):
    run = train(cfg_for("train.steps=2", "train.compile=true"), tmp_path / "run")
    assert load_checkpoint(latest_checkpoint(run))["step"] == 2


def test_linear_lr_decay_reaches_zero_and_resumes_exactly(tmp_path, monkeypatch):
    from gankit.tasks.gan import GANTask

    extra = ("train.steps=8", "gan.lr_decay_start=0.5")
    run = train(cfg_for(*extra), tmp_path / "a")
    state = load_checkpoint(latest_checkpoint(run))["parts"]
    for opt in ("G", "D"):
        assert state["optims"][opt]["param_groups"][0]["lr"] == 0.0

    original = GANTask.step

    def term_at_5(self, batches):  # a real SIGTERM in the middle of the run
        out = original(self, batches)
        if self.g_step == 5:
            signal.raise_signal(signal.SIGTERM)
        return out

    monkeypatch.setattr(GANTask, "step", term_at_5)
    stopped = train(cfg_for(*extra), tmp_path / "b")
    assert load_checkpoint(latest_checkpoint(stopped))["step"] == 5
    monkeypatch.setattr(GANTask, "step", original)
    resumed = train(cfg_for(*extra), stopped, resume=True)
    sb = load_checkpoint(latest_checkpoint(resumed))["parts"]
    assert all(torch.equal(v, sb["nets"]["G"][k]) for k, v in state["nets"]["G"].items())


# --- resume with changes, one run per directory --------------------------------------------


def test_resume_applies_a_new_learning_rate_and_records_it(tmp_path, monkeypatch):
    from gankit.tasks.gan import GANTask

    run = train(cfg_for("train.steps=4", "train.log_every=1"), tmp_path / "run")
    seen: list[tuple[int, float, float]] = []
    original = GANTask.step

    def spy(self, batches):
        seen.append(
            (int(self.g_step), self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"])
        )
        return original(self, batches)

    monkeypatch.setattr(GANTask, "step", spy)
    train(cfg_for("train.steps=6", "train.log_every=1", "optim.G.lr=1e-5"), run, resume=True)
    assert seen == [(4, 1e-5, 1e-3), (5, 1e-5, 1e-3)]  # D keeps the recipe's 1e-3
    state = load_checkpoint(latest_checkpoint(run))
    assert state["parts"]["optims"]["G"]["param_groups"][0]["lr"] == 1e-5
    assert state["config"]["optim"]["G"]["lr"] == 1e-5
    changes = [json.loads(line) for line in (run / "changes.jsonl").read_text().splitlines()]
    assert {(c["step"], c["key"], c["old"], c["new"]) for c in changes} == {
        (4, "optim.G.lr", 1e-3, 1e-5),
        (4, "train.steps", 4, 6),
    }
    rows = metrics_rows(run)
    assert [r["key"] for r in rows if r.get("event") == "config_change"] == [
        "optim.G.lr",
        "train.steps",
    ]


def test_resume_with_a_new_decay_length_follows_it(tmp_path):
    run = train(cfg_for("train.steps=4", "gan.lr_decay_start=0.5"), tmp_path / "run")
    train(cfg_for("train.steps=8", "gan.lr_decay_start=0.5"), run, resume=True)
    # decay from step 4 of 8 on: after 8 steps the factor is 0; with the old length it was 0 at 4
    lrs = load_checkpoint(latest_checkpoint(run))["parts"]["optims"]["G"]["param_groups"]
    assert lrs[0]["lr"] == 0.0
    state = load_checkpoint(run / "checkpoints" / "step-000004.pt")["parts"]
    assert state["optims"]["G"]["param_groups"][0]["lr"] == 0.0  # the first run's own end


def test_structural_change_on_resume_is_refused_and_leaves_the_run(tmp_path, capsys):
    from gankit.cli import main

    run = tmp_path / "run"
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=2", "--out", str(run)]) == 0
    before = (run / "config.yaml").read_text()
    for override, key in (
        ("nets.G.nz=9", "nets.G.nz"),
        ("data.image_size=32", "data.image_size"),
        ("train.batch_size=8", "train.batch_size"),
        ("gan.ema=0", "gan.ema"),  # switching the EMA off (its decay is tunable)
        ("optim.D.name=sgd", "optim.D.name"),
        ("data.source=mnist", "data.source"),
    ):
        capsys.readouterr()
        assert main(["train", "--resume", str(run), override]) == 2, override
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and key in err and "\n" not in err, err
    assert (run / "config.yaml").read_text() == before
    assert not (run / "changes.jsonl").exists()


def test_training_into_an_existing_run_is_refused(tmp_path, capsys):
    from gankit.cli import main

    run = tmp_path / "run"
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=2", "--out", str(run)]) == 0
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "tb" not in p.parts}
    capsys.readouterr()
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=1", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and "--resume" in err and "\n" not in err
    assert all(p.read_bytes() == data for p, data in files.items())
    (tmp_path / "empty").mkdir()  # an empty folder is not a run: it may be trained into
    assert (
        main(["train", "dcgan-mnist", *TINY, "train.steps=1", "--out", str(tmp_path / "empty")])
        == 0
    )


def test_init_from_loads_the_weights_and_starts_fresh(tmp_path, capsys):
    from gankit.cli import main

    src = train(cfg_for("train.steps=3"), tmp_path / "src")
    run = train(cfg_for("train.steps=1", "gan.loss=hinge"), tmp_path / "ft", init_from=src)
    a = load_checkpoint(latest_checkpoint(src))["parts"]
    b = load_checkpoint(latest_checkpoint(run))["parts"]
    assert int(b["buffers"]["g_step"]) == 1  # a new run: its own step count
    assert b["optims"]["G"]["state"][0]["step"] == 1  # fresh optimizer state
    moved = [
        k
        for k, v in a["nets"]["G"].items()
        if v.is_floating_point() and not torch.equal(v, b["nets"]["G"][k])
    ]
    assert moved  # one step of fine-tuning moved the weights from the source's
    rows = metrics_rows(run)
    assert [r.get("event") for r in rows[:2]] == ["start", "init_from"]
    assert rows[1]["from_step"] == 3
    capsys.readouterr()
    code = main(
        [
            "train",
            "dcgan-mnist",
            *TINY,
            "nets.G.ngf=8",
            "--init-from",
            str(src),
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2 and "nets.G.ngf is 4 there and 8 here" in capsys.readouterr().err


def test_non_finite_check_needs_no_sync_per_step(tmp_path, monkeypatch):
    """The guard reads the device flag only at log/preview/checkpoint steps."""
    from gankit.engine import guard

    reads = []
    original = guard.FiniteGuard.check

    def counting(self, *a, **k):
        reads.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(guard.FiniteGuard, "check", counting)
    train(
        cfg_for(
            "train.steps=20", "train.log_every=10", "train.sample_every=20", "train.ckpt_every=20"
        ),
        tmp_path / "r",
    )
    assert len(reads) <= 4  # steps 10 and 20 (log), 20 (preview), 20 (checkpoint) - not 20


def test_train_minutes_stops_early_with_a_checkpoint_and_a_last_preview(tmp_path):
    run = tmp_path / "run"
    train(cfg_for("train.steps=100000", "train.minutes=0.02", "train.sample_every=100000"), run)
    step = int(latest_checkpoint(run).stem.split("-")[1])
    assert 0 < step < 100000  # stopped by the clock, not by train.steps
    assert (run / "samples" / f"step-{step:06d}.png").is_file()  # the end-of-run preview
    assert f"train.minutes=0.02 reached at step {step}" in (run / "run.log").read_text()
    with pytest.raises(ConfigError, match="train.minutes=0"):
        cfg_for("train.minutes=0")
