"""Latent walks: slerp/lerp, interpolation grids and GIFs, latent banks and vector arithmetic."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.errors import ConfigError
from gankit.inference.latent import arithmetic_codes, lerp, load_bank, parse_expression, slerp

from conftest import TINY

TILE = 16 + 2  # TINY image size plus the grid padding


def tile_count(path: Path) -> tuple[int, int]:
    w, h = Image.open(path).size
    assert (w - 2) % TILE == 0 and (h - 2) % TILE == 0
    return (w - 2) // TILE, (h - 2) // TILE


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("latent") / "run"
    assert (
        main(["train", "dcgan-mnist", *TINY, "train.steps=2", "gan.ema=0.9", "--out", str(out)])
        == 0
    )
    return out


def test_slerp_endpoints_and_norms():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 100, generator=gen), torch.randn(3, 100, generator=gen)
    t = torch.linspace(0, 1, 9)
    path = slerp(a, b, t)
    assert path.shape == (3, 9, 100)
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, -1], b)
    # equal norms stay equal all along the arc
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    torch.testing.assert_close(slerp(an, bn, t).norm(dim=2), torch.ones(3, 9))
    # for Gaussian codes slerp keeps the typical norm sqrt(nz); lerp's midpoint falls to ~sqrt(nz/2)
    mid_slerp = path[:, 4].norm(dim=1)
    mid_lerp = lerp(a, b, t)[:, 4].norm(dim=1)
    assert (mid_slerp > 8).all() and (mid_lerp < 8.5).all() and (mid_slerp > mid_lerp).all()


def test_lerp_midpoint_and_parallel_slerp():
    a, b = torch.tensor([[0.0, 2.0]]), torch.tensor([[4.0, 6.0]])
    torch.testing.assert_close(lerp(a, b, torch.tensor([0.5]))[0, 0], torch.tensor([2.0, 4.0]))
    # parallel codes have no plane to turn in: slerp falls back to lerp instead of dividing by 0
    out = slerp(a, 3 * a, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 1], 2 * a[0])


def test_interpolate_grid_and_gif(run, tmp_path):
    grid, gif = tmp_path / "grid.png", tmp_path / "walk.gif"
    args = ["interpolate", str(run), "--steps", "5", "--rows", "3", "--out", str(grid)]
    assert main([*args, "--gif", str(gif), "--ema"]) == 0
    assert tile_count(grid) == (5, 3)
    with Image.open(gif) as g:
        assert g.n_frames == 2 * 5 - 2  # forward and back
    assert main([*args, "--mode", "lerp"]) == 0


def test_bank_and_arithmetic(run, tmp_path, capsys):
    bank = tmp_path / "bank.pt"
    assert (
        main(
            ["sample", str(run), "--n", "12", "--bank", str(bank), "--out", str(tmp_path / "g.png")]
        )
        == 0
    )
    z = load_bank(bank, nz=8)
    assert z.shape == (12, 8)
    images = sorted(p.name for p in (tmp_path / "bank-images").iterdir())
    assert images[0] == "000000.png" and images[-2:] == ["000011.png", "index.png"]
    out = tmp_path / "arith.png"
    expr = "0,1,2 - 3 + 4,5"
    assert main(["arithmetic", str(run), expr, "--bank", str(bank), "--out", str(out)]) == 0
    # three terms and the result; 7 variants + the result in the widest row
    assert tile_count(out) == (8, 4)


def test_arithmetic_codes_average_each_term():
    z = torch.arange(12.0).view(4, 3)
    got = arithmetic_codes(z, parse_expression("0,2 - 1 + 3", 4))
    torch.testing.assert_close(got, (z[0] + z[2]) / 2 - z[1] + z[3])


def test_parse_expression():
    assert parse_expression(" 3,7 - 12 + 5 , 9 ", 20) == [(1, [3, 7]), (-1, [12]), (1, [5, 9])]
    assert parse_expression("-1", 2) == [(-1, [1])]
    with pytest.raises(ConfigError, match="index 20 .* holds 20 codes, 0-19"):
        parse_expression("3 - 20", 20)
    for bad in ("3 4", "3 * 4", "3,,4", "a - b", "3 -", ""):
        with pytest.raises(ConfigError):
            parse_expression(bad, 20)


def test_cli_errors_are_one_line(run, tmp_path, capsys):
    bank = tmp_path / "bank.pt"
    assert main(["sample", str(run), "--n", "4", "--bank", str(bank)]) == 0
    capsys.readouterr()
    cases = [
        ["arithmetic", str(run), "0 - 9", "--bank", str(bank)],
        ["arithmetic", str(run), "0 / 1", "--bank", str(bank)],
        ["arithmetic", str(run), "0", "--bank", str(tmp_path / "missing.pt")],
        ["sample", str(run), "--bank", str(bank), "--rank-by-d"],
    ]
    for args in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
    with pytest.raises(SystemExit) as e:  # checked where it is parsed (cli.options.number)
        main(["interpolate", str(run), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "--steps: 1 must be >= 2" in err and "\n" not in err, err
    torch.save({"z": torch.zeros(3, 5)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="5-d codes, but this run has nz=8"):
        load_bank(tmp_path / "other.pt", nz=8)
