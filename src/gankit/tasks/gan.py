"""The unconditional image GAN: one generator step and its critic steps.

One ``step`` is one generator update preceded by ``d_steps`` critic updates (Goodfellow et al. 2014,
algorithm 1; Arjovsky et al. 2017, algorithm 1). Each critic update draws its own real batch from
the ``real`` stream. The fake batch of the last critic update is reused for the generator update,
as in the PyTorch DCGAN example, which saves one generator forward pass per step.

Parts: nets ``G``, ``D``; optimizers, schedules and grad scalers ``G``, ``D``; the EMA of ``G``
(``gan.ema``); buffers ``fixed_z`` (the preview noise) and ``g_step``.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from gankit.augment import DIFF_AUGMENTS, diff_augment
from gankit.config import Config, OptimConfig
from gankit.distributed import rank_rows
from gankit.errors import ConfigError
from gankit.nets import build_net
from gankit.objectives import OBJECTIVES, gradient_penalty
from gankit.roles import Critic, Generative
from gankit.runtime import Runtime
from gankit.schedules import FactorSchedule, check_decay_start, decay_after
from gankit.tasks.base import (
    Streams,
    Task,
    TaskInfo,
    make_optimizer,
    optimizer_step,
    requires_grad,
)


@dataclass
class GanOptions:
    """The adversarial game (``gan.*``)."""

    loss: str = "non-saturating"
    """minimax | non-saturating | lsgan | wgan | wgan-gp | hinge"""
    noise: Literal["normal", "uniform"] = "normal"
    """normal: N(0, I); uniform: U[-1, 1) (the cs231n assignment)."""
    d_steps: int = 1
    """Critic (discriminator) steps per generator step."""
    d_schedule: Literal["constant", "wgan"] = "constant"
    """wgan: 100 critic steps for the first 25 generator steps and every 500th (Arjovsky et al.)."""
    clip: float | None = None
    """Weight clipping bound of the critic; None = the loss's default (0.01 for wgan)."""
    gp_weight: float | None = None
    """Gradient-penalty weight; None = the loss's default (10 for wgan-gp)."""
    label_smoothing: float = 0.0
    """One-sided: real targets become 1 - label_smoothing (Salimans et al. 2016)."""
    ema: float = 0.0
    """Decay of an exponential moving average of the generator used for sampling; 0 = off."""
    ema_start: int = 0
    """Generator step at which the EMA starts averaging (it copies G until then)."""
    augment: list[str] = field(default_factory=list)
    """DiffAugment policy for D's inputs, real and fake alike: translation, cutout, flip (Zhao et al. 2020)."""
    lr_decay_start: float | None = None
    """Fraction of train.steps after which both learning rates fall linearly to 0; None = constant."""


def critic_steps(cfg_d_steps: int, schedule: str, g_step: int) -> int:
    """Critic updates before generator update number ``g_step`` (0-based).

    ``wgan``: 100 for the first 25 generator steps and every 500th, else ``d_steps``
    (Arjovsky et al. 2017; the authors' code, so the critic stays near optimal early on).
    """
    if schedule == "wgan" and (g_step < 25 or g_step % 500 == 0):
        return 100
    return cfg_d_steps


def ema_with_warmup(decay: float):
    """An ``AveragedModel`` update whose decay ramps up as min(decay, (1 + n) / (10 + n)).

    A fixed decay of 0.999 would keep e^-1 of the first, random weights after 1,000 steps; the
    warm-up (as in TensorFlow's ExponentialMovingAverage with num_updates) forgets them quickly.
    """

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], 1 - d)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():  # counters such as BatchNorm's num_batches_tracked
                a.copy_(c)

    return update


@torch.no_grad()
def update_ema(ema: AveragedModel, model: nn.Module, decay: float, n: int) -> None:
    """``ema.update_parameters(model)`` with the update count ``n`` known on the host.

    The same arithmetic as AveragedModel with :func:`ema_with_warmup` (the first update copies),
    but the warm-up reads ``n`` from the caller instead of the ``n_averaged`` buffer, which on a
    GPU would cost a host synchronisation every step.
    """
    averaged = [*ema.module.parameters(), *ema.module.buffers()]
    current = [t.detach() for t in (*model.parameters(), *model.buffers())]
    if n == 0:
        for a, c in zip(averaged, current, strict=True):
            a.copy_(c)
    else:
        ema_with_warmup(decay)(averaged, current, torch.tensor(float(n)))
    ema.n_averaged += 1


