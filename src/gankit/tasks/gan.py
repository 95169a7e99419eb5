"""The unconditional image GAN: one generator step and its critic steps.

One ``step`` is one generator update preceded by ``d_steps`` critic updates (Goodfellow et al. 2014,
algorithm 1; Arjovsky et al. 2017, algorithm 1). Each critic update draws its own real batch from
the ``real`` stream. The fake batch of the last critic update is reused for the generator update,
as in the PyTorch DCGAN example, which saves one generator forward pass per step.

Parts: nets ``G``, ``D``; optimizers, schedules and grad scalers ``G``, ``D``; the EMA of ``G``
(``gan.ema``); buffers ``fixed_z`` (the preview noise) and ``g_step``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from gankit.ada import AdaController, ada_augment
from gankit.augment import diff_augment
from gankit.config import Config, OptimConfig
from gankit.data.stream import to_unit
from gankit.distributed import rank_rows, reduce_mean_, world
from gankit.errors import ConfigError
from gankit.nets.conditional import LabelDiscriminator
from gankit.objectives import OBJECTIVES, gradient_penalty, zero_centred_penalty
from gankit.roles import Critic, Generative
from gankit.runtime import Runtime
from gankit.schedules import FactorSchedule, decay_after
from gankit.stabilisers.matching import feature_matching_loss, last_layer, penultimate
from gankit.stabilisers.noise import instance_noise_std
from gankit.stabilisers.vbn import VirtualBatchNormNet
from gankit.tasks.base import (
    Streams,
    StreamSpec,
    Task,
    TaskInfo,
    freeze_first_layers,
    make_optimizer,
    optimizer_step,
    requires_grad,
)
from gankit.tasks.gan_model import (
    VBN_REFERENCE,
    GANModel,
    build_gan_nets,
    ema_with_warmup,
    update_ema,
)
from gankit.tasks.gan_options import GanOptions, critic_steps, gan_advice, validate_gan


class GANTask(Task):
    """Generator, discriminator, their optimizers and losses; the loop drives it."""

    name = "gan"
    Options = GanOptions
    networks = {"G": ("generator", "dcgan"), "D": ("discriminator", "dcgan")}
    optimizers = {"G": OptimConfig(), "D": OptimConfig()}
    structural = (
        "gan.noise",
        "train.n_preview",
        "gan.conditional",
        "gan.classes",
        "gan.embed_dim",
        "gan.minibatch",
        "gan.mbstd",
        "gan.vbn",
        "gan.ada",
        "gan.freeze_d",
    )
    roles = (Generative, Critic)

    # --- declarations -------------------------------------------------------------------------

    @classmethod
    def validate(cls, cfg: Config) -> None:
        validate_gan(cfg)

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        if cfg.gan.conditional == "none":
            return {"real": StreamSpec(cfg.data)}
        return {"labelled": StreamSpec(cfg.data, labels=True)}

    @classmethod
    def resolve(cls, cfg: Config, data: dict[str, Any]) -> None:
        """A conditional GAN's class names from the data (checked against a resumed run's)."""
        if cfg.gan.conditional == "none":
            return
        labelled = data["labelled"]
        if labelled.labels is None or not len(labelled.labels):
            raise ConfigError(
                f"gan.conditional={cfg.gan.conditional} needs labels: {cfg.data.source} has none "
                "(use mnist, fashion, cifar10, builtin:mnist or folder:PATH with one sub-folder "
                "per class)"
            )
        top = int(labelled.labels.max()) + 1
        found = tuple(labelled.classes) if labelled.classes else tuple(str(k) for k in range(top))
        if cfg.gan.classes is None:
            cfg.gan.classes = found
        elif tuple(cfg.gan.classes) != found:
            raise ConfigError(
                f"{cfg.data.source} has classes {', '.join(found)}, but this run was trained on "
                f"{', '.join(cfg.gan.classes)}"
            )

    @classmethod
    def batches_per_step(cls, cfg: Config) -> int:
        return cfg.gan.d_steps

    @classmethod
    def check_resume(cls, old: Config, new: Config) -> None:
        if (old.gan.ema > 0) != (new.gan.ema > 0):
            raise ConfigError(
                f"gan.ema cannot be switched {'on' if new.gan.ema else 'off'} when resuming "
                "(the EMA generator is part of the run): start a new run with --init-from"
            )

    @classmethod
    def build_nets(cls, cfg: Config) -> tuple[nn.Module, nn.Module]:
        return build_gan_nets(cfg)

    @classmethod
    def load_model(cls, cfg: Config, parts: dict[str, Any], device: torch.device) -> GANModel:
        G, D = cls.build_nets(cfg)
        G.load_state_dict(parts["nets"]["G"])
        D.load_state_dict(parts["nets"]["D"])
        ema = None
        if "G" in parts.get("ema", {}):
            ema = AveragedModel(copy.deepcopy(G), use_buffers=True)
            ema.load_state_dict(parts["ema"]["G"])
            ema.to(device).eval()
        fixed_z = parts["buffers"]["fixed_z"].to(device)
        G.to(device).eval()
        D.to(device).eval()
        g = cfg.gan
        return GANModel(
            G,
            D,
            ema,
            cfg.nets["G"].nz,
            g.noise,
            fixed_z,
            device,
            classes=g.classes if g.conditional != "none" else None,
            conditional=g.conditional,
        )

    # --- building -----------------------------------------------------------------------------

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        self.G, self.D = self.build_nets(cfg)
        self.frozen_d = freeze_first_layers(self.D, cfg.gan.freeze_d)
        self.reconstructs = bool(getattr(self.D, "has_reconstruction", False))
        self.g, self.d = rt.prepare(self.G), rt.prepare(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optim["G"])
        trainable_d = [p for p in self.D.parameters() if p.requires_grad]
        self.opt_d = make_optimizer(trainable_d, cfg.optim["D"])
        self.scaler_g, self.scaler_d = rt.grad_scaler(), rt.grad_scaler()
        self.objective = OBJECTIVES[cfg.gan.loss]
        self.ada: AdaController | None = None
        if cfg.gan.ada != "off":
            g = cfg.gan
            self.ada = AdaController(
                g.ada_target, g.ada_interval, g.ada_kimg, g.ada_p, adaptive=g.ada == "adaptive"
            )
        self.ema: AveragedModel | None = None
        if cfg.gan.ema > 0:
            self.ema = AveragedModel(
                self.G, multi_avg_fn=ema_with_warmup(cfg.gan.ema), use_buffers=True
            )
        self.g_step = torch.zeros((), dtype=torch.int64)  # a buffer, so it is checkpointed
        nz = cfg.nets["G"].nz
        conditional = cfg.gan.conditional
        self.model = GANModel(
            self.G,
            self.D,
            self.ema,
            nz,
            cfg.gan.noise,
            torch.empty(0),
            rt.device,
            rt.autocast,
            classes=cfg.gan.classes if conditional != "none" else None,
            conditional=conditional,
        )
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.model.fixed_z = self.model.noise(cfg.train.n_preview, generator=gen)
        if isinstance(self.G, VirtualBatchNormNet):  # the reference batch, fixed once
            ref = torch.Generator().manual_seed(cfg.seed + 3)
            self.G.reference.copy_(self.model.noise(VBN_REFERENCE, generator=ref))
        D = self.D.base if isinstance(self.D, LabelDiscriminator) else self.D
        self._feature_layer = last_layer(D)
        self.parts.nets = {"G": self.G, "D": self.D}
        self.parts.optims = {"G": self.opt_g, "D": self.opt_d}
        self.parts.scheds = {
            k: FactorSchedule(o, self._lr_factor) for k, o in self.parts.optims.items()
        }
        self.parts.scalers = {"G": self.scaler_g, "D": self.scaler_d}
        self.parts.ema = {"G": self.ema} if self.ema is not None else {}
        self.parts.buffers = {"fixed_z": self.model.fixed_z, "g_step": self.g_step}
        if self.ada is not None:
            self.parts.buffers["ada"] = self.ada.state
        self.info = TaskInfo(
            progress_keys=("loss_d", "loss_g", "d_real", "d_fake"),
            nan_advice="lower the learning rates or try gan.loss=wgan-gp / nets.D.norm=spectral",
            probabilities=self.objective.probability,
            health_advice=gan_advice(cfg),
            diversity_row="fake" if conditional == "none" else self._row_names()[0],
        )

    def _lr_factor(self, step: int) -> float:
        return decay_after(step, self.cfg.train.steps, self.cfg.gan.lr_decay_start)

    @property
    def clip(self) -> float | None:
        return self.cfg.gan.clip if self.cfg.gan.clip is not None else self.objective.clip

    @property
    def gp_weight(self) -> float | None:
        gp = self.cfg.gan.gp_weight
        return gp if gp is not None else self.objective.gp_weight

    def generative(self) -> GANModel:
        return self.model

    def _row_names(self) -> list[str]:
        return [f"class {name}" for name in self.model.classes or ()]

    def previews(self) -> dict[str, Tensor]:
        """``fake``; a conditional GAN: one row per class, the same noise in every row."""
        if not self.model.classes:
            return {"fake": self.model.sample()}
        k = self.model.num_classes
        z = self.model.fixed_z[: max(1, len(self.model.fixed_z) // k)]
        return {
            name: self.model.sample(z, torch.full((len(z),), c, dtype=torch.long))
            for c, name in enumerate(self._row_names())
        }

    # --- training -----------------------------------------------------------------------------

    def augment(self, x: Tensor) -> Tensor:
        """ADA, DiffAugment of D's input, then instance noise (identity without any)."""
        gan = self.cfg.gan
        if self.ada is not None:
            x = ada_augment(x, self.ada.p)
        x = diff_augment(x, gan.augment)
        std = instance_noise_std(gan.instance_noise, int(self.g_step), self.cfg.train.steps)
        if std > 0:
            shape, device, dtype = x.shape[1:], x.device, x.dtype
            noise = rank_rows(lambda n: torch.randn(n, *shape, device=device, dtype=dtype), len(x))
            x = x + std * noise
        return x

    def _real(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """Real images in [-1, 1] (and labels, from a labelled stream), in the run's layout."""
        x, y = (to_unit(batch[0]), batch[1]) if isinstance(batch, tuple | list) else (batch, None)
        return x.contiguous(memory_format=self.rt.memory_format), y

    def _fake_labels(self, n: int) -> Tensor:
        """Uniform class labels for this rank's rows of the global batch."""
        k, device = self.model.num_classes, self.rt.device
        return rank_rows(lambda rows: torch.randint(k, (rows,), device=device), n)

    def _generate(self, z: Tensor, y: Tensor | None) -> Tensor:
        return self.g(z) if y is None else self.g(z, y)

    def _discriminate(
        self, x: Tensor, y: Tensor | None, compiled: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """D's logits (float) and, for AC-GAN, its class logits."""
        d = self.d if compiled else self.D
        if y is None:
            return d(x).float(), None
        logits, aux = d(x, y)
        return logits.float(), None if aux is None else aux.float()

    def _feature_matching(
        self, real: Tensor, y_real: Tensor | None, fake: Tensor, y_fake: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """‖E f(real) − E f(fake)‖² on the input of D's output layer (and AC-GAN's class logits)."""
        layer = self._feature_layer
        with torch.no_grad():
            _, f_real = penultimate(
                lambda x: self._discriminate(x, y_real, compiled=False), self.augment(real), layer
            )
        (_, aux), f_fake = penultimate(
            lambda x: self._discriminate(x, y_fake, compiled=False), self.augment(fake), layer
        )
        return feature_matching_loss(f_real.float(), f_fake.float()), aux

    def _zero_centred(
        self,
        real: Tensor,
        y_real: Tensor | None,
        fake: Tensor,
        y_fake: Tensor | None,
        out: dict[str, Tensor],
    ) -> Tensor:
        """γ₁/2·R1 + γ₂/2·R2, the gradients taken through D's augmentation (as stylegan2-ada
        does); outside autocast and compile (a double backward)."""
        gan, total = self.cfg.gan, torch.zeros((), device=real.device)
        for gamma, x, y, key in ((gan.r1, real, y_real, "r1"), (gan.r2, fake, y_fake, "r2")):
            if gamma:
                pen = zero_centred_penalty(
                    lambda t, y=y: self._discriminate(self.augment(t), y, compiled=False)[0],
                    x.float(),
                )
                total = total + gamma / 2 * pen
                out[key] = pen.detach()
        return total

    def step(self, batches: Streams) -> dict[str, Tensor]:
        """One generator update after its critic updates; returns detached scalar tensors."""
        gan, obj = self.cfg.gan, self.objective
        n_critic = critic_steps(gan.d_steps, gan.d_schedule, int(self.g_step))
        conditional = self.model.classes is not None
        real_stream = batches["labelled" if conditional else "real"]
        out: dict[str, Tensor] = {}
        for k in range(n_critic):
            last = k == n_critic - 1
            real, y_real = self._real(next(real_stream))
            z = rank_rows(self.model.noise, len(real))  # this rank's rows of the global noise
            y_fake = self._fake_labels(len(real)) if conditional else None
            with torch.set_grad_enabled(last), self.rt.autocast():
                fake = self._generate(z, y_fake)  # kept with its graph on the last critic step
            with self.rt.autocast():
                real_in = self.augment(real)
                recon = None
                if self.reconstructs:  # FastGAN's D: logits and reconstruction in one pass
                    real_logits, recon = self.d(real_in, reconstruct=True)
                    real_logits, real_aux = real_logits.float(), None
                else:
                    real_logits, real_aux = self._discriminate(real_in, y_real)
                fake_logits, fake_aux = self._discriminate(self.augment(fake.detach()), y_fake)
            loss_d = obj.d_loss(real_logits, fake_logits, gan.label_smoothing)
            if self.ada is not None:
                # r_t of a relativistic loss: the sign of D(real) − D(fake), its only scale
                signal = real_logits - fake_logits if obj.relativistic else real_logits
                self.ada.observe(signal.detach(), len(real) * world().size, reduce=_mean)
            if recon is not None:
                recon = recon.float()
                loss_d = loss_d + recon
                out["recon"] = recon.detach()
            if (gan.r1 or gan.r2) and last and int(self.g_step) % gan.reg_every == 0:
                reg = self._zero_centred(real, y_real, fake.detach(), y_fake, out)
                loss_d = loss_d + gan.reg_every * reg
            if real_aux is not None:  # AC-GAN: D also learns the class of both
                aux = F.cross_entropy(real_aux, y_real) + F.cross_entropy(fake_aux, y_fake)
                loss_d = loss_d + gan.aux_weight * aux
                out["aux_d"] = aux.detach()
            if self.gp_weight:
                # Double backward stays outside autocast/compile (see REFERENCE.md pitfalls).
                gp = gradient_penalty(
                    lambda x, y=y_real: self._discriminate(x, y, compiled=False)[0],
                    real.float(),
                    fake.detach().float(),
                )
                loss_d = loss_d + self.gp_weight * gp
                out["gp"] = gp.detach()
            optimizer_step(loss_d, self.opt_d, self.scaler_d)
            if self.clip:
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-self.clip, self.clip)

        requires_grad([self.D], False)  # no D gradients are needed for the G update
        with self.rt.autocast():
            if gan.feature_matching:
                loss_g, gen_aux = self._feature_matching(real, y_real, fake, y_fake)
            else:
                gen_logits, gen_aux = self._discriminate(self.augment(fake), y_fake)
                if obj.relativistic:
                    with torch.no_grad():
                        pair, _ = self._discriminate(self.augment(real), y_real)
                    loss_g = obj.g_loss(gen_logits, pair)
                else:
                    loss_g = obj.g_loss(gen_logits)
        if gen_aux is not None:
            aux_g = F.cross_entropy(gen_aux, y_fake)
            loss_g = loss_g + gan.aux_weight * aux_g
            out["aux_g"] = aux_g.detach()
        optimizer_step(loss_g, self.opt_g, self.scaler_g)
        requires_grad([self.D], True)

        for sched in self.parts.scheds.values():
            sched.step()
        self.g_step += 1
        if self.ema is not None and int(self.g_step) > gan.ema_start:
            # updates before this one: g_step counts on the host, so no device read is needed
            update_ema(self.ema, self.G, gan.ema, int(self.g_step) - gan.ema_start - 1)

        if self.ada is not None:
            out.update(ada_p=torch.tensor(self.ada.p), ada_rt=torch.tensor(self.ada.rt))
        squash = torch.sigmoid if obj.probability else (lambda t: t)
        out.update(
            loss_d=loss_d.detach(),
            loss_g=loss_g.detach(),
            d_real=squash(real_logits.detach()).mean(),
            d_fake=squash(fake_logits.detach()).mean(),
        )
        return out


def _mean(t: Tensor) -> Tensor:
    """``t`` averaged over the ranks (in place), for ADA's r_t."""
    reduce_mean_([t])
    return t
