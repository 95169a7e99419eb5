"""The command line as a user meets it: commands work, bad input gives one line and exit 2."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.engine.checkpoint import latest_checkpoint, save_checkpoint

from conftest import TINY, write_random_images


def run_cli(*args: str) -> tuple[int, str, str]:
    p = subprocess.run(
        [sys.executable, "-m", "gankit.cli", *args], capture_output=True, text=True, timeout=300
    )
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert (
        main(["train", "dcgan-mnist", *TINY, "train.steps=3", "gan.ema=0.9", "--out", str(out)])
        == 0
    )
    return out


def test_recipes_lists_all_with_descriptions(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("dcgan-mnist ") for line in lines)
    assert all(len(line.split(None, 1)) == 2 for line in lines)


def test_closed_pipe_is_quiet():
    """`gankit recipes | head -1` must not print a BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gankit.cli", "recipes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader leaves before gankit writes its first line
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_help_everywhere():
    for cmd in ([], ["train"], ["sample"], ["recipes"]):
        code, out, _ = run_cli(*cmd, "--help")
        assert code == 0 and "usage: gankit" in out


def test_sample_grid_individual_and_seed(trained_run, tmp_path, capsys):
    grid = tmp_path / "g.png"
    assert (
        main(
            [
                "sample",
                str(trained_run),
                "--n",
                "6",
                "--out",
                str(grid),
                "--seed",
                "3",
                "--ema",
                "--individual",
                str(tmp_path / "ind"),
            ]
        )
        == 0
    )
    assert Image.open(grid).size[0] > 16
    files = sorted((tmp_path / "ind").iterdir())
    assert len(files) == 6 and Image.open(files[0]).size == (16, 16)
    again = tmp_path / "g2.png"
    main(["sample", str(trained_run), "--n", "6", "--out", str(again), "--seed", "3", "--ema"])
    assert grid.read_bytes() == again.read_bytes()  # same seed, same images


def test_sample_uses_the_ema_generator_by_default(trained_run, tmp_path):
    def grid(*flags: str) -> bytes:
        out = tmp_path / f"g{len(flags)}{''.join(flags)}.png"
        assert main(["sample", str(trained_run), "--n", "4", "--out", str(out), *flags]) == 0
        return out.read_bytes()

    default, ema, raw = grid(), grid("--ema"), grid("--no-ema")
    assert default == ema  # like the run's previews and gankit evaluate
    assert raw != ema


def test_sample_works_from_a_moved_run_directory(trained_run, tmp_path):
    import shutil

    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(trained_run, moved)
    assert main(["sample", str(moved), "--n", "4", "--out", str(tmp_path / "m.png")]) == 0


