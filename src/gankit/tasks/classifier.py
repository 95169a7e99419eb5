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
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit import seeds
from gankit.config import Config
from gankit.data.augment import normalize, pad_crop, random_flip
from gankit.data.sources import ImageData, load_source
from gankit.engine.runtime import Runtime, optimizer_step
from gankit.engine.schedules import OneCycleScheduler
from gankit.errors import ConfigError, DataError
from gankit.inference.roles import Classifier
from gankit.nets import build_net
from gankit.nets.eval_mode import eval_mode
from gankit.tasks.base import Streams, StreamSpec, Task, TaskInfo
from gankit.tasks.classifier_options import (
    ClassifierOptions,
    num_classes,
    resolve_config,
    validate_classifier,
)

log = logging.getLogger("gankit")


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
        c, ch = cfg.section(ClassifierOptions), cfg.data.channels
        self.net, self.cfg, self.device = net, cfg, device
        self.channels = ch
        """Channels of the images it classifies (1 grey, 3 RGB)."""
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
        c = self.cfg.section(ClassifierOptions)
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


class ClassifierTask(Task[ClassifierOptions]):
    """A classifier network, its SGD optimiser and one-cycle schedule; the loop drives it.

    Parts: net ``net``, optimizer/schedule/scaler ``net``, the augmentation RNG ``augment``.
    """

    name = "classifier"
    Options = ClassifierOptions
    networks = {"net": ("classifier", "darknet")}
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
            "classifier", cfg.nets["net"], d.image_size, d.channels, num_classes=num_classes(cfg)
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
        c = cfg.section(ClassifierOptions)
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
        c = self.cfg.section(ClassifierOptions)
        if c.augment:
            if c.pad:
                x = pad_crop(x, c.pad, "reflect", self.gen)
            if c.flip:
                x = random_flip(x, 0.5, self.gen)
        return x

    def _train_on(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with self.rt.autocast():
            logits = self.forward(self.model.inputs(self.augmented(x))).float()
        loss = F.cross_entropy(
            logits, y, label_smoothing=self.cfg.section(ClassifierOptions).label_smoothing
        )
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
            classes = self.cfg.section(ClassifierOptions).classes
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
