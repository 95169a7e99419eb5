"""Train a small MLP GAN on a 2-D mixture, with any objective and stabiliser, in a minute or so on a CPU.

The defaults are the unrolled-GAN demo's settings (Metz et al. 2017, appendix A; the demo
notebook, github.com/poolio/unrolled_gan): two hidden layers of 128 tanh units in both networks, 256-d Gaussian
noise, batch 512, Adam with β1 = 0.5, learning rates 1e-3 for G and 1e-4 for D, and the minimax
objective (G minimises D's own loss, as the demo's ``gen_loss = -loss``), and 16,000 steps (at
8,000 the unrolled GAN had not yet settled on two seeds of five). Under them the plain GAN drifts
between modes and unrolling settles on all of them (docs/guides/stabilisation.md); ``--loss non-saturating --lr-d 1e-3 --lr-decay 0.5`` is the regime where the
plain GAN already covers the ring. Each step is one D update on a fresh real batch and a
fresh fake batch, then one G update on fresh noise, played as the image GAN's phases
(:mod:`gankit.gan.phases`: the same losses, penalties, D-input pipeline and feature matching as
``gankit train``; a loss brings its penalties here too, ``wgan`` clipping D at 0.01). Every ``snapshot_every`` steps 2,500 points
from fixed noise are kept and scored (:func:`gankit.toy.mixtures.score`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gankit.engine.runtime import Runtime, optimizer_step
from gankit.engine.schedules import check_decay_start, decaying
from gankit.errors import ConfigError, did_you_mean
from gankit.gan.game import Game, PhaseBatch
from gankit.gan.objectives import LOSSES, resolve_loss
from gankit.gan.penalties import PENALTIES
from gankit.gan.phases import DMain, GMain
from gankit.gan.pipeline import InstanceNoise, Pipeline
from gankit.gan.stabilisers import (
    MinibatchDiscrimination,
    MinibatchStdDev,
    VirtualBatchNorm,
    VirtualBatchNormNet,
    unrolled_parameters,
)
from gankit.nets.eval_mode import eval_mode
from gankit.toy.mixtures import Mixture, ModeScore, mixture, score


@dataclass
class ToyOptions:
    """Settings of one lab run (``gankit toy DATA --key value``)."""

    data: str = "ring8"
    steps: int = 16000
    batch: int = 512
    nz: int = 256
    hidden: int = 128
    loss: str = "minimax"
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    beta1: float = 0.5
    unroll: int = 0
    """Unrolling steps k of D in the generator's loss (Metz et al. 2017); 0 = the plain GAN."""
    minibatch: int = 0
    """Minibatch-discrimination kernels B in D (Salimans et al. 2016); 0 = off."""
    kernel_dim: int = 5
    mbstd: bool = False
    """A minibatch-standard-deviation feature in D (Karras et al. 2018)."""
    vbn: bool = False
    """Virtual batch norm after G's hidden layers (Salimans et al. 2016)."""
    feature_matching: bool = False
    """G matches the mean of D's last hidden features instead of fooling D (Salimans et al. 2016)."""
    instance_noise: float = 0.0
    """Std of Gaussian noise on D's inputs, annealed linearly to 0 over the run."""
    lr_decay: float | None = None
    """Fraction of the steps after which both learning rates fall linearly to 0; None = constant."""
    seed: int = 0
    snapshot_every: int = 250
    n_eval: int = 2500

    def check(self) -> None:
        mixture(self.data)
        if self.loss not in LOSSES:
            choices = list(LOSSES)
            hint = did_you_mean(self.loss, choices)
            raise ConfigError(f"--loss {self.loss!r}: {hint}choose one of {', '.join(choices)}")
        for key in ("steps", "batch", "nz", "hidden", "kernel_dim", "snapshot_every", "n_eval"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"--{key.replace('_', '-')} must be positive")
        for key in ("unroll", "minibatch"):
            if getattr(self, key) < 0:
                raise ConfigError(f"--{key} must be 0 (off) or positive")
        if not (self.lr_g > 0 and self.lr_d > 0):
            raise ConfigError(f"--lr-g {self.lr_g} and --lr-d {self.lr_d} must be positive")
        if not 0 <= self.beta1 < 1:
            raise ConfigError(f"--beta1 {self.beta1} must be in [0, 1), e.g. 0.5")
        if self.instance_noise < 0:
            raise ConfigError("--instance-noise must be >= 0")
        check_decay_start(self.lr_decay, "--lr-decay")
        if self.mbstd and self.minibatch:
            raise ConfigError("choose one of --minibatch and --mbstd")


def _generator(o: ToyOptions) -> nn.Module:
    layers: list[nn.Module] = []
    width = o.nz
    for _ in range(2):
        layers += [nn.Linear(width, o.hidden)]
        if o.vbn:
            layers += [VirtualBatchNorm(o.hidden)]
        layers += [nn.Tanh()]
        width = o.hidden
    return nn.Sequential(*layers, nn.Linear(o.hidden, 2))


def _discriminator(o: ToyOptions) -> nn.Module:
    body = [nn.Linear(2, o.hidden), nn.Tanh(), nn.Linear(o.hidden, o.hidden), nn.Tanh()]
    width = o.hidden
    if o.minibatch:
        mbd = MinibatchDiscrimination(o.hidden, o.minibatch, o.kernel_dim)
        body.append(mbd)
        width = mbd.out_features
    elif o.mbstd:
        body.append(MinibatchStdDev(group_size=4))
        width += 1
    return nn.Sequential(*body, nn.Linear(width, 1), nn.Flatten(0))


