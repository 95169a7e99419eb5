"""What the image-to-image tasks share: two domains, image pools, the reference's GAN loss
scaling, and the translating role object that works at any height and width.

The tasks are :mod:`gankit.tasks.cyclegan` (two generators, cycle consistency), :mod:`.pix2pix`
(paired data, a conditional discriminator) and :mod:`.cut` (one generator, PatchNCE). Their
defaults are pytorch-CycleGAN-and-pix2pix's (Zhu et al. 2017, Isola et al. 2017) and CUT's (Park
et al. 2020); ``../docs/guides/translation.md`` maps the reference's options to ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.config import Config, DataConfig
from gankit.config.options import option
from gankit.data.images import IMAGE_EXTENSIONS
from gankit.engine.schedules import FactorSchedule, check_decay_start, decaying
from gankit.errors import ConfigError, DataError, did_you_mean
from gankit.gan.objectives import LOSS_DEFAULTS, OBJECTIVES, Objective
from gankit.inference.roles import SizeMultiple, Translator
from gankit.nets.eval_mode import eval_mode
from gankit.tasks.base import OptionsT, StreamSpec, Task

DIRECTIONS = ("AtoB", "BtoA")


@dataclass
class DomainOptions:
    """Where the two unpaired domains come from (shared by ``cyclegan.*`` and ``cut.*``)."""

    source_A: str | None = option(None, structural=True)
    """Domain A's images (any data.source form); None: folder:<data.root>/trainA."""
    source_B: str | None = option(None, structural=True)
    """Domain B's images; None: folder:<data.root>/trainB."""
    lr_decay_start: float | None = 0.5
    """Fraction of train.steps after which the learning rates fall linearly to 0 (the
    reference's n_epochs + n_epochs_decay, 100 + 100); None: constant."""


def check_loss(name: str, key: str) -> Objective:
    """The shared objective called ``name``, or a one-line ConfigError naming ``key``."""
    usable = [k for k, o in OBJECTIVES.items() if k not in LOSS_DEFAULTS and not o.relativistic]
    if name not in usable:
        hint = did_you_mean(name, usable)
        raise ConfigError(f"{key}={name!r} is not allowed: {hint}choose one of {', '.join(usable)}")
    return OBJECTIVES[name]


class ReferenceLoss:
    """The reference's ``GANLoss`` from one of our objectives, at the reference's scale.

    The reference computes ℓ(prediction, target) — MSE for lsgan, BCE for vanilla — and uses
    ℓ(D(fake), real) for a generator and 0.5·(ℓ(D(real), real) + ℓ(D(fake), fake)) for a
    discriminator. Ours halve lsgan's terms and do not halve BCE's sum, so the generator term is
    rescaled here to keep the reference's balance against the L1 and NCE terms (λ = 10, 100).
    """

    def __init__(self, name: str) -> None:
        self.objective = OBJECTIVES[name]
        self.g_scale = 2.0 if name == "lsgan" else 1.0
        self.d_scale = 1.0 if name == "lsgan" else 0.5

    def d(self, real: Tensor, fake: Tensor) -> Tensor:
        return self.d_scale * self.objective.d_loss(real.float(), fake.float())

    def g(self, fake: Tensor) -> Tensor:
        return self.g_scale * self.objective.g_loss(fake.float())


def _folder_of(source: str) -> Path | None:
    return Path(source.split(":", 1)[1]) if source.startswith("folder:") else None


def check_domain(source: str, label: str) -> None:
    """A one-line DataError for a missing or empty domain folder, naming the domain."""
    folder = _folder_of(source)
    if folder is None:
        return
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"{label} folder {folder} {what}")
    if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.rglob("*")):
        raise DataError(f"{label} folder {folder} holds no images (.png, .jpg, ...)")


def domain_sources(
    cfg: Config, opts: DomainOptions, task: str, split: str = "train"
) -> tuple[str, str]:
    """The sources of domains A and B: the task's ``source_A``/``source_B``, else the reference's
    ``<data.root>/trainA`` and ``trainB`` (``testA``/``testB`` for ``split="test"``)."""
    a, b = (opts.source_A, opts.source_B) if split == "train" else (None, None)
    if a is None or b is None:
        root = cfg.data.root
        if root is None:
            raise ConfigError(
                f"{task} needs two image domains: set data.root=DIR with DIR/{split}A and "
                f"DIR/{split}B (the reference's layout), or {task}.source_A and {task}.source_B"
            )
        a = a or f"folder:{Path(root) / (split + 'A')}"
        b = b or f"folder:{Path(root) / (split + 'B')}"
    return a, b


def test_data(cfg: Config, source: str) -> DataConfig:
    """The run's data section for evaluation inputs: ``source`` at the training size, whole
    (no random crop, no flips, no limit)."""
    return replace(
        cfg.data, source=source, random_crop=False, load_size=None, flip=False, limit=None
    )


def unpaired_test_inputs(cfg: Config, opts: DomainOptions, task: str, direction: str) -> Tensor:
    """uint8 test images of the source domain: <data.root>/testA for AtoB, testB for BtoA."""
    from gankit.data.sources import load_source

    a, b = domain_sources(cfg, opts, task, split="test")
    src = a if direction == "AtoB" else b
    check_domain(src, f"test domain {direction[0]}")
    data = load_source(test_data(cfg, src), progress=False)
    if data.images is None:
        return torch.stack([data.dataset[i] for i in range(len(data))])  # type: ignore[index]
    return data.images