def gan_advice(cfg: Config) -> dict[str, str]:
    """Config changes worth trying for each health event, concrete for this run's config."""
    gan, d_norm = cfg.gan, getattr(cfg.nets["D"], "norm", None)
    slow_d = f"optim.D.lr={cfg.optim['D'].lr / 2:g} (half the current)"
    win = [slow_d]
    if gan.loss == "minimax":
        win.append("gan.loss=non-saturating")
    if gan.label_smoothing == 0:
        win.append("gan.label_smoothing=0.1")
    if not gan.augment:
        win.append("gan.augment=translation,cutout")
    spectral = d_norm is not None and d_norm != "spectral"  # only nets with a norm option
    if spectral:
        win.append("nets.D.norm=spectral")
    collapse = [f"optim.G.lr={cfg.optim['G'].lr / 2:g} {slow_d.split(' ')[0]}"]
    if gan.loss not in ("wgan-gp", "wgan"):
        collapse.append("gan.loss=wgan-gp (or the wgan-gp recipe)")
    if spectral:
        collapse.append("nets.D.norm=spectral")
    if not gan.augment:
        collapse.append("gan.augment=translation")
    return {
        "d_winning": "the generator gets almost no gradient; try " + ", ".join(win),
        "collapse": "different noise gives near-identical images; the previews in samples/ "
        "show when it started; try " + ", ".join(collapse),
    }


class GANModel:
    """A GAN's generator (and its EMA) and discriminator, for sampling: :class:`Generative`,
    :class:`Critic`. During training it shares the task's modules; loaded from a run it holds
    fp32 copies in eval mode."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module | None,
        ema: AveragedModel | None,
        nz: int,
        noise: str,
        fixed_z: Tensor,
        device: torch.device,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        self.G, self.D, self.ema, self.nz, self.noise_kind = G, D, ema, nz, noise
        self.fixed_z, self.device, self._autocast = fixed_z, device, autocast
        self.has_ema = ema is not None

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes: N(0, I), or U[-1, 1) with gan.noise=uniform (cs231n)."""
        device = "cpu" if generator is not None else self.device
        shape = (n, self.nz)
        if self.noise_kind == "uniform":
            z = torch.rand(shape, generator=generator, device=device) * 2 - 1
        else:
            z = torch.randn(shape, generator=generator, device=device)
        return z.to(self.device)

    def generator(self, ema: bool = True) -> nn.Module:
        """The EMA generator once it has started averaging, else the trained one."""
        if ema and self.ema is not None and self.ema.n_averaged.item() > 0:
            return self.ema.module
        return self.G

    @torch.no_grad()
    def sample(
        self, z: Tensor | None = None, labels: Tensor | None = None, ema: bool = True
    ) -> Tensor:
        """Images in [-1, 1] from ``z`` (default: the fixed preview noise), in eval mode."""
        if labels is not None:
            raise ConfigError("this GAN is unconditional: it takes no labels")
        net = self.generator(ema)
        was_training = net.training
        net.eval()
        try:
            with self._autocast():
                out = net(self.fixed_z if z is None else z.to(self.device))
        finally:
            net.train(was_training)
        return out.float()

    @torch.no_grad()
    def discriminate(self, images: Tensor) -> Tensor:
        """D's logit (or critic score) per image, on the CPU; higher = more real."""
        if self.D is None:
            raise ConfigError(
                "this generator was exported without its discriminator: rank with the run directory"
            )
        was_training = self.D.training
        self.D.eval()
        try:
            return self.D(images.to(self.device)).float().cpu()
        finally:
            self.D.train(was_training)


