"""CycleGAN (Zhu et al. 2017): two generators, two PatchGANs, cycle consistency.

``G_A`` translates A → B and ``G_B`` B → A; ``D_A`` tells real B from ``G_A``'s fakes and ``D_B``
real A from ``G_B``'s (the reference's naming). One step draws one batch from each domain and
makes one generator update and one discriminator update, as the reference's
``optimize_parameters``:

1. fake B = G_A(A), rec A = G_B(fake B); fake A = G_B(B), rec B = G_A(fake A) (with
   ``cycle_noise``, each fake plus Gaussian noise before it goes back);
2. generators, with the discriminators frozen: adversarial ℓ(D_A(fake B)) + ℓ(D_B(fake A)), cycle
   λ_A‖rec A − A‖₁ + λ_B‖rec B − B‖₁, identity λ_idt·(λ_B‖G_A(B) − B‖₁ + λ_A‖G_B(A) − A‖₁);
3. discriminators on real images and on fakes drawn from the image pools, each halved.

Defaults are the reference's: LSGAN, λ_A = λ_B = 10, identity 0.5, pools of 50, Adam 2e-4
(0.5, 0.999) with one optimizer over both generators and one over both discriminators, constant
learning rate for the first half and a linear decay to 0 over the second.

Parts: nets ``G_A``, ``G_B``, ``D_A``, ``D_B``; optimizers, schedules, scalers ``G``, ``D``;
buffers: the two pools, their fill counts, and the fixed preview images.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.config import Config, OptimConfig
from gankit.config.options import option
from gankit.engine.runtime import Runtime, optimizer_step
from gankit.errors import ConfigError
from gankit.nets import build_net
from gankit.tasks.base import (
    Streams,
    StreamSpec,
    TaskInfo,
    make_optimizer,
    requires_grad,
)
from gankit.tasks.image_to_image import (
    DomainOptions,
    ImagePool,
    ReferenceLoss,
    TranslationTask,
    TranslatorModel,
    domain_streams,
    unpaired_test_inputs,
)


@dataclass
class CycleGanOptions(DomainOptions):
    """The CycleGAN objective (``cyclegan.*``)."""

    loss: str = "lsgan"
    """Adversarial loss, one of the shared objectives (the reference's default: lsgan)."""
    lambda_A: float = 10.0
    """Weight of the cycle loss A → B → A."""
    lambda_B: float = 10.0
    """Weight of the cycle loss B → A → B."""
    lambda_identity: float = 0.5
    """Identity loss weight, relative to λ_A / λ_B (0 = off)."""
    pool_size: int = option(50, structural=True)
    """Generated images kept for the discriminators (0 = none)."""
    cycle_noise: float = 0.0
    """Standard deviation of Gaussian noise added to each translated image before the other
    generator maps it back, in the cycle terms only (0 = off, the reference), on the images'
    [-1, 1] scale: 0.02 is about 2.5 of 255 grey levels. Noise of a few grey levels stops a
    generator from hiding its input in faint patterns that only the reverse generator reads
    (Bashkirova et al., "Adversarial Self-Defense for Cycle-Consistent GANs", NeurIPS 2019)."""


class CycleGanTask(TranslationTask[CycleGanOptions]):
    """Unpaired translation both ways; the loop drives it."""

    name = "cyclegan"
    Options = CycleGanOptions
    networks = {
        "G_A": ("translator", "resnet_9blocks"),
        "G_B": ("translator", "resnet_9blocks"),
        "D_A": ("patch_discriminator", "basic"),
        "D_B": ("patch_discriminator", "basic"),
    }
    optimizers = {"G": OptimConfig(), "D": OptimConfig()}
    structural = ("train.n_preview",)

    @classmethod
    def validate(cls, cfg: Config) -> None:
        super().validate(cfg)
        o = cfg.section(CycleGanOptions)
        for key in ("lambda_A", "lambda_B", "lambda_identity", "cycle_noise"):
            if getattr(o, key) < 0:
                raise ConfigError(f"cyclegan.{key}={getattr(o, key)} must be >= 0")
        if o.pool_size < 0:
            raise ConfigError(f"cyclegan.pool_size={o.pool_size} must be >= 0 (0 = no pool)")

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        return domain_streams(cfg, cfg.section(CycleGanOptions), "cyclegan")

    @classmethod
    def build_nets(cls, cfg: Config) -> dict[str, torch.nn.Module]:
        size, ch = cfg.data.image_size, cfg.data.channels
        return {
            name: build_net(kind, cfg.nets[name], size, ch)
            for name, (kind, _) in cls.networks.items()
        }

    @classmethod
    def test_inputs(cls, cfg: Config, direction: str) -> Tensor:
        """uint8 test images of the source domain (for ``gankit evaluate``)."""
        return unpaired_test_inputs(cfg, cfg.section(CycleGanOptions), cls.name, direction)

    @classmethod
    def load_model(cls, cfg: Config, parts: dict[str, Any], device: torch.device) -> Any:
        nets = cls.build_nets(cfg)
        for name in ("G_A", "G_B"):
            nets[name].load_state_dict(parts["nets"][name])
            nets[name].to(device).eval()
        return TranslatorModel(
            {"AtoB": nets["G_A"], "BtoA": nets["G_B"]}, cls.name, device, cfg.data.channels
        )

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        o = cfg.section(CycleGanOptions)
        nets = self.build_nets(cfg)
        self.G_A, self.G_B, self.D_A, self.D_B = (nets[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        self.g_a, self.g_b = rt.prepare(self.G_A), rt.prepare(self.G_B)
        self.d_a, self.d_b = rt.prepare(self.D_A), rt.prepare(self.D_B)
        params_g = itertools.chain(self.G_A.parameters(), self.G_B.parameters())
        params_d = itertools.chain(self.D_A.parameters(), self.D_B.parameters())
        self.opt_g = make_optimizer(params_g, cfg.optim["G"])
        self.opt_d = make_optimizer(params_d, cfg.optim["D"])
        self.scaler_g, self.scaler_d = rt.grad_scaler(), rt.grad_scaler()
        self.gan = ReferenceLoss(o.loss)
        shape = (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
        self.pool_A = ImagePool(o.pool_size, shape, rt.device)  # fake A images, for D_B
        self.pool_B = ImagePool(o.pool_size, shape, rt.device)  # fake B images, for D_A
        n = cfg.train.n_preview
        self.preview_A = first["A"][:n].to(rt.device).clone()
        self.preview_B = first["B"][:n].to(rt.device).clone()

        self.parts.nets = dict(nets)
        self.parts.optims = {"G": self.opt_g, "D": self.opt_d}
        self.parts.scheds = self.decaying(self.parts.optims)
        self.parts.scalers = {"G": self.scaler_g, "D": self.scaler_d}
        self.parts.buffers = {
            "pool_A": self.pool_A.images,
            "pool_A_count": self.pool_A.count,
            "pool_B": self.pool_B.images,
            "pool_B_count": self.pool_B.count,
            "preview_A": self.preview_A,
            "preview_B": self.preview_B,
        }
        self.info = TaskInfo(
            progress_keys=("loss_G", "loss_cycle_A", "loss_cycle_B", "loss_D_A", "loss_D_B"),
            nan_advice="lower the learning rates (optim.G.lr, optim.D.lr)",
        )

    def previews(self) -> dict[str, Tensor]:
        """real A | fake B | rec A | real B | fake A | rec B, for the fixed preview images."""
        t = self.translator({"AtoB": self.G_A, "BtoA": self.G_B})
        fake_B = t.translate(self.preview_A, "AtoB")
        fake_A = t.translate(self.preview_B, "BtoA")
        return {
            "real A": self.preview_A.cpu(),
            "fake B": fake_B,
            "rec A": t.translate(fake_B, "BtoA"),
            "real B": self.preview_B.cpu(),
            "fake A": fake_A,
            "rec B": t.translate(fake_A, "AtoB"),
        }

    @staticmethod
    def _noisy(x: Tensor, std: float) -> Tensor:
        """``x`` plus Gaussian noise of ``std`` (from the global generator checkpoints save)."""
        return x + std * torch.randn_like(x) if std > 0 else x

    def step(self, batches: Streams) -> dict[str, Tensor]:
        o, mf = self.cfg.section(CycleGanOptions), self.rt.memory_format
        real_A = next(batches["A"]).contiguous(memory_format=mf)
        real_B = next(batches["B"]).contiguous(memory_format=mf)

        with self.rt.autocast():
            fake_B = self.g_a(real_A)
            rec_A = self.g_b(self._noisy(fake_B, o.cycle_noise))
            fake_A = self.g_b(real_B)
            rec_B = self.g_a(self._noisy(fake_A, o.cycle_noise))

        # Generators: fool both discriminators, come back where they started, and (identity)
        # leave images of their output domain alone.
        requires_grad([self.D_A, self.D_B], False)
        with self.rt.autocast():
            loss_G_A = self.gan.g(self.d_a(fake_B))
            loss_G_B = self.gan.g(self.d_b(fake_A))
            loss_cycle_A = o.lambda_A * F.l1_loss(rec_A.float(), real_A)
            loss_cycle_B = o.lambda_B * F.l1_loss(rec_B.float(), real_B)
            loss_idt_A = loss_idt_B = torch.zeros((), device=real_A.device)
            if o.lambda_identity > 0:
                idt_A = self.g_a(real_B)
                idt_B = self.g_b(real_A)
                loss_idt_A = o.lambda_B * o.lambda_identity * F.l1_loss(idt_A.float(), real_B)
                loss_idt_B = o.lambda_A * o.lambda_identity * F.l1_loss(idt_B.float(), real_A)
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        optimizer_step(loss_G, self.opt_g, self.scaler_g)
        requires_grad([self.D_A, self.D_B], True)

        # Discriminators: real images against fakes from the pools, each loss halved.
        fake_B_seen = self.pool_B.query(fake_B.detach())
        fake_A_seen = self.pool_A.query(fake_A.detach())
        with self.rt.autocast():
            loss_D_A = self.gan.d(self.d_a(real_B), self.d_a(fake_B_seen))
            loss_D_B = self.gan.d(self.d_b(real_A), self.d_b(fake_A_seen))
        optimizer_step(loss_D_A + loss_D_B, self.opt_d, self.scaler_d)

        for sched in self.parts.scheds.values():
            sched.step()
        return {
            "loss_G": loss_G.detach(),
            "loss_G_A": loss_G_A.detach(),
            "loss_G_B": loss_G_B.detach(),
            "loss_cycle_A": loss_cycle_A.detach(),
            "loss_cycle_B": loss_cycle_B.detach(),
            "loss_idt_A": loss_idt_A.detach(),
            "loss_idt_B": loss_idt_B.detach(),
            "loss_D_A": loss_D_A.detach(),
            "loss_D_B": loss_D_B.detach(),
        }
