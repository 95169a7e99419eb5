"""Paired data for pix2pix: aligned A|B files and folders matched by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gankit.config import DataConfig
from gankit.data.paired import load_paired
from gankit.errors import DataError


def _img(path, w, h, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def test_aligned_files_split_into_a_and_b(tmp_path):
    for i in range(3):
        left = np.full((8, 8, 3), 10 * i, np.uint8)
        right = np.full((8, 8, 3), 200, np.uint8)
        (tmp_path / "train").mkdir(exist_ok=True)
        Image.fromarray(np.concatenate([left, right], 1)).save(tmp_path / "train" / f"{i}.png")
    x = load_paired(
        DataConfig(source=f"aligned:{tmp_path / 'train'}", image_size=8, channels=3), progress=False
    )
    assert x.shape == (3, 6, 8, 8)
    assert x[2, :3].eq(20).all() and x[:, 3:].eq(200).all()


def test_paired_folders_match_by_name(tmp_path):
    for name, v in (("b", 1), ("a", 2)):
        _img(tmp_path / "A" / f"{name}.png", 8, 8, v)
        _img(tmp_path / "B" / f"{name}.jpg", 8, 8, 100 + v)
    x = load_paired(
        DataConfig(source=f"paired:{tmp_path / 'A'},{tmp_path / 'B'}", image_size=8, channels=3),
        progress=False,
    )
    assert x[:, 0, 0, 0].tolist() == [2, 1] and x[:, 3, 0, 0].tolist() == [102, 101]


def test_bad_paired_data_are_one_line_errors(tmp_path):
    _img(tmp_path / "train" / "x.png", 12, 8, 0)
    with pytest.raises(
        DataError, match=r"x.png is 12×8: an aligned image holds A and B side by side"
    ):
        load_paired(
            DataConfig(source=f"aligned:{tmp_path / 'train'}", image_size=8, channels=3),
            progress=False,
        )
    _img(tmp_path / "A" / "one.png", 8, 8, 0)
    _img(tmp_path / "B" / "two.png", 8, 8, 0)
    with pytest.raises(DataError, match="one.png has no partner named one"):
        load_paired(
            DataConfig(
                source=f"paired:{tmp_path / 'A'},{tmp_path / 'B'}", image_size=8, channels=3
            ),
            progress=False,
        )
    with pytest.raises(DataError, match="domain B folder .*nothere does not exist"):
        load_paired(
            DataConfig(
                source=f"paired:{tmp_path / 'A'},{tmp_path / 'nothere'}", image_size=8, channels=3
            ),
            progress=False,
        )
