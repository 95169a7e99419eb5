"""The image GAN (unconditional or class-conditional): one generator step and its critic steps.

One ``step`` is one generator update preceded by ``d_steps`` critic updates (Goodfellow et al. 2014,
algorithm 1; Arjovsky et al. 2017, algorithm 1), each played as the phases of
:mod:`gankit.gan.phases` (D, Dreg, then G, Greg). Each critic update draws its own real batch from
the ``real`` (or ``labelled``) stream. The fake batch of the last critic update is reused for the
generator update, as in the PyTorch DCGAN example, which saves one generator forward pass per step.

Parts: nets ``G``, ``D``; optimizers, schedules and grad scalers ``G``, ``D``; the EMA of ``G``
(``gan.ema``); buffers ``fixed_z`` (the preview noise) and ``g_step``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from gankit import seeds
from gankit.config import Config, OptimConfig
from gankit.engine.runtime import Runtime, optimizer_step
from gankit.engine.schedules import decaying
from gankit.errors import ConfigError
from gankit.gan.game import Game, PhaseBatch
from gankit.gan.model import (
    VBN_REFERENCE,
    GANModel,
    build_gan_nets,
    ema_beta,
    ema_with_warmup,
    update_ema,
    update_ema_beta,
)
from gankit.gan.objectives import resolve_loss
from gankit.gan.options import GanOptions, critic_steps, gan_advice, validate_gan
from gankit.gan.phases import Phase, compensate
from gankit.gan.pipeline import Ada
from gankit.gan.scheduled import Scheduler, parse_schedules
from gankit.gan.stabilisers.vbn import VirtualBatchNormNet
from gankit.inference.roles import ConditionalGenerative, Critic, Exportable, Generative
from gankit.tasks.base import (
    Streams,
    StreamSpec,
    Task,
    TaskInfo,
    freeze_first_layers,
    make_optimizer,
    requires_grad,
)
from gankit.tasks.gan_build import build_penalties, build_phases, build_pipeline, check_mapped


def _has_ema(gan: GanOptions) -> bool:
    return gan.ema > 0 or gan.ema_kimg > 0


class GANTask(Task[GanOptions]):
    """Generator, discriminator, their optimizers and losses; the loop drives it."""

    name = "gan"
    Options = GanOptions
    networks = {"G": ("generator", "dcgan"), "D": ("discriminator", "dcgan")}
    optimizers = {"G": OptimConfig(), "D": OptimConfig()}
    structural = ("train.n_preview",)
    roles = (Generative, Critic, ConditionalGenerative, Exportable)

    # --- declarations -------------------------------------------------------------------------

    @classmethod
    def validate(cls, cfg: Config) -> None:
        validate_gan(cfg)

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        if cfg.section(GanOptions).conditional == "none":
            return {"real": StreamSpec(cfg.data)}
        return {"labelled": StreamSpec(cfg.data, labels=True)}

    @classmethod
    def resolve(cls, cfg: Config, data: dict[str, Any]) -> None:
        """A conditional GAN's class names from the data (checked against a resumed run's)."""
        if cfg.section(GanOptions).conditional == "none":
            return
        labelled = data["labelled"]
        if labelled.labels is None or not len(labelled.labels):
            raise ConfigError(
                f"gan.conditional={cfg.section(GanOptions).conditional} needs labels: {cfg.data.source} has none "
                "(use mnist, fashion, cifar10, builtin:mnist or folder:PATH with one sub-folder "
                "per class)"
            )
        top = int(labelled.labels.max()) + 1
        found = tuple(labelled.classes) if labelled.classes else tuple(str(k) for k in range(top))
        if cfg.section(GanOptions).classes is None:
            cfg.section(GanOptions).classes = found
        elif tuple(cfg.section(GanOptions).classes) != found:
            raise ConfigError(
                f"{cfg.data.source} has classes {', '.join(found)}, but this run was trained on "
                f"{', '.join(cfg.section(GanOptions).classes)}"
            )

    @classmethod
    def batches_per_step(cls, cfg: Config) -> int:
        return cfg.section(GanOptions).d_steps

    @classmethod
    def check_resume(cls, old: Config, new: Config) -> None:
        was, now = _has_ema(old.section(GanOptions)), _has_ema(new.section(GanOptions))
        if was != now:
            raise ConfigError(
                f"gan.ema cannot be switched {'on' if now else 'off'} when resuming "
                "(the EMA generator is part of the run): start a new run with --init-from"
            )

    @classmethod
    def build_nets(cls, cfg: Config) -> dict[str, nn.Module]:
        G, D = build_gan_nets(cfg)
        return {"G": G, "D": D}

    @classmethod
    def load_model(cls, cfg: Config, parts: dict[str, Any], device: torch.device) -> GANModel:
        nets = cls.build_nets(cfg)
        G, D = nets["G"], nets["D"]
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
        g = cfg.section(GanOptions)
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
        gan = cfg.section(GanOptions)
        nets = self.build_nets(cfg)
        self.G, self.D = nets["G"], nets["D"]
        self.frozen_d = freeze_first_layers(self.D, gan.freeze_d)
        self.objective, defaults = resolve_loss(gan.loss)
        self.phases = build_phases(gan, self.D, build_penalties(gan, defaults))
        check_mapped(self.G, gan, self.phases.penalties, cfg.nets["G"].arch)
        if gan.style_mixing:
            self.G.style_mixing = gan.style_mixing
        self.ema: AveragedModel | None = None
        if _has_ema(gan):
            self.ema = AveragedModel(
                self.G, multi_avg_fn=ema_with_warmup(gan.ema), use_buffers=True
            )
        self.g_step = torch.zeros((), dtype=torch.int64)  # a buffer, so it is checkpointed
        self.model = self._model(rt)
        self.game = Game(
            self.G,
            self.D,
            rt.prepare(self.G),
            rt.prepare(self.D),
            self.objective,
            build_pipeline(cfg, rt),
            rt,
            self.model.noise,
            self.model.num_classes,
        )
        self._declare_parts()
        ada = next((t for t in self.game.augment.transforms if isinstance(t, Ada)), None)
        self.scheduler = Scheduler(
            parse_schedules(gan.schedules), cfg.train.batch_size, self.phases.penalties,
            [self.opt_g, self.opt_d], ada.controller.state if ada is not None else None,
            list(self.parts.scheds.values()),
        )  # fmt: skip
        self.info = TaskInfo(
            progress_keys=("loss_d", "loss_g", "d_real", "d_fake"),
            nan_advice="lower the learning rates or try gan.loss=wgan-gp / nets.D.norm=spectral",
            probabilities=self.objective.probability,
            health_advice=gan_advice(cfg),
            diversity_row="fake" if gan.conditional == "none" else self._row_names()[0],
        )

    def _model(self, rt: Runtime) -> GANModel:
        """The sampling view of the networks being trained, with its fixed preview noise."""
        cfg, conditional = self.cfg, self.cfg.section(GanOptions).conditional
        model = GANModel(
            self.G,
            self.D,
            self.ema,
            cfg.nets["G"].nz,
            cfg.section(GanOptions).noise,
            torch.empty(0),
            rt.device,
            rt.autocast,
            classes=cfg.section(GanOptions).classes if conditional != "none" else None,
            conditional=conditional,
        )
        gen = seeds.generator(cfg.seed, seeds.PREVIEW)
        model.fixed_z = model.noise(cfg.train.n_preview, generator=gen)
        if isinstance(self.G, VirtualBatchNormNet):  # the reference batch, fixed once
            ref = seeds.generator(cfg.seed, seeds.VBN_REFERENCE)
            self.G.reference.copy_(model.noise(VBN_REFERENCE, generator=ref))
        return model

    def _declare_parts(self) -> None:
        """Networks, optimizers (D's compensated for a separate lazy regularisation), schedules,
        scalers, the EMA and the buffers: the fixed noise, the step, the pipeline's state."""
        optim, interval = self.cfg.optim, self.phases.d_interval
        trainable_d = [p for p in self.D.parameters() if p.requires_grad]
        g_opts = compensate(optim["G"], self.phases.g_interval, "optim.G")
        self.opt_g = make_optimizer(self.G.parameters(), g_opts)
        self.opt_d = make_optimizer(trainable_d, compensate(optim["D"], interval, "optim.D"))
        self.parts.nets = {"G": self.G, "D": self.D}
        self.parts.optims = {"G": self.opt_g, "D": self.opt_d}
        steps, start = self.cfg.train.steps, self.cfg.section(GanOptions).lr_decay_start
        self.parts.scheds = decaying(self.parts.optims, steps, start)
        self.parts.scalers = {"G": self.rt.grad_scaler(), "D": self.rt.grad_scaler()}
        self.parts.ema = {"G": self.ema} if self.ema is not None else {}
        self.parts.buffers = {
            "fixed_z": self.model.fixed_z,
            "g_step": self.g_step,
            **self.game.augment.buffers,
            **{k: v for pen in self.phases.penalties for k, v in pen.buffers.items()},
        }

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

    # --- training: a driver over the phases -----------------------------------------------

    def step(self, batches: Streams) -> dict[str, Tensor]:
        """One generator update after its critic updates; returns detached scalar tensors."""
        gan, step, out = self.cfg.section(GanOptions), int(self.g_step), {}
        stream = batches["labelled" if self.model.classes else "real"]
        for name, value in self.scheduler.apply(step).items():
            out[f"sched_{name}"] = torch.tensor(value)
        self.game.augment.begin(step)
        n_critic = critic_steps(gan.d_steps, gan.d_schedule, step)
        for k in range(n_critic):
            batch = self.game.draw(stream, step, last_update=k == n_critic - 1)
            for phase in self.phases.critic:
                self._play(phase, batch, out)
        requires_grad([self.D], False)  # no D gradients are needed for the G update
        for j in range(gan.g_steps):
            batch = self.game.redraw(batch) if j else batch  # the first reuses D's fakes
            for phase in self.phases.generator:
                self._play(phase, batch, out)
        requires_grad([self.D], True)
        for sched in self.parts.scheds.values():
            sched.step()
        self.g_step += 1
        if self.ema is not None and step + 1 > gan.ema_start:
            self._update_ema(gan, step)
        out.update(self.game.augment.logs())
        return out

    def _update_ema(self, gan: GanOptions, step: int) -> None:
        if gan.ema_kimg:  # StyleGAN2's: a half-life in images, ramped
            batch, half_life = (
                self.cfg.train.batch_size,
                self.scheduler.value("ema_kimg", gan.ema_kimg),
            )
            beta = ema_beta(half_life, gan.ema_rampup, batch, (step - gan.ema_start) * batch)
            update_ema_beta(self.ema, self.G, beta)
        else:  # updates before this one: g_step counts on the host, no device read needed
            update_ema(self.ema, self.G, gan.ema, step - gan.ema_start)

    def _play(self, phase: Phase, batch: PhaseBatch, out: dict[str, Tensor]) -> None:
        """Run ``phase`` if due: its loss, its network's optimizer step, the constraints."""
        if not phase.due(batch):
            return
        loss, logs = phase.loss(self.game, batch)
        net = phase.net
        optimizer_step(loss, self.parts.optims[net], self.parts.scalers[net])
        for penalty in self.phases.penalties:
            if penalty.net == net:
                penalty.after_step(self.parts.nets[net])
        out.update(logs)
