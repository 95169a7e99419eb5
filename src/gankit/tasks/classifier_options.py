"""The classifier's options (``classifier.*``), the settings read from its data (class names,
channel statistics) and their checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from gankit.config import Config
from gankit.config.options import option
from gankit.data.augment import CIFAR10_MEAN, CIFAR10_STD
from gankit.data.sources import ImageData, class_folder_files
from gankit.errors import ConfigError, DataError

log = logging.getLogger("gankit")


@dataclass
class ClassifierOptions:
    """An image classifier trained with SGD and a one-cycle schedule (``classifier.*``).

    Defaults are the fast.ai 2018 course's CIFAR-10 Darknet (``cifar10-darknet.ipynb``): lr 1.3,
    weight decay 1e-4, ``use_clr_beta=(20, 20, 0.95, 0.85)``, flips and reflect-pad-4 crops. The
    network itself is ``nets.net`` (darknet or mnistnet).
    """

    num_classes: int | None = option(None, structural=True)
    """None = from the data (its class names, or the largest label + 1)."""
    classes: tuple[str, ...] | None = option(None, structural=True)
    """Class names in label order; filled in from the data when training starts."""
    lr: float = 1.3
    """Peak learning rate of the one-cycle schedule."""
    div: float = 20.0
    """The cycle starts and ends at lr / div, then anneals to lr / (div * 100)."""
    pct: float = 20.0
    """Percent of the steps spent in the final annealing (fastai use_clr_beta)."""
    mom_max: float = 0.95
    mom_min: float = 0.85
    weight_decay: float = 1e-4
    nesterov: bool = False
    label_smoothing: float = 0.0
    augment: bool = True
    """Random pad-and-crop (and flips, if ``flip``) of every training batch, on the device."""
    pad: int = 4
    """Reflect padding of the random crop; 0 = no crop."""
    flip: bool = True
    mean: tuple[float, ...] | None = option(None, structural=True)
    """Per-channel input mean in [0, 1]; None = CIFAR-10's for cifar10, else the data's own."""
    std: tuple[float, ...] | None = option(None, structural=True)
    tta_flip: bool = False
    """At evaluation, average the logits of each image and its mirror image."""
    eval_every: int | None = None
    """Steps between test-set evaluations; None = once per epoch, 0 = never."""
    eval_batch_size: int = 500


def dataset_stats(images: Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation over all pixels of uint8 (N, C, H, W) images, in [0, 1].

    Accumulated in float64 chunk by chunk, so 50,000 CIFAR images need little extra memory.
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for part in images.split(chunk):
        x = part.to("cpu", torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        total += x.sum(1)
        squares += (x * x).sum(1)
    n = images.numel() / c
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 5) for v in mean), tuple(round(float(v), 5) for v in std)


def resolve_config(cfg: Config, data: ImageData) -> None:
    """Fill in what the classifier config leaves to the data, in place.

    Class names (checked against a resumed run's), ``num_classes``, the normalisation statistics
    (CIFAR-10's for ``cifar10``, else measured on the training images) and ``eval_every``
    (null: once per epoch). Fails early when the held-out
    split that evaluation will need is missing.
    """
    c, n = cfg.section(ClassifierOptions), len(data)
    if data.labels is None:
        raise DataError(f"{cfg.data.source} has no labels: a classifier needs labelled images")
    found = tuple(data.classes) if data.classes else None
    if c.classes is None:
        top = int(data.labels.max()) + 1 if len(data.labels) else 0
        c.classes = found or tuple(str(k) for k in range(max(top, c.num_classes or 0)))
    elif found is not None and found != c.classes:
        raise DataError(
            f"{cfg.data.source} has classes {', '.join(found)}, but this run was trained on "
            f"{', '.join(c.classes)}"
        )
    if c.num_classes is None:
        c.num_classes = len(c.classes)
    if len(data.labels) and int(data.labels.max()) >= c.num_classes:
        raise ConfigError(
            f"classifier.num_classes={c.num_classes}, but {cfg.data.source} has label "
            f"{int(data.labels.max())}: raise it or leave it null"
        )
    if c.mean is None or c.std is None:
        if cfg.data.source == "cifar10" and cfg.data.channels == 3:
            c.mean, c.std = CIFAR10_MEAN, CIFAR10_STD
        elif data.images is not None:
            c.mean, c.std = dataset_stats(data.images)
        else:  # streamed: a sample of 2,000 images is plenty for two numbers per channel
            idx = torch.linspace(0, n - 1, min(n, 2000)).long().tolist()
            c.mean, c.std = dataset_stats(torch.stack([data.dataset[i][0] for i in idx]))  # type: ignore[index]
        c.std = tuple(max(s, 1e-3) for s in c.std)  # a constant channel must not divide by 0
    per_epoch = max(1, n // cfg.train.batch_size)
    if c.eval_every is None:
        c.eval_every = per_epoch
    src = cfg.data.source
    if c.eval_every and src.startswith("folder:"):
        try:
            class_folder_files(src.split(":", 1)[1], "test")
        except DataError as e:
            raise DataError(
                f"{e}; or set classifier.eval_every=0 to train without evaluation"
            ) from None
    if c.eval_every and src == "builtin:mnist":
        log.warning("builtin:mnist is only the 10,000 test digits: evaluation reuses them")


def validate_classifier(cfg: Config) -> None:
    """The classifier section's ranges and its fit to the data."""
    c = cfg.section(ClassifierOptions)
    if not c.lr > 0 or c.div <= 1:
        raise ConfigError(f"classifier.lr={c.lr} must be positive and classifier.div={c.div} > 1")
    if not 0 <= c.pct < 100:
        raise ConfigError(f"classifier.pct={c.pct} must be in [0, 100): % of steps spent annealing")
    if not 0 <= c.mom_min <= c.mom_max < 1:
        raise ConfigError(
            f"classifier.mom_min={c.mom_min}, mom_max={c.mom_max}: need 0 <= mom_min <= mom_max < 1"
        )
    if c.nesterov and c.mom_min <= 0:
        raise ConfigError("classifier.nesterov=true needs momentum: set classifier.mom_min > 0")
    if c.weight_decay < 0 or not 0 <= c.label_smoothing < 1:
        raise ConfigError(
            f"classifier.weight_decay={c.weight_decay} must be >= 0 and "
            f"classifier.label_smoothing={c.label_smoothing} in [0, 1)"
        )
    if c.eval_batch_size <= 0 or c.pad < 0:
        raise ConfigError(
            f"classifier.eval_batch_size={c.eval_batch_size}, pad={c.pad}: "
            "need eval_batch_size > 0 and pad >= 0"
        )
    if c.eval_every is not None and c.eval_every < 0:
        raise ConfigError(
            f"classifier.eval_every={c.eval_every} must be >= 0 (0 = never, null = once per epoch)"
        )
    if c.num_classes is not None and c.num_classes < 2:
        raise ConfigError(f"classifier.num_classes={c.num_classes} must be at least 2 (or null)")
    if c.classes is not None and c.num_classes is not None and len(c.classes) != c.num_classes:
        raise ConfigError(
            f"classifier.classes names {len(c.classes)} classes but num_classes={c.num_classes}"
        )
    ch, size = cfg.data.channels, cfg.data.image_size
    for key, stats in (("mean", c.mean), ("std", c.std)):
        if stats is not None and len(stats) != ch:
            raise ConfigError(
                f"classifier.{key}={list(stats)} needs one value per channel (data.channels={ch})"
            )
    if c.std is not None and any(s <= 0 for s in c.std):
        raise ConfigError(f"classifier.std={list(c.std)} must be positive")
    if c.augment and c.pad >= size:
        raise ConfigError(f"classifier.pad={c.pad} must be smaller than data.image_size={size}")
    if cfg.data.source.startswith("lmdb:"):
        raise ConfigError(
            "task=classifier needs labelled data: use folder:PATH with one sub-folder per class, "
            "mnist, fashion-mnist, cifar10 or builtin:mnist"
        )


def num_classes(cfg: Config) -> int:
    c = cfg.section(ClassifierOptions)
    n = c.num_classes or (len(c.classes) if c.classes else None)
    if n is None:
        raise ConfigError(
            "classifier.num_classes is unknown: set it, or let training read it from the data"
        )
    return n
