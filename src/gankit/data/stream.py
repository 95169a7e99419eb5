"""Endless, resumable streams of training batches in [-1, 1] on the training device.

``MemoryStream`` keeps the whole dataset as one uint8 tensor on the device and draws batches by
indexing a per-epoch permutation; cropping and flipping are tensor ops on the batch (the airbench
data path). ``LoaderStream`` streams a Dataset through DataLoader workers. Both expose
``state_dict()`` / ``load_state_dict()`` so a resumed run sees exactly the batches it would have
seen.

With ``with_labels`` (the classifier task) a stream yields ``(images, labels)`` instead: the uint8
images (after the same crop/flip) and their int64 labels, both on the device; the task augments
and normalises them itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gankit.config import DataConfig
from gankit.data.sources import FolderImages, ImageData, LmdbDataset
from gankit.engine.distributed import per_rank, rank_rows, world
from gankit.errors import DataError

log = logging.getLogger("gankit")


def to_unit(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1]."""
    return x.to(dtype).div_(127.5).sub_(1.0)


def random_crop_flip(
    x: torch.Tensor, size: int, crop: bool, flip: bool, gen: torch.Generator
) -> torch.Tensor:
    """Independent random crop (to ``size``) and horizontal flip per sample, as batched gathers.

    Under torchrun ``x`` is this rank's part of the global batch and the draws are its rows of the
    global batch's draws (:func:`gankit.engine.distributed.rank_rows`).
    """
    n, _, h, w = x.shape
    if crop and h > size:
        oy = rank_rows(lambda k: torch.randint(0, h - size + 1, (k,), generator=gen), n)
        ox = rank_rows(lambda k: torch.randint(0, w - size + 1, (k,), generator=gen), n)
        oy, ox = oy.to(x.device), ox.to(x.device)
        ar = torch.arange(size, device=x.device)
        rows = (oy[:, None] + ar)[:, None, :, None]
        cols = (ox[:, None] + ar)[:, None, None, :]
        x = x[
            torch.arange(n, device=x.device)[:, None, None, None],
            torch.arange(x.shape[1], device=x.device)[None, :, None, None],
            rows,
            cols,
        ]
    elif h > size:
        o = (h - size) // 2
        x = x[..., o : o + size, o : o + size]
    if flip:
        mask = (rank_rows(lambda k: torch.rand(k, generator=gen), n) < 0.5).to(x.device)
        mask = mask.view(n, 1, 1, 1)
        x = torch.where(mask, x.flip(-1), x)
    return x


def _same_size(cfg: DataConfig, then: int, now: int) -> None:
    """A resumed stream continues a permutation of its images: their number must not change."""
    if then != now:
        raise DataError(
            f"{cfg.source} had {then} images when the checkpoint was written and has {now} now: "
            "resuming would not continue the same run; restore the data, or start a new run on "
            "it with --init-from RUN"
        )


class MemoryStream:
    """Batches by indexing a uint8 tensor held on ``device``; with ``labels``, (uint8, labels).

    ``batch_size`` is the global batch: under torchrun each rank takes its slice of every global
    batch of one shared permutation, so the stream's state is the same on every rank.
    """

    def __init__(
        self,
        images: torch.Tensor,
        cfg: DataConfig,
        batch_size: int,
        device: torch.device,
        seed: int,
        labels: torch.Tensor | None = None,
    ):
        if len(images) < batch_size:
            raise DataError(
                f"{cfg.source} has {len(images)} images, fewer than train.batch_size={batch_size}: "
                "lower the batch size or add images"
            )
        self.images = images.to(device)
        self.labels = None if labels is None else labels.to(device)
        self.cfg, self.batch_size, self.device = cfg, batch_size, device
        self.local = per_rank(batch_size)  # this rank's part of each global batch
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch, self.pos = 0, 0
        self.perm = torch.randperm(len(images), generator=self.gen)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self.pos + self.batch_size > len(self.perm):
            self.epoch, self.pos = self.epoch + 1, 0
            self.perm = torch.randperm(len(self.images), generator=self.gen)
        start = self.pos + world().rank * self.local
        idx = self.perm[start : start + self.local].to(self.device)
        self.pos += self.batch_size
        x = random_crop_flip(
            self.images[idx], self.cfg.image_size, self.cfg.random_crop, self.cfg.flip, self.gen
        )
        if self.labels is not None:
            return x, self.labels[idx]
        return to_unit(x)

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "pos": self.pos,
            "perm": self.perm,
            "gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        _same_size(self.cfg, len(state["perm"]), len(self.images))
        self.epoch, self.pos, self.perm = state["epoch"], state["pos"], state["perm"]
        self.gen.set_state(state["gen"])


