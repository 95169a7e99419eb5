"""CUT and FastCUT (Park et al. 2020): one-sided unpaired translation with PatchNCE.

One generator G (A → B, or B → A with ``cut.direction: BtoA``) and one PatchGAN D. Instead of a
second generator and a cycle, content is kept by contrast: a patch of the output should match the
input patch at the same place more than any other patch of that input, measured on the features
of G's own encoder (layers 0, 4, 8, 12, 16) through small projection heads F
(:mod:`gankit.nets.patchnce`). One step, as CUT's ``optimize_parameters``:

1. fake = G(real_A) (and, with ``nce_idt``, idt = G(real_B) in the same batch);
2. D: ℓ(D(real_B), real) + ℓ(D(fake), fake), halved;
3. G and F: λ_GAN·ℓ(D(fake), real) + λ_NCE·NCE(real_A, fake), averaged with
   λ_NCE·NCE(real_B, idt) when ``nce_idt`` is on.

CUT: λ_NCE 1 with the NCE identity term. FastCUT (the ``fastcut`` recipe): λ_NCE 10, no identity,
flip-equivariance (the input is flipped at random and the output's features flipped back before
the NCE). The heads are built from the first batch's feature widths; F has its own optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from gankit.config import Config, OptimConfig
from gankit.config.options import option
from gankit.engine.runtime import Runtime, optimizer_step
from gankit.errors import ConfigError
from gankit.nets import build_net
from gankit.nets.patchnce import PatchHeads, patch_nce_loss
from gankit.tasks.base import (
    Streams,
    StreamSpec,
    TaskInfo,
    make_optimizer,
    requires_grad,
)
from gankit.tasks.image_to_image import (
    DomainOptions,
    ReferenceLoss,
    TranslationTask,
    domain_streams,
    unpaired_test_inputs,
)


@dataclass
class CutOptions(DomainOptions):
    """The CUT objective (``cut.*``)."""

    direction: Literal["AtoB", "BtoA"] = option("AtoB", structural=True)
    """The one direction G learns: AtoB maps domain A to B."""
    loss: str = "lsgan"
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0
    nce_idt: bool = True
    """Also G(B) ≈ B under PatchNCE (CUT); off for FastCUT."""
    nce_layers: list[int] = option(default_factory=lambda: [0, 4, 8, 12, 16], structural=True)
    """Indices into the generator's layer list whose outputs are contrasted."""
    num_patches: int = 256
    nce_t: float = 0.07
    """Temperature of the PatchNCE softmax."""
    head_channels: int = option(256, structural=True)
    """Width of the projection heads (CUT's netF_nc)."""
    flip_equivariance: bool = False
    """Flip the input at random and the output's features back (FastCUT)."""


