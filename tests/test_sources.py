import shutil

import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data.sources import load_source
from gankit.data.stream import LoaderStream, MemoryStream, make_stream
from gankit.errors import DataError

from conftest import SHARED, write_random_images


def test_builtin_mnist_is_the_test_set_padded():
    data = load_source(
        DataConfig(source="builtin:mnist", image_size=32, fit="pad", channels=1), progress=False
    )
    assert data.images.shape == (10_000, 1, 32, 32) and data.images.dtype == torch.uint8
    assert data.images[:, :, :2].max() == 0  # the 2-pixel pad is black
    assert data.labels[:10].tolist() == [
        7,
        2,
        1,
        0,
        4,
        1,
        4,
        9,
        5,
        9,
    ]  # the known first test labels


def test_builtin_resize_and_rgb():
    data = load_source(
        DataConfig(source="builtin:mnist", image_size=16, channels=3, limit=5), progress=False
    )
    assert data.images.shape == (5, 3, 16, 16)


def test_folder_skips_and_counts_bad_files(tmp_path):
    write_random_images(tmp_path / "d", n=5)
    (tmp_path / "d" / "broken.jpg").write_text("not an image")
    (tmp_path / "d" / "empty.png").write_bytes(b"")
    data = load_source(
        DataConfig(source=f"folder:{tmp_path / 'd'}", image_size=16, channels=3, workers=0),
        progress=False,
    )
    assert data.images.shape == (5, 3, 16, 16)
    assert len(data.skipped) == 2 and any("broken.jpg" in s for s in data.skipped)
    with pytest.raises(DataError, match="data.strict=true"):
        load_source(
            DataConfig(source=f"folder:{tmp_path / 'd'}", image_size=16, strict=True, workers=0),
            progress=False,
        )


def test_folder_of_only_bad_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 1 images"):
        load_source(DataConfig(source=f"folder:{tmp_path / 'd'}", workers=0), progress=False)


def test_torchvision_offline_missing_names_files(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def no_network(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvu, "download_url", no_network)
    monkeypatch.setattr(tvu, "download_and_extract_archive", no_network)
    with pytest.raises(DataError) as e:
        load_source(DataConfig(source="mnist", root=str(tmp_path)), progress=False)
    assert "train-images-idx3-ubyte.gz" in str(e.value) and str(tmp_path / "MNIST" / "raw") in str(
        e.value
    )
    with pytest.raises(DataError, match="needs data.root"):
        load_source(DataConfig(source="cifar10"), progress=False)


@pytest.mark.skipif(not (SHARED / "mnist").exists(), reason="shared MNIST files not present")
def test_torchvision_mnist_from_local_files(tmp_path):
    shutil.copytree(SHARED / "mnist" / "MNIST", tmp_path / "MNIST")
    data = load_source(
        DataConfig(source="mnist", root=str(tmp_path), image_size=32, fit="pad"), progress=False
    )
    assert data.images.shape == (60_000, 1, 32, 32)


def test_memory_stream_resumes_exactly():
    cfg = DataConfig(image_size=8, random_crop=True, flip=True)
    imgs = torch.randint(0, 256, (20, 1, 12, 12), dtype=torch.uint8)
    a = MemoryStream(imgs, cfg, 3, torch.device("cpu"), seed=1)
    for _ in range(8):  # crosses an epoch boundary (20 // 3 = 6 batches per epoch)
        next(a)
    state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in a.state_dict().items()}
    want = [next(a) for _ in range(5)]
    b = MemoryStream(imgs, cfg, 3, torch.device("cpu"), seed=99)
    b.load_state_dict(state)
    for w in want:
        got = next(b)
        assert got.shape == (3, 1, 8, 8) and torch.equal(got, w)
    assert w.min() >= -1 and w.max() <= 1


def test_random_crop_is_a_window_and_flip_flips():
    cfg = DataConfig(image_size=4, random_crop=True, flip=False)
    img = torch.arange(36, dtype=torch.uint8).view(1, 1, 6, 6).repeat(50, 1, 1, 1)
    x = next(MemoryStream(img, cfg, 50, torch.device("cpu"), seed=0))
    u = ((x + 1) * 127.5).round().to(torch.int64)
    # each crop is a contiguous 4x4 window: rows step by 6, columns by 1
    assert torch.all(u[..., 1:, :] - u[..., :-1, :] == 6) and torch.all(
        u[..., :, 1:] - u[..., :, :-1] == 1
    )
    assert len({int(c[0, 0, 0]) for c in u}) > 3  # offsets vary
    cfg = DataConfig(image_size=6, flip=True)
    y = ((next(MemoryStream(img, cfg, 50, torch.device("cpu"), seed=0)) + 1) * 127.5).round()
    flipped = (y[:, 0, 0, 0] == 5).sum().item()
    assert 10 < flipped < 40 and set(y[:, 0, 0, 0].tolist()) == {0.0, 5.0}


def test_loader_stream_resumes_exactly(tmp_path):
    write_random_images(tmp_path / "d", n=10, size=8)
    cfg = DataConfig(
        source=f"folder:{tmp_path / 'd'}", image_size=8, channels=3, in_memory="no", workers=0
    )
    data = load_source(cfg, progress=False)
    assert data.images is None
    a = make_stream(data, cfg, 3, torch.device("cpu"), seed=0)
    assert isinstance(a, LoaderStream)
    for _ in range(4):
        next(a)
    state = a.state_dict()
    want = [next(a) for _ in range(4)]
    b = make_stream(data, cfg, 3, torch.device("cpu"), seed=0)
    b.load_state_dict(state)
    assert all(torch.equal(next(b), w) for w in want)


def test_batch_larger_than_dataset(tmp_path):
    with pytest.raises(DataError, match="fewer than train.batch_size"):
        MemoryStream(
            torch.zeros(3, 1, 8, 8, dtype=torch.uint8),
            DataConfig(image_size=8),
            4,
            torch.device("cpu"),
            0,
        )


def test_loader_stream_skips_file_broken_after_scan(tmp_path):
    paths = write_random_images(tmp_path / "d", n=4, size=8)
    cfg = DataConfig(
        source=f"folder:{tmp_path / 'd'}", image_size=8, channels=3, in_memory="no", workers=0
    )
    data = load_source(cfg, progress=False)
    paths[1].write_bytes(b"")
    s = make_stream(data, cfg, 4, torch.device("cpu"), seed=0)
    assert next(s).shape == (4, 3, 8, 8)
    Image.new("RGB", (8, 8)).save(paths[1])