@dataclass
class Snapshot:
    step: int
    points: Tensor
    score: ModeScore


@dataclass
class ToyResult:
    options: ToyOptions
    data: Mixture
    snapshots: list[Snapshot] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> ModeScore:
        return self.snapshots[-1].score

    def as_dict(self) -> dict:
        return {
            "options": asdict(self.options),
            "final": self.final.as_dict(),
            "seconds": round(self.seconds, 1),
            "history": [{"step": s.step, **s.score.as_dict()} for s in self.snapshots],
        }


class ToyGAN:
    """The two networks and their optimisers, playing the image GAN's game (:mod:`gankit.gan`):
    each step the ``D`` phase on a fresh real and fake batch, then the ``G`` phase on fresh
    noise (each phase draws its own, as stylegan2-ada's do), against D's look-ahead weights when
    unrolling. One CPU generator draws every random number, so a seed gives the same run."""

    def __init__(self, o: ToyOptions) -> None:
        o.check()
        self.o, self.data = o, mixture(o.data)
        torch.manual_seed(o.seed)
        self.gen = torch.Generator().manual_seed(o.seed)
        G = _generator(o)
        if o.vbn:
            G = VirtualBatchNormNet(G, torch.randn(o.batch, o.nz, generator=self.gen))
        self.G, self.D = G, _discriminator(o)
        betas = (o.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=betas)
        self.objective, defaults = resolve_loss(o.loss)
        self.penalties = [PENALTIES[k](w) for k, w in defaults.items()]  # wgan: clip 0.01
        noise = [InstanceNoise(o.instance_noise, o.steps, generator=self.gen)]
        rt = Runtime(torch.device("cpu"))
        self.game = Game(
            self.G, self.D, self.G, self.D, self.objective, Pipeline(noise), rt, self._z
        )
        self.d_phase = DMain(self.penalties)
        self.g_phase = GMain(self.D[-2] if o.feature_matching else None)
        self.scheds = decaying({"G": self.opt_g, "D": self.opt_d}, o.steps, o.lr_decay)
        self.scaler = rt.grad_scaler()
        self.fixed_z = torch.randn(o.n_eval, o.nz, generator=self.gen)
        self.step_no = 0

    def _z(self, n: int | None = None) -> Tensor:
        return torch.randn(n or self.o.batch, self.o.nz, generator=self.gen)

    def _real(self) -> Tensor:
        return self.data.sample(self.o.batch, self.gen)

    def step(self) -> dict[str, float]:
        """One D update, then one G update; returns the two losses."""
        o, game = self.o, self.game
        game.augment.begin(self.step_no)
        with torch.no_grad():
            fake = self.G(self._z())
        loss_d, _ = self.d_phase.loss(game, PhaseBatch(self._real(), None, fake, None, 0, True))
        optimizer_step(loss_d, self.opt_d, self.scaler)
        for penalty in self.penalties:
            penalty.after_step(self.D)
        fake = self.G(self._z())
        g_game = self._unrolled(fake) if o.unroll else game
        real = self._real() if o.feature_matching or self.objective.relativistic else fake[:0]
        loss_g, _ = self.g_phase.loss(g_game, PhaseBatch(real, None, fake, None, 0, True))
        optimizer_step(loss_g, self.opt_g, self.scaler)
        self.step_no += 1
        for sched in self.scheds.values():
            sched.step()
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}

    def _unrolled(self, fake: Tensor) -> Game:
        """The game against D after ``unroll`` look-ahead steps (Metz et al. 2017), which keep
        their graph to G. As the demo (Metz et al.'s notebook) does, they use one real batch and
        the very fake batch whose loss the generator then takes against D_k."""
        real, aug, obj = self._real(), self.game.augment, self.objective

        def loss_at(params: dict[str, Tensor], _i: int) -> Tensor:
            d = lambda x: functional_call(self.D, params, (x,))  # noqa: E731
            return obj.d_loss(d(aug(real)), d(aug(fake)))

        params = unrolled_parameters(self.D, loss_at, self.o.unroll, self.opt_d)
        d_k = lambda x: functional_call(self.D, params, (x,))  # noqa: E731
        return dataclasses.replace(self.game, d=d_k, D=d_k)

    @torch.no_grad()
    def points(self) -> Tensor:
        with eval_mode(self.G):
            return self.G(self.fixed_z)


def train_toy(o: ToyOptions, progress: Callable[[int], None] | None = None) -> ToyResult:
    """Train one lab run, keeping scored snapshots; ``progress(step)`` is called after each step."""
    gan = ToyGAN(o)
    result = ToyResult(o, gan.data)
    start = time.perf_counter()

    def snap() -> None:
        pts = gan.points()
        result.snapshots.append(Snapshot(gan.step_no, pts, score(pts, gan.data)))

    snap()
    for _ in range(o.steps):
        gan.step()
        if gan.step_no % o.snapshot_every == 0 or gan.step_no == o.steps:
            snap()
        if progress is not None:
            progress(gan.step_no)
    result.seconds = time.perf_counter() - start
    return result