class CutTask(TranslationTask[CutOptions]):
    """One-sided translation with PatchNCE; the loop drives it."""

    name = "cut"
    Options = CutOptions
    networks = {"G": ("translator", "resnet_9blocks"), "D": ("patch_discriminator", "basic")}
    optimizers = {"G": OptimConfig(), "D": OptimConfig(), "F": OptimConfig()}
    structural = ("train.n_preview",)
    # needs_first_batch (from TranslationTask): the heads are sized from the first batch too

    @classmethod
    def validate(cls, cfg: Config) -> None:
        super().validate(cfg)
        o = cfg.section(CutOptions)
        if not cfg.nets["G"].arch.startswith("resnet"):
            raise ConfigError(
                f"nets.G.arch={cfg.nets['G'].arch}: cut taps the ResNet generator's encoder; use "
                "resnet_9blocks or resnet_6blocks"
            )
        if not o.nce_layers or min(o.nce_layers) < 0:
            raise ConfigError(f"cut.nce_layers={o.nce_layers}: give layer indices >= 0")
        for key in ("lambda_gan", "lambda_nce"):
            if getattr(o, key) < 0:
                raise ConfigError(f"cut.{key}={getattr(o, key)} must be >= 0")
        if o.num_patches <= 0 or o.head_channels <= 0 or o.nce_t <= 0:
            raise ConfigError("cut.num_patches, cut.head_channels and cut.nce_t must be positive")

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        return domain_streams(cfg, cfg.section(CutOptions), "cut")

    @classmethod
    def build_nets(cls, cfg: Config) -> dict[str, torch.nn.Module]:
        size, ch = cfg.data.image_size, cfg.data.channels
        return {
            "G": build_net("translator", cfg.nets["G"], size, ch),
            "D": build_net("patch_discriminator", cfg.nets["D"], size, ch),
        }

    @classmethod
    def test_inputs(cls, cfg: Config, direction: str) -> Tensor:
        """uint8 test images of the source domain (for ``gankit evaluate``)."""
        return unpaired_test_inputs(cfg, cfg.section(CutOptions), cls.name, direction)

    @classmethod
    def load_model(cls, cfg: Config, parts: dict[str, Any], device: torch.device) -> Any:
        return cls.load_one_sided(cfg, parts, device, cfg.section(CutOptions).direction)

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        o = cfg.section(CutOptions)
        nets = self.build_nets(cfg)
        self.G, self.D = nets["G"], nets["D"]
        self.g, self.d = rt.prepare(self.G), rt.prepare(self.D)
        src, tgt = ("A", "B") if o.direction == "AtoB" else ("B", "A")
        self.src, self.tgt = src, tgt
        n_layers = len(self.G.model)
        if max(o.nce_layers) >= n_layers:
            raise ConfigError(
                f"cut.nce_layers={o.nce_layers}: {cfg.nets['G'].arch} has layers 0-{n_layers - 1}"
            )
        with torch.no_grad():
            probe = first[src][:1].to(rt.device)
            widths = [f.shape[1] for f in self.G.encode(probe, o.nce_layers)]
        self.F = PatchHeads(widths, o.head_channels).to(rt.device)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optim["G"])
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optim["D"])
        self.opt_f = make_optimizer(self.F.parameters(), cfg.optim["F"])
        self.scalers = {k: rt.grad_scaler() for k in ("G", "D")}
        self.gan = ReferenceLoss(o.loss)
        n = cfg.train.n_preview
        self.preview_src = first[src][:n].to(rt.device).clone()
        self.parts.nets = {"G": self.G, "D": self.D, "F": self.F}
        self.parts.optims = {"G": self.opt_g, "D": self.opt_d, "F": self.opt_f}
        self.parts.scheds = self.decaying(self.parts.optims)
        self.parts.scalers = dict(self.scalers)
        self.parts.buffers = {"preview_src": self.preview_src}
        self.info = TaskInfo(
            progress_keys=("loss_G_GAN", "loss_NCE", "loss_D"),
            nan_advice="lower the learning rates (optim.G.lr, optim.D.lr, optim.F.lr)",
        )

    def previews(self) -> dict[str, Tensor]:
        t = self.translator({self.cfg.section(CutOptions).direction: self.G})
        return {
            f"real {self.src}": self.preview_src.cpu(),
            f"fake {self.tgt}": t.translate(
                self.preview_src, self.cfg.section(CutOptions).direction
            ),
        }

    def nce(self, source: Tensor, output: Tensor, flipped: bool) -> Tensor:
        """PatchNCE between G's encoder features of ``source`` and of its translation ``output``,
        averaged over the layers (λ_NCE included)."""
        o = self.cfg.section(CutOptions)
        feat_q = self.G.encode(output, o.nce_layers)
        if flipped:
            feat_q = [f.flip(3) for f in feat_q]
        feat_k = self.G.encode(source, o.nce_layers)
        k, ids = self.F.sample(feat_k, o.num_patches)
        q, _ = self.F.sample(feat_q, o.num_patches, ids)
        n = source.shape[0]
        losses = [patch_nce_loss(qi, ki, n, o.nce_t).mean() for qi, ki in zip(q, k, strict=True)]
        return o.lambda_nce * torch.stack(losses).mean()

    def step(self, batches: Streams) -> dict[str, Tensor]:
        o, mf = self.cfg.section(CutOptions), self.rt.memory_format
        # real_A is the source domain's batch and real_B the target's, whichever the direction.
        real_A = next(batches[self.src]).contiguous(memory_format=mf)
        real_B = next(batches[self.tgt]).contiguous(memory_format=mf)
        n = real_A.shape[0]
        real = torch.cat([real_A, real_B]) if o.nce_idt else real_A
        flipped = o.flip_equivariance and bool(torch.rand(()) < 0.5)
        if flipped:
            real = real.flip(3)
        with self.rt.autocast():
            out = self.g(real)
        fake_B, idt_B = out[:n], out[n:]

        with self.rt.autocast():
            loss_D = self.gan.d(self.d(real_B), self.d(fake_B.detach()))
        optimizer_step(loss_D, self.opt_d, self.scalers["D"])

        requires_grad([self.D], False)
        with self.rt.autocast():
            loss_G_GAN = o.lambda_gan * self.gan.g(self.d(fake_B))
            # With a flipped input the NCE compares the unflipped input's features with the
            # output's features flipped back (flip-equivariance).
            zero = real_A.new_zeros(())
            loss_NCE = self.nce(real_A, fake_B, flipped) if o.lambda_nce > 0 else zero
            loss_NCE_Y = zero
            if o.nce_idt and o.lambda_nce > 0:
                loss_NCE_Y = self.nce(real_B, idt_B, flipped)
                loss_NCE_both = (loss_NCE + loss_NCE_Y) * 0.5
            else:
                loss_NCE_both = loss_NCE
        optimizer_step(loss_G_GAN + loss_NCE_both, [self.opt_g, self.opt_f], self.scalers["G"])
        requires_grad([self.D], True)

        for sched in self.parts.scheds.values():
            sched.step()
        return {
            "loss_G_GAN": loss_G_GAN.detach(),
            "loss_NCE": loss_NCE.detach(),
            "loss_NCE_Y": loss_NCE_Y.detach(),
            "loss_D": loss_D.detach(),
        }