def bad_inputs(tmp: Path, trained_run: Path) -> dict[str, list[str]]:
    empty = tmp / "empty"
    empty.mkdir()
    only_bad = tmp / "only_bad"
    only_bad.mkdir()
    (only_bad / "a.jpg").write_text("text, not jpeg")
    (only_bad / "b.png").write_bytes(b"")
    strict = tmp / "strict"
    write_random_images(strict, n=6)
    (strict / "trunc.png").write_bytes((strict / "img000.png").read_bytes()[:60])
    other = tmp / "other_model"
    other.mkdir()
    (other / "config.yaml").write_text(
        (trained_run / "config.yaml").read_text().replace("ngf: 4", "ngf: 8")
    )
    (other / "checkpoints").mkdir()
    ckpt = latest_checkpoint(trained_run)
    (other / "checkpoints" / ckpt.name).write_bytes(ckpt.read_bytes())
    trunc = tmp / "truncated_ckpt"
    trunc.mkdir()
    (trunc / "config.yaml").write_text((trained_run / "config.yaml").read_text())
    (trunc / "checkpoints").mkdir()
    (trunc / "checkpoints" / ckpt.name).write_bytes(ckpt.read_bytes()[:5000])
    foreign = tmp / "foreign_ckpt"
    foreign.mkdir()
    (foreign / "config.yaml").write_text((trained_run / "config.yaml").read_text())
    save_checkpoint(
        {"task": "cyclegan", "task_state": {}}, foreign / "checkpoints" / "step-000001.pt"
    )
    a_file = tmp / "a_file"
    a_file.write_text("not a folder")
    torch_dir = tmp / "torchvision_root"
    torch_dir.mkdir()
    return {
        "unknown key": ["train", "train.stesp=3"],
        "wrong type": ["train", "train.steps=lots"],
        "impossible value": ["train", "optim.G.lr=-1"],
        "unsupported size": ["train", "data.image_size=100"],
        "unknown recipe": ["train", "dcgan-mnsit"],
        "unknown loss": ["train", "gan.loss=wassertein"],
        "missing folder": ["train", "dcgan", f"data.source=folder:{tmp / 'nope'}"],
        "empty folder": ["train", "dcgan", f"data.source=folder:{empty}"],
        "only unreadable images": [
            "train",
            "dcgan",
            *TINY,
            f"data.source=folder:{only_bad}",
            "data.workers=0",
        ],
        "strict with a truncated image": [
            "train",
            "dcgan",
            *TINY,
            f"data.source=folder:{strict}",
            "data.strict=true",
            "data.workers=0",
        ],
        "batch larger than data": ["train", "dcgan-mnist", *TINY, "data.limit=2"],
        "missing cuda": ["train", "dcgan-mnist", *TINY, "train.device=cuda"],
        "fp16 on cpu": ["train", "dcgan-mnist", *TINY, "train.autocast=fp16"],
        "resume a non-run": ["train", "--resume", str(empty)],
        "sample a non-run": ["sample", str(empty)],
        "checkpoint of another model": ["sample", str(other)],
        "truncated checkpoint": ["sample", str(trunc)],
        "checkpoint of another task": ["sample", str(foreign)],
        "train --out a file": ["train", "dcgan-mnist", *TINY, "--out", str(a_file)],
        "train --out unwritable": ["train", "dcgan-mnist", *TINY, "--out", "/proc/gankit-run"],
        "sample --out x.txt": ["sample", str(trained_run), "--out", str(tmp / "x.txt")],
        "sample --out a folder": ["sample", str(trained_run), "--out", str(empty)],
        "sample --individual a file": ["sample", str(trained_run), "--individual", str(a_file)],
        "report --out a folder": ["report", str(trained_run), "--out", str(empty)],
        "interpolate --out x.txt": ["interpolate", str(trained_run), "--out", str(tmp / "x.txt")],
        "interpolate --gif a folder": ["interpolate", str(trained_run), "--gif", str(empty)],
        "resume --checkpoint without --resume": [
            "train",
            "dcgan-mnist",
            *TINY,
            "--checkpoint",
            "4",
        ],
    }


