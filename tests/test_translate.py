"""`gankit translate`: names, sizes and folder layout kept; clashes, overwrites and non-translation
runs refused with one line."""

from __future__ import annotations

import pytest
from PIL import Image

from gankit.cli import main
from gankit.engine.loop import train
from gankit.registries import build_config

from conftest import TINY, TINY_CYCLEGAN, write_domains, write_random_images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("translate")
    root = write_domains(tmp / "data")
    return train(
        build_config("cyclegan-mnistm", [f"data.root={root}", *TINY_CYCLEGAN]), tmp / "run"
    )


def test_folders_keep_their_layout_names_formats_and_sizes(run, tmp_path):
    src = tmp_path / "in"
    write_random_images(src / "sub", n=2, size=20)
    Image.new("RGB", (45, 30), "red").save(src / "wide.jpg")
    Image.new("L", (9, 13), 128).save(src / "grey.png")
    out = tmp_path / "out"
    assert main(["translate", str(run), str(src), "--out", str(out), "--batch-size", "2"]) == 0
    assert Image.open(out / "sub" / "img001.png").size == (20, 20)
    wide = Image.open(out / "wide.jpg")
    assert wide.size == (45, 30) and wide.format == "JPEG"
    assert Image.open(out / "grey.png").size == (9, 13)
    assert not list(out.rglob(".*tmp*"))


def test_refusals_are_one_line(run, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write_random_images(a, n=1)
    write_random_images(b, n=1)
    assert main(["translate", str(run), str(a), str(b), "--out", str(tmp_path / "o")]) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert main(["translate", str(run), str(a), "--out", str(a)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert main(["translate", str(run), str(a), "--direction", "sideways", "--out", str(b)]) == 2
    assert "choose AtoB or BtoA" in capsys.readouterr().err
    gan = train(build_config("dcgan-mnist", [*TINY, "train.steps=1"]), tmp_path / "gan")
    assert main(["translate", str(gan), str(a), "--out", str(b)]) == 2
    err = capsys.readouterr().err
    assert (
        "is a gan run: it does not translate images" in err and len(err.strip().splitlines()) == 1
    )
