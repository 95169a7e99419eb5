"""pix2pix (Isola et al. 2017): paired translation with a conditional PatchGAN and L1.

The stream ``pair`` yields A and B stacked on the channel axis (see :mod:`gankit.data.paired`),
cropped and flipped together. With ``direction: AtoB`` the generator maps A to B; ``BtoA`` the
other way. One step, as the reference's ``optimize_parameters``:

1. fake = G(input);
2. D on the concatenated pairs (input, target) against (input, fake), the sum halved;
3. G, with D frozen: ℓ(D(input, fake)) + λ_L1·‖fake − target‖₁.

Defaults are the reference's: U-Net 256 with batch norm and dropout, basic PatchGAN on 2·C
channels, the vanilla (non-saturating BCE) loss, λ_L1 = 100, no image pool, Adam 2e-4
(0.5, 0.999), constant learning rate then a linear decay over the second half.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.config import Config, OptimConfig
from gankit.config.options import option
from gankit.engine.runtime import Runtime, optimizer_step
from gankit.errors import ConfigError, DataError
from gankit.nets import build_net
from gankit.tasks.base import (
    Streams,
    StreamSpec,
    TaskInfo,
    make_optimizer,
    requires_grad,
)
from gankit.tasks.image_to_image import (
    ReferenceLoss,
    TranslationTask,
    test_data,
)


@dataclass
class Pix2PixOptions:
    """The pix2pix objective and its paired data (``pix2pix.*``)."""

    source: str | None = option(None, structural=True)
    """aligned:PATH (A|B side by side) or paired:PATH_A,PATH_B; None: aligned:<data.root>/train."""
    direction: Literal["AtoB", "BtoA"] = option("AtoB", structural=True)
    """Which half is the input."""
    loss: str = "non-saturating"
    """Adversarial loss (the reference's vanilla GAN loss is the non-saturating BCE)."""
    lambda_L1: float = 100.0
    lr_decay_start: float | None = 0.5
    """Fraction of train.steps after which the learning rates fall linearly to 0; None: constant."""


def paired_source(cfg: Config) -> str:
    """``pix2pix.source``, else ``aligned:<data.root>/train``; refuses unpaired layouts."""
    src = cfg.section(Pix2PixOptions).source
    if src is not None:
        if not src.startswith(("aligned:", "paired:")):
            raise ConfigError(
                f"pix2pix.source={src!r}: pix2pix needs paired data, aligned:PATH (A|B side by "
                "side) or paired:FOLDER_A,FOLDER_B (matching file names)"
            )
        return src
    root = cfg.data.root
    if root is None:
        raise ConfigError(
            "pix2pix needs paired data: set data.root=DIR with DIR/train of side-by-side A|B "
            "images (the reference's aligned layout), or pix2pix.source=paired:FOLDER_A,FOLDER_B"
        )
    root_path = Path(root)
    if not (root_path / "train").is_dir() and (root_path / "trainA").is_dir():
        raise DataError(
            f"{root} holds unpaired trainA/ and trainB/ folders: pix2pix needs pairs, "
            f"{root}/train of side-by-side A|B images or pix2pix.source=paired:A,B with "
            "matching file names (for unpaired domains use cyclegan or cut)"
        )
    return f"aligned:{root_path / 'train'}"


class Pix2PixTask(TranslationTask[Pix2PixOptions]):
    """Paired translation in one direction; the loop drives it."""

    name = "pix2pix"
    Options = Pix2PixOptions
    networks = {"G": ("translator", "unet_256"), "D": ("patch_discriminator", "basic")}
    optimizers = {"G": OptimConfig(), "D": OptimConfig()}
    structural = ("train.n_preview",)

    @classmethod
    def validate(cls, cfg: Config) -> None:
        super().validate(cfg)
        o = cfg.section(Pix2PixOptions)
        if o.lambda_L1 < 0:
            raise ConfigError(f"pix2pix.lambda_L1={o.lambda_L1} must be >= 0")

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        return {"pair": StreamSpec(replace(cfg.data, source=paired_source(cfg)))}

    @classmethod
    def test_inputs(cls, cfg: Config, direction: str) -> Tensor:
        """uint8 input halves of the test pairs in <data.root>/test, for ``gankit evaluate``."""
        from gankit.data.paired import load_paired

        if cfg.section(Pix2PixOptions).source is not None:
            raise ConfigError(
                "this pix2pix run was trained on pix2pix.source: translate your test inputs with "
                "gankit translate and evaluate that folder"
            )
        src = paired_source(cfg).removesuffix("train") + "test"
        pairs = load_paired(test_data(cfg, src), progress=False)
        c = cfg.data.channels
        return pairs[:, :c] if direction == "AtoB" else pairs[:, c:]

    @classmethod
    def build_nets(cls, cfg: Config) -> dict[str, torch.nn.Module]:
        size, ch = cfg.data.image_size, cfg.data.channels
        G = build_net("translator", cfg.nets["G"], size, ch)
        D = build_net("patch_discriminator", cfg.nets["D"], size, 2 * ch)  # conditional: (x, y)
        return {"G": G, "D": D}

    @classmethod
    def load_model(cls, cfg: Config, parts: dict[str, Any], device: torch.device) -> Any:
        return cls.load_one_sided(cfg, parts, device, cfg.section(Pix2PixOptions).direction)

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        nets = self.build_nets(cfg)
        self.G, self.D = nets["G"], nets["D"]
        self.g, self.d = rt.prepare(self.G), rt.prepare(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optim["G"])
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optim["D"])
        self.scaler_g, self.scaler_d = rt.grad_scaler(), rt.grad_scaler()
        self.gan = ReferenceLoss(cfg.section(Pix2PixOptions).loss)
        x, y = self.split(first["pair"][: cfg.train.n_preview].to(rt.device))
        self.preview_in, self.preview_target = x.clone(), y.clone()
        self.parts.nets = {"G": self.G, "D": self.D}
        self.parts.optims = {"G": self.opt_g, "D": self.opt_d}
        self.parts.scheds = self.decaying(self.parts.optims)
        self.parts.scalers = {"G": self.scaler_g, "D": self.scaler_d}
        self.parts.buffers = {"preview_in": self.preview_in, "preview_target": self.preview_target}
        self.info = TaskInfo(
            progress_keys=("loss_G_GAN", "loss_G_L1", "loss_D"),
            nan_advice="lower the learning rates (optim.G.lr, optim.D.lr)",
        )

    def split(self, pair: Tensor) -> tuple[Tensor, Tensor]:
        """(input, target) halves of a stacked pair batch, by ``pix2pix.direction``."""
        c = self.cfg.data.channels
        a, b = pair[:, :c], pair[:, c:]
        return (a, b) if self.cfg.section(Pix2PixOptions).direction == "AtoB" else (b, a)

    def previews(self) -> dict[str, Tensor]:
        t = self.translator({self.cfg.section(Pix2PixOptions).direction: self.G})
        return {
            "input": self.preview_in.cpu(),
            "output": t.translate(self.preview_in, self.cfg.section(Pix2PixOptions).direction),
            "target": self.preview_target.cpu(),
        }

    def step(self, batches: Streams) -> dict[str, Tensor]:
        o = self.cfg.section(Pix2PixOptions)
        x, y = self.split(next(batches["pair"]).contiguous(memory_format=self.rt.memory_format))
        with self.rt.autocast():
            fake = self.g(x)
            # D: does this output belong to this input?
            loss_D = self.gan.d(
                self.d(torch.cat([x, y], 1)), self.d(torch.cat([x, fake.detach()], 1))
            )
        optimizer_step(loss_D, self.opt_d, self.scaler_d)

        requires_grad([self.D], False)
        with self.rt.autocast():
            loss_G_GAN = self.gan.g(self.d(torch.cat([x, fake], 1)))
            loss_G_L1 = o.lambda_L1 * F.l1_loss(fake.float(), y)
        optimizer_step(loss_G_GAN + loss_G_L1, self.opt_g, self.scaler_g)
        requires_grad([self.D], True)

        for sched in self.parts.scheds.values():
            sched.step()
        return {
            "loss_G_GAN": loss_G_GAN.detach(),
            "loss_G_L1": loss_G_L1.detach(),
            "loss_D": loss_D.detach(),
        }
