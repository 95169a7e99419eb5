"""Image sources: from ``data.source`` to uint8 images at the configured size and channels.

A source either fits in memory — then it is decoded once into one uint8 tensor of shape
(N, C, S, S) — or it is a :class:`torch.utils.data.Dataset` of uint8 (C, S, S) tensors streamed by
DataLoader workers. :mod:`gankit.data.stream` turns either into an endless stream of batches.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from gankit.config import DataConfig
from gankit.data.images import fit_image, load_image, scan_images, to_array
from gankit.errors import DataError

log = logging.getLogger("gankit")

TORCHVISION_FILES = {
    "mnist": (
        "MNIST",
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
    ),
    "fashion-mnist": (
        "FashionMNIST",
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
    ),
    "cifar10": ("", ["cifar-10-python.tar.gz"]),
}

_DIGITS = tuple(str(d) for d in range(10))
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "builtin:mnist": _DIGITS,
    "mnist": _DIGITS,
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
}
"""Class names in label order of the built-in and torchvision sources (as torchvision names them)."""


@dataclass
class ImageData:
    """What a source yields: an in-memory tensor or a streaming dataset, plus what was skipped."""

    name: str
    images: torch.Tensor | None = None
    """uint8 (N, C, S, S) when the data is held in memory."""
    dataset: Dataset | None = None
    """A Dataset of uint8 (C, S, S) tensors when the data is streamed."""
    labels: torch.Tensor | None = None
    """int64 (N,) class labels, for sources that have them."""
    classes: list[str] | None = None
    """Class names in label order (class folders, or the dataset's own classes)."""
    skipped: list[str] = field(default_factory=list)
    """One line per unreadable file that was skipped."""

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.dataset)  # type: ignore[arg-type]


