"""The image classifier task: a Darknet or MnistNet trained with SGD on a one-cycle schedule.

One ``step`` draws one labelled batch of uint8 images, augments it on the device (random flip and
reflect-pad-4 crop, ``gankit.data.augment``), normalises it and takes one SGD step, then advances the
one-cycle schedule of the learning rate and momentum (Smith 2018, arXiv:1803.09820; fastai 0.7
``use_clr_beta``). This is the fast.ai 2018 course's CIFAR-10 Darknet (``cifar10-darknet.ipynb``:
lr 1.3, weight decay 1e-4, ``use_clr_beta=(20, 20, 0.95, 0.85)``, 94.27 % after 30 epochs).
``evaluate`` measures the held-out split, optionally averaging the logits of each image and its
mirror image (flip test-time augmentation, as in airbench).

The classifier has no previews; its one stream, ``labelled``, yields ``(uint8 images, labels)``;
it settles data-dependent config values (class names, normalisation statistics) in ``resolve``
before it is built, so that ``config.yaml`` describes the run completely. Loaded from a run it is
a :class:`ClassifierModel` (``gankit evaluate-classifier``, ``--features classifier:RUN``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit import seeds
from gankit.config import Config
from gankit.data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize, pad_crop, random_flip
from gankit.data.sources import ImageData, class_folder_files, load_source
from gankit.engine.runtime import Runtime, optimizer_step
from gankit.engine.schedules import OneCycleScheduler
from gankit.errors import ConfigError, DataError
from gankit.inference.roles import Classifier
from gankit.nets import build_net
from gankit.nets.eval_mode import eval_mode
from gankit.tasks.base import Streams, StreamSpec, Task, TaskInfo

log = logging.getLogger("gankit")


@dataclass
class ClassifierOptions:
    """An image classifier trained with SGD and a one-cycle schedule (``classifier.*``).

    Defaults are the fast.ai 2018 course's CIFAR-10 Darknet (``cifar10-darknet.ipynb``): lr 1.3,
    weight decay 1e-4, ``use_clr_beta=(20, 20, 0.95, 0.85)``, flips and reflect-pad-4 crops. The
    network itself is ``nets.net`` (darknet or mnistnet).
    """

    num_classes: int | None = None
    """None = from the data (its class names, or the largest label + 1)."""
    classes: tuple[str, ...] | None = None
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
    mean: tuple[float, ...] | None = None
    """Per-channel input mean in [0, 1]; None = CIFAR-10's for cifar10, else the data's own."""
    std: tuple[float, ...] | None = None
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
    c, n = cfg.classifier, len(data)
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
    c = cfg.classifier
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


class ClassifierModel:
    """A trained classifier for the commands (:class:`~gankit.inference.roles.Classifier`): logits of uint8
    images, normalised as in training, batch by batch, in eval mode."""

    def __init__(
        self,
        net: nn.Module,
        cfg: Config,
        device: torch.device,
        forward: Callable[[Tensor], Tensor] | None = None,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        c, ch = cfg.classifier, cfg.data.channels
        self.net, self.cfg, self.device = net, cfg, device
        self.forward = forward or net
        self._autocast, self.memory_format = autocast, memory_format
        n = c.num_classes or len(c.classes or ())
        self.classes = list(c.classes or [str(k) for k in range(n)])
        self.tta_flip = c.tta_flip
        """Whether ``predict`` averages each image with its mirror image by default."""
        # Unresolved statistics (a config never trained) fall back to mapping [0, 1] to [-1, 1].
        self.mean = c.mean or (0.5,) * ch
        self.std = c.std or (0.5,) * ch

    def inputs(self, x: Tensor) -> Tensor:
        """uint8 (N, C, H, W) images → normalised float inputs on the device."""
        x = normalize(x.to(self.device), self.mean, self.std)
        return x.contiguous(memory_format=self.memory_format)

    @torch.no_grad()
    def predict(self, images: Tensor, tta_flip: bool | None = None) -> Tensor:
        """Logits (float32, on the CPU) for uint8 images.

        ``tta_flip`` (default: ``classifier.tta_flip``) averages the logits of each image and of
        its mirror image.
        """
        c = self.cfg.classifier
        tta = c.tta_flip if tta_flip is None else tta_flip
        out = []
        with eval_mode(self.net):
            for chunk in images.split(c.eval_batch_size):
                x = self.inputs(chunk)
                with self._autocast():
                    logits = self.forward(x).float()
                    if tta:
                        logits = (logits + self.forward(x.flip(-1)).float()) / 2
                out.append(logits.cpu())
        return torch.cat(out)


def _num_classes(cfg: Config) -> int:
    c = cfg.classifier
    n = c.num_classes or (len(c.classes) if c.classes else None)
    if n is None:
        raise ConfigError(
            "classifier.num_classes is unknown: set it, or let training read it from the data"
        )
    return n


class ClassifierTask(Task):
    """A classifier network, its SGD optimiser and one-cycle schedule; the loop drives it.

    Parts: net ``net``, optimizer/schedule/scaler ``net``, the augmentation RNG ``augment``.
    """

    name = "classifier"
    Options = ClassifierOptions
    networks = {"net": ("classifier", "darknet")}
    structural = (
        "classifier.num_classes",
        "classifier.classes",
        "classifier.mean",
        "classifier.std",
    )
    roles = (Classifier,)
    validate = classmethod(lambda cls, cfg: validate_classifier(cfg))

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        return {"labelled": StreamSpec(cfg.data, labels=True)}

    @classmethod
    def resolve(cls, cfg: Config, data: dict[str, ImageData]) -> None:
        resolve_config(cfg, data["labelled"])

    @classmethod
    def build_nets(cls, cfg: Config) -> dict[str, nn.Module]:
        d = cfg.data
        net = build_net(
            "classifier", cfg.nets["net"], d.image_size, d.channels, num_classes=_num_classes(cfg)
        )
        return {"net": net}

    @classmethod
    def load_model(
        cls, cfg: Config, parts: dict[str, Any], device: torch.device
    ) -> ClassifierModel:
        net = cls.build_nets(cfg)["net"]
        net.load_state_dict(parts["nets"]["net"])
        return ClassifierModel(net.to(device).eval(), cfg, device)

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        c = cfg.classifier
        self.net = self.build_nets(cfg)["net"]
        self.forward = rt.prepare(self.net)
        self.opt = torch.optim.SGD(
            self.net.parameters(),
            lr=c.lr,
            momentum=c.mom_max,
            weight_decay=c.weight_decay,
            nesterov=c.nesterov,
        )
        try:
            self.sched = OneCycleScheduler(
                self.opt, cfg.train.steps, c.lr, c.div, c.pct, c.mom_max, c.mom_min
            )
        except ConfigError as e:
            raise ConfigError(f"train.steps={cfg.train.steps} is too short: {e}") from None
        self.scaler = rt.grad_scaler()
        self.gen = seeds.generator(cfg.seed, seeds.AUGMENT)  # augmentation only
        self.model = ClassifierModel(
            self.net, cfg, rt.device, self.forward, rt.autocast, rt.memory_format
        )
        self._eval: ImageData | None = None
        self.parts.nets = {"net": self.net}
        self.parts.optims = {"net": self.opt}
        self.parts.scheds = {"net": self.sched}
        self.parts.scalers = {"net": self.scaler}
        self.parts.rngs = {"augment": self.gen}
        self.info = TaskInfo(
            progress_keys=("loss", "acc"),
            nan_advice="lower classifier.lr (`gankit lr-find RECIPE` suggests one)",
            eval_every=c.eval_every or 0,
        )

    # --- training ---------------------------------------------------------------------------

    def augmented(self, x: Tensor) -> Tensor:
        """Random pad-and-crop and flips of a uint8 batch (``classifier.augment``)."""
        c = self.cfg.classifier
        if c.augment:
            if c.pad:
                x = pad_crop(x, c.pad, "reflect", self.gen)
            if c.flip:
                x = random_flip(x, 0.5, self.gen)
        return x

    def _train_on(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with self.rt.autocast():
            logits = self.forward(self.model.inputs(self.augmented(x))).float()
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.classifier.label_smoothing)
        optimizer_step(loss, self.opt, self.scaler)
        return loss.detach(), logits.detach()

    def step(self, batches: Streams) -> dict[str, Tensor]:
        """One SGD step on one batch, then one schedule step; returns detached scalar tensors."""
        x, y = next(batches["labelled"])
        group = self.opt.param_groups[0]
        lr, mom = group["lr"], group["momentum"]
        loss, logits = self._train_on(x, y)
        self.sched.step()
        return {
            "loss": loss,
            "acc": (logits.argmax(1) == y).float().mean(),
            "lr": torch.tensor(lr, device=loss.device),
            "momentum": torch.tensor(mom, device=loss.device),
        }

    def lr_find_step(self, batches: Iterator[tuple[Tensor, Tensor]], lr: float) -> float:
        """One step at learning rate ``lr`` outside the schedule, for ``gankit.engine.lr_find``."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        x, y = next(batches)
        return float(self._train_on(x, y)[0])

    # --- evaluation -------------------------------------------------------------------------

    def eval_data(self) -> ImageData:
        """The held-out split (``data.split=test`` of the training source), loaded once, in memory."""
        if self._eval is None:
            d = dataclasses.replace(self.cfg.data, split="test", in_memory="yes")
            # A DataLoader draws its seed from the global RNG; the training RNG must not move, or
            # a resumed run (which loads this set at another step) would differ in its dropout.
            with torch.random.fork_rng(devices=[]):
                data = load_source(d, progress=False, with_labels=True)
            classes = self.cfg.classifier.classes
            if data.classes and classes and tuple(data.classes) != tuple(classes):
                raise DataError(
                    f"the test split of {d.source} has classes {', '.join(data.classes)}, "
                    f"the training split {', '.join(classes)}"
                )
            data.images = data.images.to(self.rt.device)  # type: ignore[union-attr]
            self._eval = data
        return self._eval

    def predict(self, images: Tensor, tta_flip: bool | None = None) -> Tensor:
        return self.model.predict(images, tta_flip)

    def evaluate(
        self, data: ImageData | None = None, tta_flip: bool | None = None
    ) -> dict[str, float]:
        """Test loss (cross-entropy, no smoothing) and accuracy on ``data`` (default: the test split)."""
        data = data or self.eval_data()
        logits = self.model.predict(data.images, tta_flip)  # type: ignore[arg-type]
        labels = data.labels.cpu()  # type: ignore[union-attr]
        return {
            "test_loss": F.cross_entropy(logits, labels).item(),
            "test_acc": (logits.argmax(1) == labels).float().mean().item(),
        }
