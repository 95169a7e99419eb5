"""gankit data faces: cascade loading, square crops, and a real face in a real photo."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gankit.data.prep.faces import REPORT_NAME, crop_faces, load_cascade, square_box
from gankit.errors import DataError

# The astronaut's (Eileen Collins) face in skimage.data.astronaut(), 512×512, located by eye:
# left, top, right, bottom.
ASTRONAUT_FACE = (175, 65, 275, 165)


def iou(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def test_square_box_grows_and_stays_inside():
    assert square_box((100, 100, 50, 50), 0.2, 400, 300) == (90, 90, 160, 160)
    # Near the top-left corner the square slides inside instead of being cut.
    assert square_box((0, 0, 50, 50), 0.2, 400, 300) == (0, 0, 70, 70)
    # Near the bottom-right too.
    assert square_box((370, 270, 30, 30), 0.5, 400, 300) == (340, 240, 400, 300)
    # Bigger than the picture: shrinks to the short side, still square.
    left, top, right, bottom = square_box((10, 10, 90, 90), 0.5, 200, 100)
    assert (right - left, bottom - top) == (100, 100) and top == 0 and 0 <= left <= 100


def test_frontal_cascade_finds_the_astronaut(tmp_path):
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    photo = Image.fromarray(data.astronaut())
    photo.save(src / "sub" / "astronaut.png")
    (src / "broken.jpg").write_text("not a picture")
    Image.new("RGB", (120, 80), (30, 90, 200)).save(src / "sky.png")

    report = crop_faces(src, dst, cascade="frontal", size=96, margin=0.2, progress=False)

    assert (report.images, report.zero, report.one, report.many) == (2, 1, 1, 0)
    assert report.unreadable == ["broken.jpg"] and report.no_face == ["sky.png"]
    (crop,) = report.crops
    assert crop.file == "sub/astronaut_0.png" and crop.source == "sub/astronaut.png"
    left, top, right, bottom = crop.box
    assert right - left == bottom - top
    # The crop is the face plus 20% margin: it contains the face and is not much bigger.
    assert left <= ASTRONAUT_FACE[0] + 10 and top <= ASTRONAUT_FACE[1] + 10
    assert right >= ASTRONAUT_FACE[2] - 10 and bottom >= ASTRONAUT_FACE[3] - 10
    assert iou(crop.box, ASTRONAUT_FACE) > 0.5
    saved = Image.open(dst / crop.file)
    assert saved.size == (96, 96) and saved.mode == "RGB"
    expected = np.asarray(photo.crop(crop.box).resize((96, 96), Image.Resampling.LANCZOS))
    assert np.abs(np.asarray(saved, dtype=int) - expected).mean() < 1.0
    on_disk = json.loads((dst / REPORT_NAME).read_text())
    assert on_disk["one"] == 1 and on_disk["crops"][0]["box"] == list(crop.box)


def test_anime_cascade_loads_and_runs(tmp_path):
    classifier = load_cascade("anime")
    assert not classifier.empty()
    rng = np.random.default_rng(0)
    (tmp_path / "src").mkdir()
    Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(
        tmp_path / "src/n.png"
    )
    report = crop_faces(tmp_path / "src", tmp_path / "dst", cascade="anime", progress=False)
    assert report.images == 1 and report.zero + report.one + report.many == 1
    assert (tmp_path / "dst" / REPORT_NAME).exists()


def test_bad_cascade_and_options(tmp_path):
    with pytest.raises(DataError, match="anime, frontal"):
        load_cascade(str(tmp_path / "missing.xml"))
    (tmp_path / "junk.xml").write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(DataError, match="not an OpenCV cascade"):
        load_cascade(str(tmp_path / "junk.xml"))
    with pytest.raises(DataError, match="--margin"):
        crop_faces(tmp_path, tmp_path / "out", margin=-1)
    with pytest.raises(DataError, match="no images"):
        crop_faces(tmp_path, tmp_path / "out", cascade="frontal")
    # SRC errors name SRC, not the training config's data.source.
    with pytest.raises(DataError, match=r"^faces: SRC .*missing does not exist"):
        crop_faces(tmp_path / "missing", tmp_path / "out", cascade="frontal")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"file.png is not a folder"):
        crop_faces(tmp_path / "file.png", tmp_path / "out", cascade="frontal")


def test_faces_cli(tmp_path, capsys):
    import argparse

    from gankit.cli.data import add_data_commands

    (tmp_path / "src").mkdir()
    Image.new("RGB", (64, 64), (200, 180, 160)).save(tmp_path / "src" / "flat.png")
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(
        ["faces", str(tmp_path / "src"), str(tmp_path / "dst"), "--size", "32"]
    )
    assert (args.cascade, args.size, args.margin, args.min_size) == ("anime", 32, 0.2, 48)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "1 images: 1 with no face" in out
    assert "no face found: photos need --cascade frontal" in out  # a hint when nothing was cropped
    args = parser.parse_args(
        ["faces", str(tmp_path / "src"), str(tmp_path / "d"), "--cascade", "x"]
    )
    with pytest.raises(DataError, match="--cascade x"):
        args.func(args)
