"""The image GAN's options (``gan.*``), their checks and the health advice built from them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gankit.config import Config
from gankit.config.options import in_range, non_negative, option, positive
from gankit.data.augment import DIFF_AUGMENTS
from gankit.errors import ConfigError, did_you_mean
from gankit.gan.ada import ADA_GROUPS
from gankit.gan.objectives import LOSSES, resolve_loss
from gankit.gan.penalties import PENALTIES
from gankit.gan.pipeline import TRANSFORMS
from gankit.gan.scheduled import parse_schedules

log = logging.getLogger("gankit")


@dataclass
class GanOptions:
    """The adversarial game (``gan.*``)."""

    loss: str = "non-saturating"
    """minimax | non-saturating | lsgan | wgan | wgan-gp | hinge | rpgan"""
    noise: Literal["normal", "uniform"] = option("normal", structural=True)
    """normal: N(0, I); uniform: U[-1, 1) (the cs231n assignment)."""
    d_steps: int = option(1, check=positive)
    """Critic (discriminator) steps per generator step."""
    g_steps: int = option(1, check=positive)
    """Generator updates per step, each on newly drawn noise after the first (the seed notes'
    balancing of a discriminator that learns too fast; 1 = one, as Goodfellow et al.)."""
    d_schedule: Literal["constant", "wgan"] = "constant"
    """wgan: 100 critic steps for the first 25 generator steps and every 500th (Arjovsky et al.)."""
    clip: float | None = option(None, check=positive)
    """Weight clipping bound of the critic; None = the loss's default (0.01 for wgan)."""
    gp_weight: float | None = option(None, check=non_negative)
    """Gradient-penalty weight; None = the loss's default (10 for wgan-gp)."""
    label_smoothing: float = option(0.0, check=in_range(0, 0.5, hi_open=True))
    """One-sided: real targets become 1 - label_smoothing (Salimans et al. 2016)."""
    ema: float = option(
        0.0, check=in_range(0, 1, hi_open=True), hint=", e.g. 0.999; 0 turns it off"
    )
    """Decay of an exponential moving average of the generator used for sampling; 0 = off."""
    ema_start: int = option(0, check=non_negative)
    """Generator step at which the EMA starts averaging (it copies G until then)."""
    ema_kimg: float = option(0.0, check=non_negative, hint=", e.g. 10; 0 turns it off")
    """StyleGAN2's EMA instead of gan.ema: half-life in thousands of images, decay
    β = 0.5^(batch / (ema_kimg·1000)) per step, buffers copied (stylegan2-ada training_loop.py)."""
    ema_rampup: float = option(0.0, check=non_negative, hint=", e.g. 0.05; 0 = none")
    """With gan.ema_kimg: the half-life is at most images seen × ema_rampup (0.05 in stylegan2-ada's
    auto config), so the average forgets the first, random generators quickly."""
    style_mixing: float = option(0.0, check=in_range(0, 1))
    """Probability of style mixing in training (StyleGAN2 generators: 0.9 in the paper): from a
    random layer on, the ws of a second z."""
    augment: list[str] = field(default_factory=list)
    """DiffAugment policy for D's inputs, real and fake alike: color, translation, cutout, flip
    (Zhao et al. 2020)."""
    ada: Literal["off", "adaptive", "fixed"] = option("off", structural=True)
    """Adaptive discriminator augmentation (Karras et al. 2020): the ``bgc`` pipeline on every
    image D sees, each op with probability p; adaptive: p follows r_t = E[sign(D(real))] towards
    gan.ada_target; fixed: p = gan.ada_p throughout."""
    ada_p: float = option(0.0, check=in_range(0, 1))
    """ADA's starting (adaptive) or constant (fixed) probability."""
    ada_target: float = option(
        0.6, check=in_range(0, 1, lo_open=True, hi_open=True), hint=", e.g. 0.6"
    )
    """The r_t that adaptive ADA holds D at (0.6 in the paper)."""
    ada_interval: int = option(4, check=positive, hint=" (4 in the paper)")
    """Minibatches between adjustments of p."""
    ada_kimg: float = option(500.0, check=positive, hint=" (500 in the paper)")
    """Thousands of real images over which p could move from 0 to 1 (the adjustment speed)."""
    ada_ops: list[str] = field(default_factory=lambda: ["blit", "geom", "color"])
    """ADA's op groups (Karras et al. 2020b, appendix B), applied in this order whatever the order
    listed: blit (x-flip, quarter turns, integer translation), geom (scale, rotation, anisotropic
    scale, fractional translation), color (brightness, contrast, luma flip, hue, saturation),
    noise (additive RGB noise, std |N(0, 0.1²)|), cutout (a square of half the side set to 0).
    The default is the paper's bgc; R3GAN uses blit,geom,color,cutout."""
    ada_antialias: bool = True
    """True: the reference's resampling of the geom ops (reflect padding, ×2 upsampling through
    the symlet-6 wavelet filter, bilinear grid_sample, filtered ×2 downsampling; blit ops move whole
    pixels exactly); False: gankit <= 0.3's single bilinear grid_sample (aliases)."""
    r1: float = option(0.0, check=non_negative)
    """γ of the R1 penalty γ/2·E‖∇D(x)‖² on real images (Mescheder et al. 2018); 0 = off."""
    r2: float = option(0.0, check=non_negative)
    """γ of the R2 penalty, the same on generated images (with rpgan: R3GAN, Huang et al. 2024)."""
    reg_every: int = option(1, check=positive)
    """Lazy regularisation: R1/R2 every k generator steps, scaled by k (Karras et al. 2020)."""
    watch_grads: int = option(0, check=non_negative, hint=" (0 = off)")
    """Every k steps, log E‖∇D‖² on real (``grad_real``) and generated (``grad_fake``) images
    as D sees them, whether or not R1/R2 penalise it (R3GAN's Fig. 2 curves); 0 = off."""
    penalties: list[str] = field(default_factory=list)
    """More penalties from the registry (``gankit.gan.penalties.PENALTIES``), each
    ``name:weight`` or ``name:weight:every``, e.g. ``zero-gp:10`` (Thanh-Tung et al. 2019)."""
    schedules: list[str] = field(default_factory=list)
    """Values that follow a schedule over thousands of images, ``NAME:SHAPE:START:END:KIMG``
    (SHAPE cosine or linear; NAME r1, r2, lr, beta2, ada_p, ema_kimg), e.g.
    ``r1:cosine:1:0.1:2000`` (R3GAN's burn-in, Huang et al. 2024); the end value holds after."""
    lazy_reg: Literal["fused", "separate"] = "fused"
    """fused: a lazily evaluated penalty is added to D's main loss on its steps (gankit <= 0.2);
    separate: it is an update of its own (the ``Dreg`` phase) and D's Adam gets lr·k/(k+1) and
    betas^(k/(k+1)), as stylegan2-ada does."""
    d_input: list[str] = field(default_factory=lambda: ["ada", "diffaugment", "noise"])
    """The order of the transforms in front of D (those switched on by gan.ada, gan.augment and
    gan.instance_noise)."""
    freeze_d: int = option(0, check=non_negative, structural=True)
    """FreezeD (Mo et al. 2020): keep D's first k layers fixed (fine-tuning with --init-from)."""
    lr_decay_start: float | None = option(
        None, check=in_range(0, 1, hi_open=True), hint=", or null for a constant lr"
    )
    """Fraction of train.steps after which both learning rates fall linearly to 0; None = constant."""
    conditional: Literal["none", "concat", "projection", "acgan"] = option("none", structural=True)
    """Class-conditional GAN on the data's labels: G joins a label embedding to z; D takes the label
    as input channels (concat, Mirza & Osindero 2014), by projection (Miyato & Koyama 2018) or
    through an auxiliary classifier (acgan, Odena et al. 2017)."""
    aux_weight: float = option(1.0, check=non_negative)
    """acgan: weight of the class log-likelihood terms of both losses."""
    embed_dim: int = option(0, check=non_negative, structural=True)
    """Size of G's label embedding; 0 = the number of classes."""
    classes: tuple[str, ...] | None = option(None, structural=True)
    """Class names of a conditional GAN; null = read from the data at the start."""
    feature_matching: bool = False
    """G matches the mean of D's last hidden features on real images instead of the objective's
    G loss (Salimans et al. 2016, sec. 3.1)."""
    instance_noise: float = option(0.0, check=non_negative, hint=" (0 = off)")
    """Std of Gaussian noise on every input of D, annealed linearly to 0 over train.steps."""
    minibatch: int = option(0, check=non_negative, structural=True, hint=" (0 = off)")
    """Minibatch-discrimination kernels (of 5 dims) before D's output (Salimans et al. 2016); 0 = off."""
    mbstd: bool = option(False, structural=True)
    """A minibatch-standard-deviation feature before D's output (Karras et al. 2018)."""
    vbn: bool = option(False, structural=True)
    """Virtual batch norm: G's BatchNorm layers normalise by a fixed reference batch of 64 noise
    vectors, saved with G (Salimans et al. 2016, sec. 3.4)."""


