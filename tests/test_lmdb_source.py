"""LmdbImages and gankit data lsun-export on an lmdb built in the test."""

from __future__ import annotations

import io
import multiprocessing as mp
import pickle

import lmdb
import pytest
from PIL import Image

from gankit.data.lmdb_source import LmdbImages
from gankit.data.prep.lsun import export_lmdb
from gankit.errors import DataError


def encoded(fmt: str, color, size=(12, 10), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture()
def entries() -> dict[bytes, bytes]:
    # LSUN keys are hex strings; add awkward ones to exercise name sanitising.
    return {
        b"0a1b2c": encoded("JPEG", (200, 10, 10)),
        b"0f0f0f": encoded("WEBP", (10, 200, 10)),
        b"1234ab": encoded("PNG", 128, mode="L"),
        b"dir/../x": encoded("PNG", (1, 2, 3)),
        b"dir_.._x": encoded("PNG", (4, 5, 6)),
    }


def make_lmdb(path, entries: dict[bytes, bytes]) -> None:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, v in entries.items():
            txn.put(k, v)
    env.close()


def read_in_child(args):
    source, i = args
    return source._env is None, source.read_bytes(i), source.load(i, 1).size


def test_reads_keys_bytes_and_images(tmp_path, entries):
    make_lmdb(tmp_path / "db", entries)
    src = LmdbImages(tmp_path / "db")
    assert len(src) == 5 and src.keys == sorted(entries)
    for i, key in enumerate(src.keys):
        assert src.read_bytes(i) == entries[key]
    assert src.load(0, 3).mode == "RGB" and src.load(0, 3).getpixel((5, 5))[0] > 150
    assert src.load(2, 1).mode == "L" and src.load(2, 3).getpixel((0, 0)) == (128, 128, 128)
    # The data.mdb file itself works too.
    assert LmdbImages(tmp_path / "db" / "data.mdb").keys == src.keys
    with pytest.raises(IndexError):
        src.read_bytes(5)


def test_bad_entry_and_bad_paths(tmp_path, entries):
    make_lmdb(tmp_path / "db", {**entries, b"zz-broken": b"\xff\xd8\xff garbage"})
    src = LmdbImages(tmp_path / "db")
    with pytest.raises(DataError, match="zz-broken"):
        src.load(len(src) - 1, 3)
    with pytest.raises(DataError, match="does not exist"):
        LmdbImages(tmp_path / "nope")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "data.mdb").write_bytes(b"this is not an lmdb" * 500)
    with pytest.raises(DataError, match="not a readable lmdb"):
        LmdbImages(tmp_path / "fake")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a readable lmdb"):
        LmdbImages(tmp_path / "empty")


def test_picklable_and_reopened_in_workers(tmp_path, entries):
    make_lmdb(tmp_path / "db", entries)
    src = LmdbImages(tmp_path / "db")
    src.read_bytes(0)  # the parent has an open environment now
    clone = pickle.loads(pickle.dumps(src))
    assert clone._env is None and clone.read_bytes(1) == entries[src.keys[1]]
    # fork: the child inherits the open handle and must open its own; spawn: a fresh process.
    for method in ("fork", "spawn"):
        with mp.get_context(method).Pool(1) as pool:
            results = pool.map(read_in_child, [(src, 2), (src, 3)])
        assert [r[1] for r in results] == [entries[src.keys[2]], entries[src.keys[3]]]
        assert all(r[2] == (12, 10) for r in results)


def test_lsun_export_round_trip(tmp_path, entries):
    make_lmdb(tmp_path / "db", {**entries, b"not-an-image": b"hello"})
    result = export_lmdb(tmp_path / "db", tmp_path / "out", progress=False)
    assert result.written == 5 and result.skipped == ["not-an-image"]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["0a1b2c.jpg", "0f0f0f.webp", "1234ab.png", "dir_.._x.png", "dir_.._x_1.png"]
    assert (tmp_path / "out" / "0a1b2c.jpg").read_bytes() == entries[b"0a1b2c"]
    assert (tmp_path / "out" / "0f0f0f.webp").read_bytes() == entries[b"0f0f0f"]
    assert (tmp_path / "out" / "dir_.._x.png").read_bytes() == entries[b"dir/../x"]
    assert (tmp_path / "out" / "dir_.._x_1.png").read_bytes() == entries[b"dir_.._x"]
    # The exported folder reads back as the same images through a new lmdb.
    make_lmdb(
        tmp_path / "db2", {p.name.encode(): p.read_bytes() for p in (tmp_path / "out").iterdir()}
    )
    assert sorted(LmdbImages(tmp_path / "db2").read_bytes(i) for i in range(5)) == sorted(
        entries.values()
    )
    limited = export_lmdb(tmp_path / "db", tmp_path / "few", limit=2, progress=False)
    assert limited.written == 2 and len(list((tmp_path / "few").iterdir())) == 2


def test_lsun_export_cli(tmp_path, entries, capsys):
    import argparse

    from gankit.cli.data import add_data_commands

    make_lmdb(tmp_path / "db", entries)
    parser = argparse.ArgumentParser()
    add_data_commands(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(
        ["lsun-export", str(tmp_path / "db"), str(tmp_path / "o"), "--limit", "3"]
    )
    assert args.func(args) == 0
    assert "wrote 3 images" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["lsun-export", "a", "b", "--limit", "0"])


def test_trains_directly_from_lmdb(tmp_path, entries):
    from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
    from gankit.engine.loop import train
    from gankit.registries import build_config

    from conftest import TINY

    make_lmdb(tmp_path / "db", {**entries, b"broken": b"not an image"})
    cfg = build_config(
        "dcgan", [*TINY, f"data.source=lmdb:{tmp_path / 'db'}", "data.workers=0", "train.steps=2"]
    )
    run = train(cfg, tmp_path / "run")
    assert load_checkpoint(latest_checkpoint(run))["step"] == 2