def test_bad_inputs_give_one_line_errors(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    handlers = list(logging.getLogger("gankit").handlers)
    for name, args in bad_inputs(tmp_path, trained_run).items():
        code = main(args)
        err = capsys.readouterr().err.strip()
        assert code == 2, f"{name}: exit {code}, stderr {err!r}"
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, (
            f"{name}: {err!r}"
        )
        # A run that fails while setting up leaves no empty run directory and no open log file
        # (which would collect the next run's messages).
        left = sorted(p.name for p in (cwd / "runs").glob("*")) if (cwd / "runs").exists() else []
        assert left == [], f"{name}: left {left} in runs/"
        assert logging.getLogger("gankit").handlers == handlers, f"{name}: log handler leaked"


def test_corrupt_images_are_skipped_counted_and_listed(tmp_path, capsys):
    folder = tmp_path / "imgs"
    write_random_images(folder, n=6)
    (folder / "zero.png").write_bytes(b"")
    (folder / "fake.jpg").write_text("<html>")
    Image.fromarray((torch.rand(20, 20) * 65535).numpy().astype("uint16")).save(folder / "deep.png")
    Image.new("CMYK", (20, 20), (0, 50, 100, 0)).save(folder / "print.jpg")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "dcgan",
                *TINY,
                f"data.source=folder:{folder}",
                "data.workers=0",
                "train.steps=1",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    skipped = (run / "data_skipped.txt").read_text().splitlines()
    assert (
        len(skipped) == 2
        and any("zero.png" in s for s in skipped)
        and any("fake.jpg" in s for s in skipped)
    )
    assert "skipped 2 unreadable image(s) of 10" in (run / "run.log").read_text()


def test_sample_rank_by_d_keeps_the_best_scored(trained_run, tmp_path, monkeypatch):
    from gankit.inference import sampling

    seen = {}
    original = sampling.rank_by_discriminator

    def spy(task, images, top, **kw):
        out = original(task, images, top, **kw)
        with torch.no_grad():
            task.D.eval()
            all_scores = task.D(images).sort(descending=True).values
            kept = task.D(out)
        seen.update(n_in=len(images), kept=kept, best=all_scores[:top])
        return out

    monkeypatch.setattr(sampling, "rank_by_discriminator", spy)
    grid = tmp_path / "best.png"
    assert (
        main(
            [
                "sample",
                str(trained_run),
                "--rank-by-d",
                "--top",
                "5",
                "--from",
                "40",
                "--out",
                str(grid),
            ]
        )
        == 0
    )
    assert seen["n_in"] == 40 and torch.allclose(seen["kept"], seen["best"])
    assert grid.is_file()
    assert main(["sample", str(trained_run), "--rank-by-d", "--top", "50", "--from", "40"]) == 2


def test_overrides_after_options_are_overrides(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["train", "dcgan-mnist", *TINY[:3], "--out", str(out), *TINY[3:], "train.steps=1"])
        == 0
    )
    assert "steps: 1" in (out / "config.yaml").read_text()
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "x"), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["report", "RUN", "--max-grids", "-1"], "argument --max-grids: -1 must be >= 0"),
        (["arithmetic", "RUN", "1 - 2", "--bank", "b.pt", "--variants", "-1"], "--variants: -1"),
        (["sample", "RUN", "--n", "0"], "argument --n: 0 must be >= 1"),
        (["sample", "RUN", "--noise-std", "nan"], "'nan' is not a finite number"),
        (["evaluate", "RUN", "--per-class", "1"], "argument --per-class: 1 must be >= 2"),
        (["toy", "ring8", "--steps", "inf"], "'inf' is not an integer"),
        (["data", "download", "u.txt", "d", "--max-bytes", "inf"], "is not a size like 20M"),
        (["lr-find", "darknet-cifar10-cpu", "--num", "1"], "argument --num: 1 must be >= 2"),
    ],
)
def test_numeric_options_are_checked_where_they_are_parsed(args, fragment, capsys):
    """One helper (cli.options.number) checks every numeric option: one line, exit 2."""
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and fragment in err and "\n" not in err, err


@pytest.mark.parametrize(
    "flag, fragment",
    [
        (["--kernel-dim", "0", "--minibatch", "2"], "--kernel-dim must be positive"),
        (["--lr-g", "-1"], "--lr-g -1.0 and --lr-d 0.0001 must be positive"),
        (["--beta1", "1"], "--beta1 1.0 must be in [0, 1)"),
    ],
)
def test_the_labs_ranges_are_one_line(flag, fragment, capsys):
    assert main(["toy", "ring8", "--steps", "2", *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err, err


def test_report_with_one_grid_shows_the_newest(tmp_path):
    from gankit.evaluation.report import spread

    assert spread([1, 2, 3], 1) == [3] and spread([1, 2, 3], 0) == []
    assert spread([1, 2, 3, 4, 5], 3) == [1, 3, 5]


def test_individual_images_keep_the_runs_channels(tmp_path):
    """A grey run's --individual PNGs are grey (mode L), as its training digits were; RGB stays
    RGB with torchvision's rounding."""
    import numpy as np
    from PIL import Image
    from torchvision.utils import save_image

    from gankit.inference.sampling import save_individual

    grey = torch.rand(2, 1, 8, 8) * 2 - 1
    (p,) = save_individual(grey[:1], tmp_path / "g")
    assert Image.open(p).mode == "L"
    rgb = torch.rand(1, 3, 8, 8) * 2 - 1
    (q,) = save_individual(rgb, tmp_path / "c")
    save_image(rgb[0], tmp_path / "ref.png", normalize=True, value_range=(-1, 1))
    ours, ref = (np.asarray(Image.open(f)) for f in (q, tmp_path / "ref.png"))
    assert Image.open(q).mode == "RGB" and np.array_equal(ours, ref)
    ref_grey = tmp_path / "ref_grey.png"
    save_image(grey[0], ref_grey, normalize=True, value_range=(-1, 1))
    assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(ref_grey))[..., 0])
