"""The GAN's networks as a run holds them, and the model the commands sample from.

:func:`build_gan_nets` turns ``nets.G``/``nets.D`` and the ``gan`` switches into modules;
:class:`GANModel` wraps a generator (its EMA) and discriminator for sampling
(:class:`~gankit.inference.roles.Generative`, :class:`~gankit.inference.roles.Critic`,
:class:`~gankit.inference.roles.ConditionalGenerative`, :class:`~gankit.inference.roles.Exportable`), shared with the task during
training and rebuilt in fp32 from a checkpoint by ``GANTask.load_model``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from gankit.config import Config
from gankit.errors import ConfigError
from gankit.gan.options import GanOptions
from gankit.gan.stabilisers.minibatch import (
    BatchAwareDiscriminator,
    MinibatchDiscrimination,
    MinibatchStdDev,
)
from gankit.gan.stabilisers.vbn import VirtualBatchNormNet, convert_batchnorm
from gankit.inference.roles import MappedGenerator, ReconstructingDiscriminator
from gankit.nets import build_net, entry
from gankit.nets.conditional import ConditionalGenerator, LabelDiscriminator, feature_dim
from gankit.nets.eval_mode import eval_mode

VBN_REFERENCE = 64
"""Noise vectors in virtual batch norm's reference batch (gan.vbn)."""


def build_gan_nets(cfg: Config) -> tuple[nn.Module, nn.Module]:
    """G and D of ``cfg``: the registry's nets, made conditional (gan.conditional), batch-aware
    (gan.minibatch, gan.mbstd) or virtually batch-normalised (gan.vbn) as the config asks."""
    size, ch, gan = cfg.data.image_size, cfg.data.channels, cfg.section(GanOptions)
    if gan.conditional == "none":
        G = build_net("generator", cfg.nets["G"], size, ch)
        if gan.vbn:
            G = convert_batchnorm(G)
            try:
                G = VirtualBatchNormNet(G, torch.zeros(VBN_REFERENCE, cfg.nets["G"].nz))
            except ValueError:
                raise ConfigError(
                    f"gan.vbn: nets.G (arch {cfg.nets['G'].arch}) has no BatchNorm layer"
                ) from None
        return G, _batch_aware(
            _check_wrappers(build_net("discriminator", cfg.nets["D"], size, ch), cfg), cfg, ch
        )
    if not gan.classes:
        raise ConfigError("gan.classes is unknown: let training read it from the data")
    k = len(gan.classes)
    if entry("generator", cfg.nets["G"].arch).labels:
        return _native_conditional(cfg, k)
    embed = gan.embed_dim or k
    g_opts = dataclasses.replace(cfg.nets["G"], nz=cfg.nets["G"].nz + embed)
    G = ConditionalGenerator(build_net("generator", g_opts, size, ch), k, embed)
    d_in = ch + k if gan.conditional == "concat" else ch
    base = _check_wrappers(build_net("discriminator", cfg.nets["D"], size, d_in), cfg)
    base = _batch_aware(base, cfg, d_in)
    dim = 0 if gan.conditional == "concat" else feature_dim(base, ch, size)
    return G, LabelDiscriminator(base, gan.conditional, k, dim)


def _native_conditional(cfg: Config, k: int) -> tuple[nn.Module, nn.Module]:
    """G and D that take labels themselves (StyleGAN2: an embedding in G's mapping network;
    R3GAN: one joined to z; both with a projection D), built for ``k`` classes."""
    gan, size, ch = cfg.section(GanOptions), cfg.data.image_size, cfg.data.channels
    g_arch, d_arch = cfg.nets["G"].arch, cfg.nets["D"].arch
    if gan.conditional != "projection":
        raise ConfigError(
            f"nets.G.arch={g_arch} takes labels itself (an embedding inside G, a projection "
            f"D): use gan.conditional=projection (not {gan.conditional})"
        )
    if not entry("discriminator", d_arch).labels:
        raise ConfigError(
            f"nets.G.arch={g_arch} with gan.conditional=projection needs a D that takes labels "
            f"itself: use nets.D.arch={g_arch} (not {d_arch})"
        )
    G = build_net("generator", cfg.nets["G"], size, ch, num_classes=k)
    D = build_net("discriminator", cfg.nets["D"], size, ch, num_classes=k)
    return G, D


def _check_wrappers(D: nn.Module, cfg: Config) -> nn.Module:
    """``D``, unless a wrapper (labels, minibatch layers) would drop its reconstruction: FastGAN's
    self-supervised decoders need the real pass to reach them."""
    gan, arch = cfg.section(GanOptions), cfg.nets["D"].arch
    wrappers = [
        name
        for name, on in (
            (f"gan.conditional={gan.conditional}", gan.conditional != "none"),
            ("gan.minibatch", bool(gan.minibatch)),
            ("gan.mbstd", bool(gan.mbstd)),
        )
        if on
    ]
    if isinstance(D, ReconstructingDiscriminator) and wrappers:
        raise ConfigError(
            f"{wrappers[0]} does not work with nets.D.arch={arch} (its reconstruction "
            f"decoders would be skipped): use another nets.D.arch or drop {wrappers[0].split('=')[0]}"
        )
    return D