def parse_penalties(items: list[str]) -> list[tuple[str, float, int]]:
    """``gan.penalties`` as ``(name, weight, every)``; a one-line ConfigError for a bad item."""
    out = []
    for item in items:
        name, *rest = item.split(":")
        if name not in PENALTIES:
            hint = did_you_mean(name, PENALTIES)
            raise ConfigError(
                f"gan.penalties: {name!r} is unknown: {hint}choose from {', '.join(PENALTIES)}"
            )
        try:
            weight, every = float(rest[0]), int(rest[1]) if len(rest) > 1 else 1
            if len(rest) > 2 or weight < 0 or every < 1:
                raise ValueError
        except (ValueError, IndexError):
            raise ConfigError(
                f"gan.penalties: {item!r} must be NAME:WEIGHT or NAME:WEIGHT:EVERY with a weight "
                f">= 0 and every >= 1, e.g. {name}:10"
            ) from None
        out.append((name, weight, every))
    return out


def critic_steps(cfg_d_steps: int, schedule: str, g_step: int) -> int:
    """Critic updates before generator update number ``g_step`` (0-based).

    ``wgan``: 100 for the first 25 generator steps and every 500th, else ``d_steps``
    (Arjovsky et al. 2017; the authors' code, so the critic stays near optimal early on).
    """
    if schedule == "wgan" and (g_step < 25 or g_step % 500 == 0):
        return 100
    return cfg_d_steps


