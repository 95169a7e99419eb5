"""The 2-D lab: mixtures, VEEGAN scoring on hand-made points, training, pictures, the command."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.errors import ConfigError
from gankit.toy.lab import ToyOptions, train_toy
from gankit.toy.mixtures import grid25, mixture, ring8, score, spiral
from gankit.toy.plots import xy_dynamics


def test_the_ring_has_eight_distinct_modes_and_the_mixtures_their_sizes():
    modes = ring8().modes
    d = torch.cdist(modes, modes) + torch.eye(8) * 9
    assert d.min() > 0.7  # neighbours 2·sin(π/8) = 0.765 apart: none repeated
    torch.testing.assert_close(modes.norm(dim=1), torch.ones(8))
    assert len(grid25().modes) == 25 and len(spiral().modes) == 20
    sp = spiral().modes
    assert (torch.cdist(sp, sp) + torch.eye(20) * 9).min() > 6 * spiral().std
    with pytest.raises(ConfigError, match="ring8, grid25, spiral"):
        mixture("ring7")


def test_mode_counting_on_hand_made_points():
    data = ring8()
    modes = data.modes
    # 3 modes hit exactly, one just inside 3σ, one just outside, 5 points far from everything
    pts = torch.cat(
        [
            modes[[0, 1, 2]],
            modes[3:4] + torch.tensor([[2.9 * data.std, 0.0]]),
            modes[4:5] + torch.tensor([[0.0, 3.1 * data.std]]),
            torch.zeros(5, 2),
        ]
    )
    s = score(pts, data)
    assert (s.modes, s.total) == (4, 8)
    assert s.high_quality == pytest.approx(4 / 10)
    # many samples on one mode count as one mode
    s = score(modes[[5]].repeat(100, 1), data)
    assert (s.modes, s.high_quality) == (1, 1.0)
    # samples from the mixture itself: every mode, ~99.7 % · (1 - e^{-4.5})... in 2-D: 1 - e^{-9/2}
    s = score(data.sample(2500, torch.Generator().manual_seed(0)), data)
    assert s.modes == 8
    assert s.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.01)


def test_simultaneous_steps_spiral_out_and_alternating_ones_circle():
    traj = xy_dynamics(steps=50, lr=0.2)
    r = [math.hypot(*p) for p in traj["simultaneous"]]
    assert r[-1] == pytest.approx(r[0] * (1 + 0.2**2) ** 25, rel=1e-9)
    r_alt = [math.hypot(*p) for p in traj["alternating"]]
    assert max(r_alt) < 1.5 * r_alt[0] and min(r_alt) > 0.5 * r_alt[0]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"unroll": 2},
        {"minibatch": 8, "kernel_dim": 3},
        {"mbstd": True, "vbn": True},
        {"feature_matching": True, "instance_noise": 0.1, "unroll": 1},
        {"loss": "lsgan"},
    ],
)
def test_every_switch_trains_and_is_scored(extra):
    o = ToyOptions(steps=6, batch=32, nz=8, hidden=16, snapshot_every=3, n_eval=100, **extra)
    r = train_toy(o)
    assert [s.step for s in r.snapshots] == [0, 3, 6]
    assert r.snapshots[-1].points.shape == (100, 2)
    assert torch.isfinite(r.snapshots[-1].points).all()
    assert r.as_dict()["final"]["of"] == 8


def test_the_lab_learns_the_ring_roughly():
    """1,500 small plain steps (4 s) put the points on the unit circle, most modes reached."""
    o = ToyOptions(
        steps=1500,
        batch=128,
        nz=16,
        hidden=64,
        lr_d=1e-3,
        n_eval=500,
        lr_decay=0.5,
        loss="non-saturating",
    )
    r = train_toy(o)
    radius = r.snapshots[-1].points.norm(dim=1)
    assert (radius - 1).abs().median() < 0.15  # at the start: ~0.9 (points near the origin)
    assert r.final.modes >= 6 and r.final.high_quality > 0.02


def test_the_lab_plays_the_gan_tasks_game_penalties_included():
    """A loss brings the same penalties in the lab as in gankit train: wgan clips D at 0.01,
    wgan-gp adds the gradient penalty."""
    from gankit.gan.penalties import GradientPenalty, WeightClip
    from gankit.toy.lab import ToyGAN

    small = dict(steps=2, batch=16, nz=4, hidden=8, snapshot_every=1, n_eval=20)
    wgan = ToyGAN(ToyOptions(loss="wgan", **small))
    wgan.step()
    assert [type(p) for p in wgan.penalties] == [WeightClip]
    assert max(p.abs().max().item() for p in wgan.D.parameters()) <= 0.01
    gp = ToyGAN(ToyOptions(loss="wgan-gp", **small))
    assert [type(p) for p in gp.penalties] == [GradientPenalty]
    assert all(math.isfinite(v) for v in gp.step().values())


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="did you mean hinge"):
        ToyOptions(loss="hinje").check()
    with pytest.raises(ConfigError, match="--steps"):
        ToyOptions(steps=0).check()
    with pytest.raises(ConfigError, match="one of --minibatch and --mbstd"):
        ToyOptions(minibatch=4, mbstd=True).check()


def test_the_command_writes_pictures_and_scores(tmp_path, capsys):
    out = tmp_path / "lab"
    argv = ["toy", "ring8", "--seeds", "2", "--steps", "4", "--batch", "16", "--nz", "4"]
    argv += ["--hidden", "8", "--snapshot-every", "2", "--n-eval", "50", "--unroll", "1"]
    argv += ["--lr-decay", "none"]
    assert main([*argv, "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["summary"]["seeds"] == 2 and len(scores["runs"]) == 2
    assert scores["runs"][0]["options"]["unroll"] == 1
    assert scores["runs"][0]["options"]["lr_decay"] is None  # "none": constant learning rates
    for seed in (0, 1):
        assert Image.open(out / f"seed{seed}.png").size[0] > 0
        gif = Image.open(out / f"seed{seed}.gif")
        assert gif.n_frames == 3
    printed = capsys.readouterr().out
    assert "seed 1:" in printed and "modes of 8 on average" in printed
    assert main(["toy", "xy", "--out", str(tmp_path / "xy")]) == 0
    assert (tmp_path / "xy" / "xy.png").is_file()
    assert main(["toy", "ring8", "--loss", "nope", "--out", str(out)]) == 2
    assert "--loss 'nope'" in capsys.readouterr().err


def test_the_summary_scores_the_last_snapshot_and_the_last_quarter():
    from gankit.cli.toy import summarise
    from gankit.toy.lab import Snapshot, ToyResult
    from gankit.toy.mixtures import ModeScore

    def run(history: list[tuple[int, int, float]]) -> ToyResult:
        r = ToyResult(ToyOptions(steps=400), ring8())
        r.snapshots = [Snapshot(s, torch.zeros(0, 2), ModeScore(m, 8, hq)) for s, m, hq in history]
        return r

    hops = run([(0, 0, 0.0), (200, 8, 0.9), (300, 2, 0.1), (400, 8, 0.8)])  # ends well, hopped
    settled = run([(0, 0, 0.0), (200, 6, 0.3), (300, 8, 0.8), (400, 8, 0.6)])
    s = summarise([hops, settled])
    assert s["modes"] == [8, 8] and s["high_quality"] == [0.8, 0.6] and s["all_modes_hq70"] == 1
    assert s["late_modes"] == [5.0, 8.0] and s["late_high_quality"] == [0.45, 0.7]