def read_idx(path: Path) -> np.ndarray:
    """Read an MNIST idx file (optionally gzipped): big-endian header, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fit_tensor(x: torch.Tensor, size: int, fit: str, channels: int) -> torch.Tensor:
    """Batch version of :func:`fit_image` for square uint8 (N, C, H, W) tensors, plus channels."""
    if x.shape[1] != channels:
        if channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:  # ITU-R 601-2 luma, as PIL's convert("L")
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    h = x.shape[-1]
    if h == size:
        return x.contiguous()
    if fit == "pad":
        p = size - h
        if p > 0:
            return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2)).contiguous()
        o = -p // 2
        return x[..., o : o + size, o : o + size].contiguous()
    out = []
    for chunk in x.split(4096):  # bounded memory for large in-memory sets
        y = F.interpolate(chunk.float(), size=(size, size), mode="bicubic", antialias=True)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _builtin_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    folder = resources.files("gankit") / "data" / "builtin"
    with resources.as_file(folder) as path:
        x = read_idx(Path(path) / "t10k-images-idx3-ubyte.gz")
        y = read_idx(Path(path) / "t10k-labels-idx1-ubyte.gz")
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def _torchvision(name: str, root: str | None, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    if root is None:
        raise DataError(
            f"data.source={name} needs data.root=FOLDER (where the dataset is or will be downloaded)"
        )
    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    try:
        ds = cls(root, train=train, download=False)
    except RuntimeError:
        try:
            ds = cls(root, train=train, download=True)
        except Exception as e:  # no network, or a broken archive
            sub, files = TORCHVISION_FILES[name]
            where = Path(root) / sub / "raw" if sub else Path(root)
            raise DataError(
                f"{name} not found under {root} and it could not be downloaded ({type(e).__name__}): "
                f"put {', '.join(files)} in {where}"
            ) from None
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(ds.data)
    data = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return data.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)


class FolderImages(Dataset):
    """Image files decoded on access to uint8 (C, size, size); bad files raise DataError."""

    def __init__(self, files: list[Path], size: int, channels: int, fit: str):
        self.files, self.size, self.channels, self.fit = files, size, channels, fit

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = fit_image(load_image(self.files[i], self.channels), self.size, self.fit)
        return torch.from_numpy(to_array(img))


class LmdbDataset(Dataset):
    """Entries of an LSUN-style lmdb decoded on access to uint8 (C, size, size)."""

    def __init__(self, path: str, size: int, channels: int, fit: str, limit: int | None):
        from gankit.data.lmdb_source import LmdbImages

        self.db, self.size, self.channels, self.fit = LmdbImages(path), size, channels, fit
        self.n = min(len(self.db), limit) if limit else len(self.db)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        img = fit_image(self.db.load(i, self.channels), self.size, self.fit)
        return torch.from_numpy(to_array(img))


class LabelledFolderImages(FolderImages):
    """FolderImages that return ``(image, label)`` pairs, for streamed class-folder datasets."""

    def __init__(self, files: list[Path], labels: list[int], size: int, channels: int, fit: str):
        super().__init__(files, size, channels, fit)
        self.labels = labels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:  # type: ignore[override]
        return super().__getitem__(i), self.labels[i]


def class_folder_files(path: str | Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """Image files, integer labels and class names of a folder-per-class dataset.

    ``PATH/<class>/*`` is one split; ``PATH/train/<class>/*`` and ``PATH/test/<class>/*`` (the
    layout of the fast.ai CIFAR-10 folders and of ``gankit data cifar-folders``) give two, chosen
    by ``split``. Classes are the sorted sub-folder names. Files are listed round-robin over the
    classes (first of each class, then second of each ...), so ``data.limit`` keeps them balanced.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder: check data.source")
    if (root / "train").is_dir() or (root / "test").is_dir():
        if not (root / split).is_dir():
            raise DataError(
                f"{root} has no {split}/ folder: put {split} images in {root / split}/<class>/ "
                "(or set data.split)"
            )
        root = root / split
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root} has no class sub-folders: labels come from PATH/<class>/*.jpg, or "
            "PATH/train/<class>/*.jpg and PATH/test/<class>/*.jpg"
        )
    per_class = [scan_images(root / c) for c in classes]
    files: list[Path] = []
    labels: list[int] = []
    for k in range(max(map(len, per_class))):
        for label, found in enumerate(per_class):
            if k < len(found):
                files.append(found[k])
                labels.append(label)
    return files, labels, classes


class _Decode(FolderImages):
    """FolderImages that returns the error message instead of raising, for the one-time decode."""

    def __getitem__(self, i: int):  # type: ignore[override]
        try:
            # A numpy array, not a tensor: a tensor sent from a worker keeps a file descriptor open
            # while it lives, and tens of thousands of them exceed the open-files limit
            # ("received 0 items of ancdata"); arrays are pickled by value.
            return super().__getitem__(i).numpy()
        except DataError as e:
            return str(e)


def _decode_all(
    files: list[Path], cfg: DataConfig, size: int, progress: bool, labels: list[int] | None = None
) -> ImageData:
    ds = _Decode(files, size, cfg.channels, cfg.fit)
    loader = DataLoader(ds, batch_size=64, num_workers=cfg.workers, collate_fn=list)
    arrays, skipped, kept = [], [], []
    bar = tqdm(
        total=len(files), desc="decoding images", unit="img", disable=not progress, leave=False
    )
    for items in loader:
        for item in items:  # in file order: the loader does not shuffle
            if isinstance(item, str):
                if cfg.strict:
                    raise DataError(f"{item} (data.strict=true; set it to false to skip bad files)")
                skipped.append(item)
            else:
                kept.append(len(arrays) + len(skipped))
                arrays.append(item)
        bar.update(len(items))
    bar.close()
    if not arrays:
        raise DataError(
            f"none of the {len(files)} images in {cfg.source} could be read: {skipped[0]}"
        )
    y = None if labels is None else torch.tensor([labels[i] for i in kept], dtype=torch.int64)
    return ImageData(
        name=cfg.source, images=torch.from_numpy(np.stack(arrays)), labels=y, skipped=skipped
    )


def labelled_subset(data: ImageData, per_class: int, seed: int) -> ImageData:
    """``per_class`` labelled images of every class, drawn with ``seed`` (``data.labels_per_class``).

    The same data and seed give the same images, so a semi-supervised run and a supervised
    baseline with the same seed learn from the same labels.
    """
    if data.labels is None:
        raise DataError(f"data.labels_per_class needs labels: {data.name} has none")
    labels = data.labels.cpu()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    picked = []
    for k in range(int(labels.max()) + 1):
        of_k = order[labels[order] == k]
        if len(of_k) < per_class:
            name = data.classes[k] if data.classes else str(k)
            raise DataError(
                f"data.labels_per_class={per_class}: class {name} of {data.name} has only "
                f"{len(of_k)} images; lower it"
            )
        picked.append(of_k[:per_class])
    idx = torch.cat(picked).sort().values
    if data.images is not None:
        images, dataset = data.images[idx], None
    else:
        images, dataset = None, Subset(data.dataset, idx.tolist())  # type: ignore[arg-type]
    return ImageData(
        name=f"{data.name} ({per_class} labels per class)",
        images=images,
        dataset=dataset,
        labels=labels[idx],
        classes=data.classes,
    )


def _stacked(src: str, cfg: DataConfig, size: int) -> ImageData:
    from gankit.data.stacked import stack_count, stacked_mnist

    x, y = stacked_mnist(*_builtin_mnist(), stack_count(src))
    if cfg.limit:
        x, y = x[: cfg.limit], y[: cfg.limit]
    images = fit_tensor(x, size, cfg.fit, cfg.channels)
    return ImageData(name=src, images=images, labels=y, classes=[f"{k:03d}" for k in range(1000)])


def load_source(cfg: DataConfig, progress: bool = True, with_labels: bool = False) -> ImageData:
    """Open ``cfg.source`` and return its images at ``load_size`` (or ``image_size``).

    ``with_labels``: a ``folder:PATH`` source is read as one sub-folder per class (see
    :func:`class_folder_files`), split by ``data.split``; other sources keep their own labels.
    """
    size = cfg.load_size or cfg.image_size
    src = cfg.source
    if src in ("builtin:mnist", "mnist", "fashion-mnist", "cifar10"):
        if src == "builtin:mnist":
            x, y = _builtin_mnist()
        else:
            x, y = _torchvision(src, cfg.root, cfg.split == "train")
        if cfg.limit:
            x, y = x[: cfg.limit], y[: cfg.limit]
        images = fit_tensor(x, size, cfg.fit, cfg.channels)
        return ImageData(name=src, images=images, labels=y, classes=list(CLASS_NAMES[src]))
    if src == "stacked-mnist" or src.startswith("stacked-mnist:"):
        return _stacked(src, cfg, size)
    if src.startswith("folder:") and with_labels:
        files, labels, classes = class_folder_files(src.split(":", 1)[1], cfg.split)
        if cfg.limit:
            files, labels = files[: cfg.limit], labels[: cfg.limit]
        need_mb = len(files) * cfg.channels * size * size / 2**20
        if cfg.in_memory == "yes" or (cfg.in_memory == "auto" and need_mb <= cfg.memory_limit_mb):
            data = _decode_all(files, cfg, size, progress, labels)
        else:
            ds = LabelledFolderImages(files, labels, size, cfg.channels, cfg.fit)
            data = ImageData(name=src, dataset=ds, labels=torch.tensor(labels))
        data.classes = classes
        return data
    if src.startswith("folder:"):
        files = scan_images(src.split(":", 1)[1])
        if cfg.limit:
            files = files[: cfg.limit]
        need_mb = len(files) * cfg.channels * size * size / 2**20
        if cfg.in_memory == "yes" or (cfg.in_memory == "auto" and need_mb <= cfg.memory_limit_mb):
            return _decode_all(files, cfg, size, progress)
        return ImageData(name=src, dataset=FolderImages(files, size, cfg.channels, cfg.fit))
    if src.startswith("lmdb:"):
        # LSUN categories hold 10^5-10^6 images: always streamed through DataLoader workers.
        path = src.split(":", 1)[1]
        return ImageData(
            name=src, dataset=LmdbDataset(path, size, cfg.channels, cfg.fit, cfg.limit)
        )
    if src.startswith(("aligned:", "paired:")):
        from gankit.data.paired import load_paired

        return ImageData(name=src, images=load_paired(cfg, progress))
    raise DataError(
        f"data.source={src!r} is not supported: use builtin:mnist, mnist, fashion-mnist, "
        "cifar10, stacked-mnist[:N], folder:PATH or lmdb:PATH"
    )