def gan_advice(cfg: Config) -> dict[str, str]:
    """Config changes worth trying for each health event, concrete for this run's config."""
    gan, d_norm = cfg.section(GanOptions), getattr(cfg.nets["D"], "norm", None)
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
    weak = [f"optim.D.lr={cfg.optim['D'].lr * 2:g} (twice the current)", "gan.d_steps=2"]
    if gan.g_steps > 1:
        weak.append("gan.g_steps=1")
    if gan.augment or gan.ada != "off":
        weak.append("weaker D augmentation (gan.augment, gan.ada_target)")
    return {
        "d_winning": "the generator gets almost no gradient; try " + ", ".join(win),
        "d_weak": "the generator learns from a discriminator at chance; try " + ", ".join(weak),
        "collapse": "different noise gives near-identical images; the previews in samples/ "
        "show when it started; try " + ", ".join(collapse),
    }


def clipping_with_momentum(cfg: Config) -> str | None:
    """The one-line warning for a critic whose weights are clipped (``gan.loss=wgan``, ``gan.clip``
    or a ``clip`` penalty) trained with momentum (Adam with betas[0] > 0, SGD or RMSprop with
    momentum > 0), else None. Arjovsky et al. 2017 ("Wasserstein GAN", experiments) found WGAN
    training unstable at times with a momentum-based optimizer such as Adam on the critic and used
    RMSProp; so does fast.ai's 2018 lesson 12 (``courses/dl2/wgan.ipynb``)."""
    gan = cfg.section(GanOptions)
    clip = gan.clip if gan.clip is not None else resolve_loss(gan.loss)[1].get("clip", 0.0)
    if clip:
        source = f"gan.clip={gan.clip:g}" if gan.clip is not None else f"gan.loss={gan.loss}"
    elif any(name == "clip" and weight for name, weight, _ in parse_penalties(gan.penalties)):
        source = "gan.penalties clip"
    else:
        return None
    moving = [
        f"optim.{name} is adam with betas[0]={opt.betas[0]:g}"
        if opt.name == "adam"
        else f"optim.{name} is {opt.name} with momentum={opt.momentum:g}"
        for name, opt in cfg.optim.items()
        if (opt.betas[0] > 0 if opt.name == "adam" else opt.momentum > 0)
    ]
    if not moving:
        return None
    return (
        f"weight clipping ({source}) with momentum ({', '.join(moving)}): clipped WGANs train "
        "unstably with momentum (Arjovsky et al. 2017 used RMSprop); use optim.G.name=rmsprop "
        "optim.D.name=rmsprop as the wgan recipe does, betas=[0,0.9] or momentum=0, or "
        "gan.loss=wgan-gp"
    )


_WARNED: set[str] = set()
"""Warnings already logged in this process (a resumed run validates its config twice)."""