class _EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, starting ``start`` indices in (for exact resume); under
    torchrun, this rank's slice of each global batch of ``batch`` indices."""

    def __init__(self, n: int, seed: int, epoch: int, start: int, batch: int = 1):
        self.n, self.seed, self.epoch, self.start, self.batch = n, seed, epoch, start, batch

    def _order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g)[self.start :]
        w = world()
        if w.size == 1:
            return order
        local = self.batch // w.size
        full = len(order) // self.batch * self.batch  # whole global batches only
        rows = order[:full].view(-1, self.batch)
        return rows[:, w.rank * local : (w.rank + 1) * local].reshape(-1)

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def __len__(self) -> int:
        left = self.n - self.start
        w = world()
        return left if w.size == 1 else left // self.batch * (self.batch // w.size)


class _SkipBad(Dataset):
    """Replace an unreadable image by the next readable one, logging it once (or fail if strict)."""

    def __init__(self, ds: Dataset, strict: bool):
        self.ds, self.strict = ds, strict

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        for k in range(len(self.ds)):
            try:
                return self.ds[(i + k) % len(self.ds)]
            except DataError as e:
                if self.strict:
                    raise
                log.warning("skipping %s", e)
        raise DataError("no readable image in the dataset")


class LoaderStream:
    """Batches from DataLoader workers; augmentation happens on the device after transfer."""

    def __init__(
        self,
        dataset: Dataset,
        cfg: DataConfig,
        batch_size: int,
        device: torch.device,
        seed: int,
        with_labels: bool = False,
    ):
        if len(dataset) < batch_size:
            raise DataError(
                f"{cfg.source} has {len(dataset)} images, fewer than train.batch_size={batch_size}"
            )
        self.ds = (
            _SkipBad(dataset, cfg.strict)
            if isinstance(dataset, FolderImages | LmdbDataset)
            else dataset
        )
        self.cfg, self.batch_size, self.device, self.seed = cfg, batch_size, device, seed
        self.with_labels = with_labels
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch, self.batches = 0, 0
        self._it: Iterator | None = None

    def _start(self) -> None:
        start = self.batches * self.batch_size
        sampler = _EpochSampler(len(self.ds), self.seed, self.epoch, start, self.batch_size)
        loader = DataLoader(
            self.ds,
            per_rank(self.batch_size),
            sampler=sampler,
            drop_last=True,
            num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        self._it = iter(loader)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        if self._it is None:
            self._start()
        try:
            x = next(self._it)  # type: ignore[arg-type]
        except StopIteration:
            self.epoch, self.batches = self.epoch + 1, 0
            self._start()
            x = next(self._it)  # type: ignore[arg-type]
        self.batches += 1
        if self.with_labels:
            x, y = x
        x = random_crop_flip(
            x.to(self.device, non_blocking=True),
            self.cfg.image_size,
            self.cfg.random_crop,
            self.cfg.flip,
            self.gen,
        )
        if self.with_labels:
            return x, y.to(self.device, non_blocking=True)
        return to_unit(x)

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "gen": self.gen.get_state(),
            "n": len(self.ds),
        }

    def load_state_dict(self, state: dict) -> None:
        _same_size(self.cfg, state.get("n", len(self.ds)), len(self.ds))
        self.epoch, self.batches = state["epoch"], state["batches"]
        self.gen.set_state(state["gen"])
        self._it = None


def make_stream(
    data: ImageData,
    cfg: DataConfig,
    batch_size: int,
    device: torch.device,
    seed: int,
    with_labels: bool = False,
):
    """The fast in-memory stream when the images are in memory, else a DataLoader stream.

    ``with_labels``: yield ``(uint8 images, labels)`` batches (see the module docstring).
    """
    if with_labels and data.labels is None:
        raise DataError(
            f"{cfg.source} has no labels: use folder:PATH with one sub-folder per class, "
            "mnist, fashion-mnist, cifar10 or builtin:mnist"
        )
    if data.images is not None:
        labels = data.labels if with_labels else None
        return MemoryStream(data.images, cfg, batch_size, device, seed, labels)
    return LoaderStream(data.dataset, cfg, batch_size, device, seed, with_labels)  # type: ignore[arg-type]
