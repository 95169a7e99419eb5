import argparse
from pathlib import Path

import pytest

from gankit.data.prep.cifar_folders import (
    add_cifar_folders_command,
    parse_rename,
    sort_cifar_folders,
)
from gankit.errors import DataError, GankitError


def _touch(path: Path, content: bytes = b"img") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_flat_folder_is_sorted_by_class_and_copied(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ["0_cat.png", "1_dog.png", "2_cat.png", "3_aquarium_fish.png"]:
        _touch(src / name, name.encode())
    counts = sort_cifar_folders(src, dst)
    assert counts == {"aquarium_fish": 1, "cat": 2, "dog": 1}
    assert _files(dst) == {
        "cat/0_cat.png",
        "cat/2_cat.png",
        "dog/1_dog.png",
        "aquarium_fish/3_aquarium_fish.png",
    }
    assert (dst / "dog" / "1_dog.png").read_bytes() == b"1_dog.png"
    assert len(_files(src)) == 4  # copy leaves the source alone


def test_train_test_splits_are_kept_and_move_empties_src(tmp_path):
    src, dst = tmp_path / "cifar", tmp_path / "sorted"
    _touch(src / "train" / "10_airplane.png")
    _touch(src / "train" / "11_automobile.png")
    _touch(src / "test" / "5_automobile.png")
    counts = sort_cifar_folders(src, dst, rename={"automobile": "car"}, move=True)
    assert counts == {"airplane": 1, "car": 2}
    assert _files(dst) == {
        "train/airplane/10_airplane.png",
        "train/car/11_automobile.png",
        "test/car/5_automobile.png",
    }
    assert _files(src) == set()


def test_bad_names_are_reported_not_fatal(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _touch(src / "0_cat.png")
    _touch(src / "labels.txt")
    _touch(src / "cat.png")
    _touch(src / ".DS_Store")
    _touch(src / "train" / "deep" / "1_dog.png")
    skipped = []
    counts = sort_cifar_folders(
        src, dst, rename={"kitten": "cat"}, on_skip=lambda p, why: skipped.append((p.name, why))
    )
    assert counts == {"cat": 1}
    names = {name for name, _ in skipped}
    assert names == {"labels.txt", "cat.png", "deep", "src"}
    assert all("\n" not in why for _, why in skipped)
    assert any("<id>_<class>" in why for _, why in skipped)
    assert any("--rename kitten=cat" in why for _, why in skipped)


def test_missing_or_empty_source_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        sort_cifar_folders(tmp_path / "nope", tmp_path / "dst")
    assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty" / "readme.md")
    with pytest.raises(DataError, match="no file named"):
        sort_cifar_folders(tmp_path / "empty", tmp_path / "dst", on_skip=lambda p, w: None)


def test_destination_inside_source_is_not_resorted(tmp_path):
    src = tmp_path / "src"
    _touch(src / "0_cat.png")
    sort_cifar_folders(src, src / "out")
    counts = sort_cifar_folders(src, src / "out")
    assert counts == {"cat": 1}
    assert _files(src / "out") == {"cat/0_cat.png"}


def test_parse_rename():
    assert parse_rename(["automobile=car", "airplane=plane"]) == {
        "automobile": "car",
        "airplane": "plane",
    }
    with pytest.raises(GankitError, match="OLD=NEW"):
        parse_rename(["car"])


def test_cli_subcommand(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _touch(src / "0_automobile.png")
    _touch(src / "1_truck.png")
    _touch(src / "junk.txt")
    parser = argparse.ArgumentParser(prog="gankit data")
    add_cifar_folders_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["cifar-folders", str(src), str(dst), "--rename", "automobile=car", "--move"]
    )
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert "moved 2 files" in out and "car 1" in out and "truck 1" in out
    assert "junk.txt" in err
    assert _files(dst) == {"car/0_automobile.png", "truck/1_truck.png"}