def _check_labelled_folder(cfg: Config) -> None:
    """A conditional GAN on a folder of images without class sub-folders: say how to go on
    (the default job, ``cgan-mnist``, is conditional; so is any run with gan.conditional)."""
    source, mode = cfg.data.source, cfg.section(GanOptions).conditional
    if mode == "none" or not source.startswith("folder:"):
        return
    root = Path(source.removeprefix("folder:")).expanduser()
    if not root.is_dir() or any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
        return  # a missing folder gets the data's own error; sub-folders are classes
    raise ConfigError(
        f"gan.conditional={mode} (recipe {cfg.recipe}) needs labels, and {root} has no class "
        "sub-folders (PATH/<class>/*.jpg): for images without labels use an unconditional "
        "recipe (gankit train dcgan-mnist / dcgan data.source=...) or gan.conditional=none"
    )


def _check_schedules(cfg: Config) -> None:
    """``gan.schedules`` parse, and each names something this run has to move."""
    gan = cfg.section(GanOptions)
    for s in parse_schedules(gan.schedules):
        need = {
            "r1": (gan.r1 > 0, "gan.r1 > 0 (the penalty on; the schedule sets its gamma)"),
            "r2": (gan.r2 > 0, "gan.r2 > 0 (the penalty on; the schedule sets its gamma)"),
            "lr": (gan.lr_decay_start is None and gan.lazy_reg == "fused",
                   "gan.lr_decay_start=null and gan.lazy_reg=fused (one rule for the lr)"),
            "beta2": (all(o.name == "adam" for o in cfg.optim.values())
                      and gan.lazy_reg == "fused", "Adam for both nets and gan.lazy_reg=fused"),
            "ada_p": (gan.ada == "fixed", "gan.ada=fixed (the schedule replaces the controller)"),
            "ema_kimg": (gan.ema_kimg > 0, "gan.ema_kimg > 0 (the EMA by half-life on)"),
        }[s.name]  # fmt: skip
        if not need[0]:
            raise ConfigError(f"gan.schedules: {s.name} needs {need[1]}")


def validate_gan(cfg: Config) -> None:
    """One-line ConfigErrors for ``gan.*`` settings that one field's check cannot see: names from
    registries, and combinations (each field's own range is declared on it)."""
    gan = cfg.section(GanOptions)
    if gan.loss not in LOSSES:
        hint = did_you_mean(gan.loss, LOSSES)
        raise ConfigError(
            f"gan.loss={gan.loss!r} is unknown: {hint}choose one of {', '.join(LOSSES)}"
        )
    _check_labelled_folder(cfg)
    for name in gan.augment:
        if name not in DIFF_AUGMENTS:
            raise ConfigError(
                f"gan.augment: {name!r} is unknown: choose from {', '.join(DIFF_AUGMENTS)}"
            )
    for name in gan.d_input:
        if name not in TRANSFORMS or gan.d_input.count(name) > 1:
            raise ConfigError(
                f"gan.d_input: {name!r} is unknown or repeated: order each of "
                f"{', '.join(TRANSFORMS)} at most once"
            )
    parse_penalties(gan.penalties)
    if gan.minibatch and gan.mbstd:
        raise ConfigError("choose one of gan.minibatch and gan.mbstd")
    if gan.vbn and gan.conditional != "none":
        raise ConfigError("gan.vbn works with unconditional generators: set gan.conditional=none")
    if resolve_loss(gan.loss)[0].relativistic and gan.label_smoothing:
        raise ConfigError(f"gan.label_smoothing does not apply to gan.loss={gan.loss}: set it to 0")
    _check_schedules(cfg)
    if gan.ema and gan.ema_kimg:
        raise ConfigError("choose one of gan.ema (a decay) and gan.ema_kimg (a half-life)")
    scheduled_p = any(item.startswith("ada_p:") for item in gan.schedules)
    if gan.ada == "fixed" and gan.ada_p <= 0 and not scheduled_p:
        raise ConfigError("gan.ada=fixed needs gan.ada_p > 0, e.g. gan.ada_p=0.2")
    for name in gan.ada_ops:
        if name not in ADA_GROUPS:
            raise ConfigError(
                f"gan.ada_ops: {name!r} is unknown: choose from {', '.join(ADA_GROUPS)}"
            )
    warning = clipping_with_momentum(cfg)
    if warning and warning not in _WARNED:
        _WARNED.add(warning)
        log.warning(warning)