def domain_streams(cfg: Config, opts: DomainOptions, task: str) -> dict[str, StreamSpec]:
    """Streams ``A`` and ``B``, each the run's data section with its own source."""
    a, b = domain_sources(cfg, opts, task)
    check_domain(a, "domain A")
    check_domain(b, "domain B")
    return {
        "A": StreamSpec(replace(cfg.data, source=a)),
        "B": StreamSpec(replace(cfg.data, source=b)),
    }


class ImagePool:
    """The reference's history of generated images (Shrivastava et al. 2017), 50 by default.

    Until full, a query returns the new image and stores it; afterwards, with probability 0.5 it
    returns a random stored image and stores the new one in its place, else it returns the new
    one. D then sees fakes from earlier generators too. The images and the fill count are task
    buffers, and the draws come from the global generator that checkpoints save, so a resumed run
    continues bit-exactly.
    """

    def __init__(self, size: int, shape: tuple[int, ...], device: torch.device) -> None:
        self.size = size
        self.images = torch.zeros((max(size, 1), *shape), device=device)
        self.count = torch.zeros((), dtype=torch.int64)  # on the CPU: read without a device sync

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            n = int(self.count)
            if n < self.size:
                self.images[n] = img
                self.count += 1
                out.append(img)
            elif torch.rand(()) < 0.5:
                k = int(torch.randint(0, self.size, ()))
                out.append(self.images[k].clone())
                self.images[k] = img
            else:
                out.append(img)
        return torch.stack(out)


def pad_to(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Pad height and width up to multiples of ``multiple`` (reflect where it can, else edge),
    centred; returns the padded batch and the (left, right, top, bottom) padding."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if not any(pad):
        return x, pad
    mode = "reflect" if max(pad[:2]) < w and max(pad[2:]) < h else "replicate"
    return F.pad(x, pad, mode=mode), pad


def crop_back(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class TranslatorModel:
    """A run's generators by direction, as a :class:`~gankit.inference.roles.Translator`.

    ``translate`` takes images of any height and width: it pads them to what the network needs
    (a multiple of 4 for the ResNet generators, of 2^downs for the U-Nets), translates, and crops
    back, so the output has exactly the input's size; nothing is resized.
    """

    def __init__(
        self,
        nets: dict[str, nn.Module],
        task: str,
        device: torch.device,
        channels: int,
        autocast: Callable | None = None,
    ) -> None:
        self.nets, self.task, self.device, self.channels = nets, task, device, channels
        self.directions = tuple(nets)
        self._autocast = autocast

    def generator(self, direction: str) -> nn.Module:
        if direction not in DIRECTIONS:
            raise ConfigError(f"--direction {direction!r}: choose AtoB or BtoA")
        if direction not in self.nets:
            raise ConfigError(
                f"this {self.task} run is one-sided: it translates {self.directions[0]} only, "
                f"not {direction}"
            )
        return self.nets[direction]

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        """Images (N, C, H, W) in [-1, 1] → translated images of the same size, on the CPU."""
        net = self.generator(direction)
        with eval_mode(net):
            padded, pad = pad_to(
                x.to(self.device).float(), net.multiple if isinstance(net, SizeMultiple) else 1
            )
            if self._autocast is not None:
                with self._autocast():
                    out = net(padded)
            else:
                out = net(padded)
        return crop_back(out.float(), pad).cpu()


class TranslationTask(Task[OptionsT]):
    """The base of the image-to-image tasks: the :class:`~gankit.inference.roles.Translator` role, fixed
    preview inputs from the first batches, the checks of ``<name>.loss`` and
    ``<name>.lr_decay_start``, and the constant-then-linear learning-rate decay."""

    roles = (Translator,)
    needs_first_batch = True

    @classmethod
    def validate(cls, cfg: Config) -> None:
        o = cls.options(cfg)
        check_loss(o.loss, f"{cls.name}.loss")
        check_decay_start(o.lr_decay_start, f"{cls.name}.lr_decay_start")

    @classmethod
    def load_one_sided(
        cls, cfg: Config, parts: dict[str, Any], device: torch.device, direction: str
    ) -> TranslatorModel:
        """The trained generator ``G`` alone, for a task that translates one way."""
        G = cls.build_nets(cfg)["G"]
        G.load_state_dict(parts["nets"]["G"])
        G.to(device).eval()
        return TranslatorModel({direction: G}, cls.name, device, cfg.data.channels)

    def translator(self, nets: dict[str, nn.Module]) -> TranslatorModel:
        """The task's current generators by direction, for previews."""
        return TranslatorModel(nets, self.name, self.rt.device, self.cfg.data.channels)

    def decaying(self, optims: dict[str, torch.optim.Optimizer]) -> dict[str, FactorSchedule]:
        """A schedule per optimizer: constant until ``lr_decay_start``, then linear to 0."""
        start = self.options(self.cfg).lr_decay_start
        return decaying(optims, self.cfg.train.steps, start)
