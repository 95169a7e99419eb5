"""gankit data validate on a folder with one file of every bad kind, built with PIL."""

from __future__ import annotations

import argparse
import io

import numpy as np
import pytest
from PIL import Image

from gankit.cli.data import add_data_commands
from gankit.data.prep.validate import format_report, inspect_file, validate_folder
from gankit.errors import DataError

EXPECTED = {
    "good1.png": "ok",
    "good2.jpg": "ok",
    "sub/good3.webp": "ok",
    "empty.png": "zero-byte",
    "notes.jpg": "unreadable",
    "cut.png": "truncated",
    "cut.jpg": "truncated",
    "sub/copy_of_good1.png": "duplicate",
    "tiny.png": "tiny",
    "anim.gif": "animated",
    "deep.png": "16-bit",
    "print.jpg": "cmyk",
}


def noise(seed: int, size=(24, 20), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture()
def messy(tmp_path):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    noise(1).save(d / "good1.png")
    noise(2).save(d / "good2.jpg", quality=90)
    noise(3).save(d / "sub" / "good3.webp", lossless=True)
    # Same pixels as good1 but a different file (other compression level): still a duplicate.
    noise(1).save(d / "sub" / "copy_of_good1.png", compress_level=0)
    (d / "empty.png").write_bytes(b"")
    (d / "notes.jpg").write_text("this is a text file with an image name\n")
    png = encode(noise(4, (64, 64)), "PNG")
    (d / "cut.png").write_bytes(png[: len(png) // 2])
    jpg = encode(noise(5, (64, 64)), "JPEG")
    (d / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    noise(6, (8, 40)).save(d / "tiny.png")
    frames = [noise(7 + i).convert("P") for i in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    deep = np.arange(24 * 20, dtype=np.uint16).reshape(20, 24) * 100
    Image.fromarray(deep).save(d / "deep.png")
    assert Image.open(d / "deep.png").mode.startswith("I;16")
    noise(10).convert("CMYK").save(d / "print.jpg", quality=95)
    (d / "README.txt").write_text("not an image extension: ignored")
    return d


def kinds(result) -> dict[str, str]:
    return {ch.path.as_posix(): ch.kind for ch in result.checks}


def test_classifies_every_kind(messy):
    result = validate_folder(messy, progress=False)
    assert kinds(result) == EXPECTED
    counts = result.counts
    assert counts["ok"] == 3 and sum(counts.values()) == len(EXPECTED) and result.ignored == 1
    dup = next(ch for ch in result.checks if ch.kind == "duplicate")
    assert dup.detail == "same pixels as good1.png"
    text = format_report(result)
    assert "truncated" in text and "sub/copy_of_good1.png" in text and "16-bit" in text
    assert "(1 file without an image extension was not checked)" in text
    assert len(result.remaining) == len(EXPECTED) - 3  # nothing was acted on


def test_jpeg_cut_inside_its_headers_is_truncated(tmp_path):
    data = encode(noise(0), "JPEG")
    (tmp_path / "head.jpg").write_bytes(data[:200])  # Image.open itself fails on this one
    kind, detail, _ = inspect_file(tmp_path / "head.jpg")
    assert kind == "truncated" and "Truncated File Read" in detail


def test_min_size_is_configurable(messy):
    assert inspect_file(messy / "tiny.png", min_size=8)[0] == "ok"
    assert inspect_file(messy / "good1.png", min_size=21)[0] == "tiny"


def test_fix_and_quarantine(messy, tmp_path):
    q = tmp_path / "quarantine"
    before = {p.relative_to(messy) for p in messy.rglob("*") if p.is_file()}
    result = validate_folder(messy, quarantine=q, fix=True, progress=False)

    fixed = {ch.path.as_posix() for ch in result.checks if ch.action == "fixed"}
    assert fixed == {"anim.gif", "deep.png", "print.jpg"}
    moved = {p.relative_to(q).as_posix() for p in q.rglob("*") if p.is_file()}
    assert moved == {
        "empty.png",
        "notes.jpg",
        "cut.png",
        "cut.jpg",
        "sub/copy_of_good1.png",
        "tiny.png",
    }
    assert not result.remaining
    # Nothing deleted: every file is still in the folder or in quarantine.
    after = {p.relative_to(messy) for p in messy.rglob("*") if p.is_file()}
    assert after | {p.relative_to(q) for p in q.rglob("*") if p.is_file()} == before
    with Image.open(messy / "anim.gif") as img:
        assert getattr(img, "n_frames", 1) == 1
    with Image.open(messy / "deep.png") as img:
        assert img.mode == "L" and img.getextrema() == (0, round(479 * 100 / 65535 * 255))
    with Image.open(messy / "print.jpg") as img:
        assert img.mode == "RGB" and img.format == "JPEG"
    assert (q / "notes.jpg").read_text().startswith("this is a text file")
    assert not list(messy.rglob(".gankit-*"))  # no temp files left by the atomic rewrites
    # A second pass finds a clean folder.
    again = validate_folder(messy, progress=False)
    assert again.counts["ok"] == 6 and not again.problems


def test_quarantine_without_fix_leaves_convertible_files(messy, tmp_path):
    """Training converts CMYK, 16-bit and animated files: quarantine is for broken ones only."""
    q = tmp_path / "q"
    result = validate_folder(messy, quarantine=q, progress=False)
    for name in ("deep.png", "print.jpg", "anim.gif"):
        assert (messy / name).is_file() and not (q / name).exists(), name
    left = {ch.path.as_posix(): ch.kind for ch in result.remaining}
    assert left == {"deep.png": "16-bit", "print.jpg": "cmyk", "anim.gif": "animated"}
    assert (q / "empty.png").exists() and (q / "cut.jpg").exists()


def test_quarantine_keeps_both_when_name_taken(messy, tmp_path):
    q = tmp_path / "q"
    q.mkdir()
    (q / "empty.png").write_bytes(b"older")
    validate_folder(messy, quarantine=q, progress=False)
    assert (q / "empty.png").read_bytes() == b"older" and (q / "empty_1.png").exists()


def test_cli_exit_codes(messy, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["validate", str(messy)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "zero-byte" in out and "cut.jpg" in out
    args = parser.parse_args(["validate", str(messy), "--fix", "--quarantine", str(tmp_path / "q")])
    assert args.func(args) == 0
    with pytest.raises(DataError, match="must not be"):
        validate_folder(messy, quarantine=messy.parent, progress=False)
    with pytest.raises(DataError, match="not a folder"):
        validate_folder(tmp_path / "missing", progress=False)
