"""CycleGAN through the generic loop: previews, falling cycle loss, bit-exact resume with pools and
the decay schedule, translating from the run directory alone."""

from __future__ import annotations

import shutil

import pytest
import torch

from gankit.cli import main
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.errors import ConfigError
from gankit.registries import build_config

from conftest import TINY_CYCLEGAN, cut_back, metrics_rows, write_domains


@pytest.fixture
def domains(tmp_path):
    return write_domains(tmp_path / "data")


def cfg(domains, *extra):
    return build_config("cyclegan-mnistm", [f"data.root={domains}", *TINY_CYCLEGAN, *extra])


def test_trains_and_previews_six_rows(domains, tmp_path):
    run = train(cfg(domains, "train.sample_every=2"), tmp_path / "run")
    last = metrics_rows(run)[-1]
    assert {"loss_G", "loss_cycle_A", "loss_idt_B", "loss_D_A", "loss_D_B"} <= last.keys()
    from PIL import Image

    grid = Image.open(run / "samples" / "step-000004.png")
    assert grid.height > 5 * 24  # six rows of three 24×24 images: real A | fake B | rec A | ...


def test_cycle_loss_falls(domains, tmp_path):
    fast = ("optim.G.lr=2e-3", "nets.G_A.ngf=8", "nets.G_B.ngf=8", "cyclegan.lambda_identity=0")
    run = train(cfg(domains, "train.steps=60", "train.log_every=10", *fast), tmp_path / "run")
    cycle = [r["loss_cycle_A"] for r in metrics_rows(run) if "loss_cycle_A" in r]
    assert cycle[-1] < 0.8 * cycle[0]


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_resume_is_bit_exact_with_pools_and_the_decay(domains, tmp_path, noise):
    run_cfg = cfg(
        domains, "train.steps=8", "train.ckpt_every=5", "cyclegan.lr_decay_start=0.25",
        "cyclegan.pool_size=2", f"cyclegan.cycle_noise={noise}",
    )  # fmt: skip
    straight = train(run_cfg, tmp_path / "a")
    resumed = train(run_cfg, cut_back(straight, 5, tmp_path / "b"), resume=True)
    a = load_checkpoint(latest_checkpoint(straight))
    b = load_checkpoint(latest_checkpoint(resumed))
    assert a["step"] == b["step"] == 8
    for k in ("G_A", "G_B", "D_A", "D_B"):
        for name, v in a["parts"]["nets"][k].items():
            assert torch.equal(v, b["parts"]["nets"][k][name]), f"nets.{k}.{name}"
    for name, v in a["parts"]["buffers"].items():
        assert torch.equal(v, b["parts"]["buffers"][name]), f"buffers.{name}"
    assert int(a["parts"]["buffers"]["pool_A_count"]) == 2  # the pool filled up and swapped
    lr_a = a["parts"]["optims"]["G"]["param_groups"][0]["lr"]
    lr_b = b["parts"]["optims"]["G"]["param_groups"][0]["lr"]
    assert lr_a == lr_b < 2e-4  # decaying from step 2 on


def first_row(domains, tmp_path, *extra):
    run = train(cfg(domains, "train.steps=1", "train.log_every=1", *extra), tmp_path)
    return next(r for r in metrics_rows(run) if "loss_G_A" in r)


def test_cycle_noise_reaches_only_the_cycle_terms(domains, tmp_path):
    plain = first_row(domains, tmp_path / "plain")
    noisy = first_row(domains, tmp_path / "noisy", "cyclegan.cycle_noise=0.5")
    for key in ("loss_G_A", "loss_G_B", "loss_idt_A", "loss_idt_B"):
        assert noisy[key] == pytest.approx(plain[key], rel=1e-6), key
    for key in ("loss_cycle_A", "loss_cycle_B"):
        assert abs(noisy[key] - plain[key]) > 1e-4, key


def test_negative_cycle_noise_is_refused(domains):
    with pytest.raises(ConfigError, match=r"cyclegan.cycle_noise=-0.1 must be >= 0"):
        cfg(domains, "cyclegan.cycle_noise=-0.1")


def test_translate_works_from_a_moved_run_directory(domains, tmp_path, capsys):
    run = train(cfg(domains, "nets.G_A.ngf=3", "nets.G_B.ngf=3"), tmp_path / "run")
    moved = tmp_path / "elsewhere" / "run"
    shutil.move(str(run), moved)
    shutil.rmtree(domains / "trainA")  # the training data is gone too
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                str(moved),
                str(domains / "testB"),
                "--direction",
                "BtoA",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (domains / "testB").iterdir()
    )
    assert "wrote 8 images" in capsys.readouterr().out