class GANTask(Task):
    """Generator, discriminator, their optimizers and losses; the loop drives it."""

    name = "gan"
    Options = GanOptions
    networks = {"G": ("generator", "dcgan"), "D": ("discriminator", "dcgan")}
    optimizers = {"G": OptimConfig(), "D": OptimConfig()}
    structural = ("gan.noise", "train.n_preview")
    roles = (Generative, Critic)

    # --- declarations -------------------------------------------------------------------------

    @classmethod
    def validate(cls, cfg: Config) -> None:
        gan = cfg.gan
        if gan.loss not in OBJECTIVES:
            close = difflib.get_close_matches(gan.loss, list(OBJECTIVES), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"gan.loss={gan.loss!r} is unknown: {hint}choose one of {', '.join(OBJECTIVES)}"
            )
        if gan.d_steps <= 0:
            raise ConfigError(f"gan.d_steps={gan.d_steps} must be positive")
        if not 0 <= gan.label_smoothing < 0.5:
            raise ConfigError(f"gan.label_smoothing={gan.label_smoothing} must be in [0, 0.5)")
        for name in gan.augment:
            if name not in DIFF_AUGMENTS:
                raise ConfigError(
                    f"gan.augment: {name!r} is unknown: choose from {', '.join(DIFF_AUGMENTS)}"
                )
        check_decay_start(gan.lr_decay_start, "gan.lr_decay_start")
        if not 0 <= gan.ema < 1:
            raise ConfigError(f"gan.ema={gan.ema} must be in [0, 1), e.g. 0.999; 0 turns it off")

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
        size, ch = cfg.data.image_size, cfg.data.channels
        return (
            build_net("generator", cfg.nets["G"], size, ch),
            build_net("discriminator", cfg.nets["D"], size, ch),
        )

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
        return GANModel(G, D, ema, cfg.nets["G"].nz, cfg.gan.noise, fixed_z, device)

    # --- building -----------------------------------------------------------------------------

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        self.G, self.D = self.build_nets(cfg)
        self.g, self.d = rt.prepare(self.G), rt.prepare(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optim["G"])
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optim["D"])
        self.scaler_g, self.scaler_d = rt.grad_scaler(), rt.grad_scaler()
        self.objective = OBJECTIVES[cfg.gan.loss]
        self.ema: AveragedModel | None = None
        if cfg.gan.ema > 0:
            self.ema = AveragedModel(
                self.G, multi_avg_fn=ema_with_warmup(cfg.gan.ema), use_buffers=True
            )
        self.g_step = torch.zeros((), dtype=torch.int64)  # a buffer, so it is checkpointed
        nz = cfg.nets["G"].nz
        self.model = GANModel(
            self.G, self.D, self.ema, nz, cfg.gan.noise, torch.empty(0), rt.device, rt.autocast
        )
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.model.fixed_z = self.model.noise(cfg.train.n_preview, generator=gen)
        self.parts.nets = {"G": self.G, "D": self.D}
        self.parts.optims = {"G": self.opt_g, "D": self.opt_d}
        self.parts.scheds = {
            k: FactorSchedule(o, self._lr_factor) for k, o in self.parts.optims.items()
        }
        self.parts.scalers = {"G": self.scaler_g, "D": self.scaler_d}
        self.parts.ema = {"G": self.ema} if self.ema is not None else {}
        self.parts.buffers = {"fixed_z": self.model.fixed_z, "g_step": self.g_step}
        self.info = TaskInfo(
            progress_keys=("loss_d", "loss_g", "d_real", "d_fake"),
            nan_advice="lower the learning rates or try gan.loss=wgan-gp / nets.D.norm=spectral",
            probabilities=self.objective.probability,
            health_advice=gan_advice(cfg),
            diversity_row="fake",
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

    def previews(self) -> dict[str, Tensor]:
        return {"fake": self.model.sample()}

    # --- training -----------------------------------------------------------------------------

    def augment(self, x: Tensor) -> Tensor:
        """DiffAugment of D's input (identity without gan.augment)."""
        return diff_augment(x, self.cfg.gan.augment)

    def step(self, batches: Streams) -> dict[str, Tensor]:
        """One generator update after its critic updates; returns detached scalar tensors."""
        gan, obj = self.cfg.gan, self.objective
        n_critic = critic_steps(gan.d_steps, gan.d_schedule, int(self.g_step))
        real_stream = batches["real"]
        out: dict[str, Tensor] = {}
        for k in range(n_critic):
            last = k == n_critic - 1
            real = next(real_stream).contiguous(memory_format=self.rt.memory_format)
            z = rank_rows(self.model.noise, len(real))  # this rank's rows of the global noise
            with torch.set_grad_enabled(last), self.rt.autocast():
                fake = self.g(z)  # kept with its graph on the last critic step, for the G update
            with self.rt.autocast():
                real_logits = self.d(self.augment(real)).float()
                fake_logits = self.d(self.augment(fake.detach())).float()
            loss_d = obj.d_loss(real_logits, fake_logits, gan.label_smoothing)
            if self.gp_weight:
                # Double backward stays outside autocast/compile (see REFERENCE.md pitfalls).
                gp = gradient_penalty(self.D, real.float(), fake.detach().float())
                loss_d = loss_d + self.gp_weight * gp
                out["gp"] = gp.detach()
            optimizer_step(loss_d, self.opt_d, self.scaler_d)
            if self.clip:
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-self.clip, self.clip)

        requires_grad([self.D], False)  # no D gradients are needed for the G update
        with self.rt.autocast():
            gen_logits = self.d(self.augment(fake)).float()
        loss_g = obj.g_loss(gen_logits)
        optimizer_step(loss_g, self.opt_g, self.scaler_g)
        requires_grad([self.D], True)

        for sched in self.parts.scheds.values():
            sched.step()
        self.g_step += 1
        if self.ema is not None and int(self.g_step) > gan.ema_start:
            # updates before this one: g_step counts on the host, so no device read is needed
            update_ema(self.ema, self.G, gan.ema, int(self.g_step) - gan.ema_start - 1)

        squash = torch.sigmoid if obj.probability else (lambda t: t)
        out.update(
            loss_d=loss_d.detach(),
            loss_g=loss_g.detach(),
            d_real=squash(real_logits.detach()).mean(),
            d_fake=squash(fake_logits.detach()).mean(),
        )
        return out