def _batch_aware(D: nn.Module, cfg: Config, channels: int) -> nn.Module:
    """``D`` with gan.minibatch or gan.mbstd before a new output layer (else ``D`` itself)."""
    gan, size = cfg.section(GanOptions), cfg.data.image_size
    if not (gan.minibatch or gan.mbstd):
        return D
    dim = feature_dim(D, channels, size)
    layer = MinibatchDiscrimination(dim, gan.minibatch, 5) if gan.minibatch else MinibatchStdDev()
    return BatchAwareDiscriminator(D, layer, dim)


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


@torch.no_grad()
def update_ema_beta(ema: AveragedModel, model: nn.Module, beta: float) -> None:
    """StyleGAN2's EMA step: parameters lerped towards ``model``'s by 1 − ``beta``, buffers (w_avg,
    noise constants) copied, as stylegan2-ada's training_loop.py does."""
    averaged, current = list(ema.module.parameters()), [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(averaged, current, 1 - beta)
    for a, c in zip(ema.module.buffers(), model.buffers(), strict=True):
        a.copy_(c)
    ema.n_averaged += 1


def ema_beta(ema_kimg: float, rampup: float, batch: int, images_seen: int) -> float:
    """β = 0.5^(batch / half-life), the half-life ema_kimg·1000 images, at most
    images_seen·rampup when ``rampup`` > 0 (0 at the start: the first update copies)."""
    half_life = ema_kimg * 1000
    if rampup > 0:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


class GANModel:
    """A GAN's generator (and its EMA) and discriminator, for sampling: :class:`Generative`,
    :class:`Critic`, :class:`ConditionalGenerative`, :class:`Exportable`. During training it shares the task's modules; loaded from a run it holds
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
        classes: tuple[str, ...] | None = None,
        conditional: str = "none",
    ) -> None:
        self.G, self.D, self.ema, self.nz, self.noise_kind = G, D, ema, nz, noise
        self.fixed_z, self.device, self._autocast = fixed_z, device, autocast
        self.has_ema = ema is not None
        self.classes = tuple(classes) if classes else None
        """Class names of a conditional GAN (labels are their indices); None = unconditional."""
        self.conditional = conditional

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

    def w_generator(self, ema: bool = True) -> MappedGenerator | None:
        """The generator if it has a W space (StyleGAN2), else None
        (:class:`gankit.inference.roles.WSpaceModel`)."""
        net = self.generator(ema)
        return net if isinstance(net, MappedGenerator) else None

    @property
    def label_classes(self) -> tuple[str, ...] | None:
        """The classes the generator draws (:class:`gankit.inference.roles.ConditionalGenerative`)."""
        return self.classes

    def export_generator(self, ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
        """The generator to export (:class:`gankit.inference.roles.Exportable`) and its record."""
        net = self.generator(ema)
        if isinstance(net, VirtualBatchNormNet):
            raise ConfigError(
                "gankit export writes generators without virtual batch norm; this run was trained "
                "with gan.vbn (its reference batch runs with every sample): use gankit sample "
                "(or gankit.load) for it"
            )
        record: dict[str, Any] = {"nz": self.nz, "noise": self.noise_kind}
        if isinstance(net, ConditionalGenerator):
            record.update(classes=list(self.classes or ()), embed_dim=net.embed.embedding_dim)
        elif self.classes:  # a generator that takes labels itself
            record.update(classes=list(self.classes))
        if isinstance(net, MappedGenerator):
            record.update(w_space=True, num_ws=net.num_ws)
        return net.eval(), record

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def default_labels(self, n: int) -> Tensor:
        """Labels 0, 1, ..., K-1, 0, 1, ...: every class equally often (conditional GANs)."""
        return torch.arange(n, device=self.device) % self.num_classes

    @torch.no_grad()
    def sample(
        self, z: Tensor | None = None, labels: Tensor | None = None, ema: bool = True
    ) -> Tensor:
        """Images in [-1, 1] from ``z`` (default: the fixed preview noise), in eval mode.

        A conditional GAN draws class ``labels[i]`` for ``z[i]`` (default: every class in turn,
        :meth:`default_labels`); an unconditional one refuses labels.
        """
        z = self.fixed_z if z is None else z.to(self.device)
        args: tuple[Tensor, ...] = (z,)
        if self.classes:
            y = self.default_labels(len(z)) if labels is None else labels.to(self.device)
            if len(y) != len(z) or (
                len(y) and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes
            ):
                raise ConfigError(
                    f"labels must be {len(z)} class indices in 0..{self.num_classes - 1}"
                )
            args = (z, y.long())
        elif labels is not None:
            raise ConfigError("this GAN is unconditional: it takes no labels")
        net = self.generator(ema)
        with eval_mode(net), self._autocast():
            out = net(*args)
        return out.float().clamp(-1, 1) if isinstance(net, MappedGenerator) else out.float()

    @torch.no_grad()
    def discriminate(self, images: Tensor) -> Tensor:
        """D's logit (or critic score) per image, on the CPU; higher = more real."""
        if self.D is None:
            raise ConfigError(
                "this generator was exported without its discriminator: rank with the run directory"
            )
        if self.conditional in ("concat", "projection"):
            raise ConfigError(
                f"this GAN's discriminator (gan.conditional={self.conditional}) scores an image "
                "only together with its label: ranking by D needs an unconditional or acgan run"
            )
        with eval_mode(self.D):
            out = self.D(images.to(self.device))
            return (out[0] if isinstance(out, tuple) else out).float().cpu()
