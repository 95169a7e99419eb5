"""Train a small MLP GAN on a 2-D mixture, with any objective and stabiliser, in seconds on a CPU.

The defaults are the unrolled-GAN demo's settings (Metz et al. 2017, appendix A; the demo
notebook; REFERENCE.md): two hidden layers of 128 tanh units in both networks, 256-d Gaussian
noise, batch 512, Adam with β1 = 0.5, learning rates 1e-3 for G and 1e-4 for D, and the minimax
objective (G minimises D's own loss, as the demo's ``gen_loss = -loss``), and 16,000 steps (at
8,000 the unrolled GAN had not yet settled on two seeds of five). Under them the plain GAN drifts
between modes and unrolling settles on all of them (docs/guides/stabilisation.md); ``--loss non-saturating --lr-d 1e-3 --lr-decay 0.5`` is the regime where the
plain GAN already covers the ring. Each step is one D update on a fresh real batch and a
fresh fake batch, then one G update on fresh noise. Every ``snapshot_every`` steps 2,500 points
from fixed noise are kept and scored (:func:`gankit.toy.mixtures.score`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call

from gankit.engine.schedules import check_decay_start, decay_after
from gankit.errors import ConfigError, did_you_mean
from gankit.gan.objectives import OBJECTIVES
from gankit.gan.stabilisers import (
    MinibatchDiscrimination,
    MinibatchStdDev,
    VirtualBatchNorm,
    VirtualBatchNormNet,
    feature_matching_loss,
    instance_noise,
    instance_noise_std,
    penultimate,
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
        if self.loss not in OBJECTIVES:
            choices = list(OBJECTIVES)
            hint = did_you_mean(self.loss, choices)
            raise ConfigError(f"--loss {self.loss!r}: {hint}choose one of {', '.join(choices)}")
        for key in ("steps", "batch", "nz", "hidden", "snapshot_every", "n_eval"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"--{key.replace('_', '-')} must be positive")
        for key in ("unroll", "minibatch"):
            if getattr(self, key) < 0:
                raise ConfigError(f"--{key} must be 0 (off) or positive")
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
    """The two networks, their optimisers and one training step."""

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
        self.objective = OBJECTIVES[o.loss]
        self.fixed_z = torch.randn(o.n_eval, o.nz, generator=self.gen)
        self.step_no = 0

    def _z(self) -> Tensor:
        return torch.randn(self.o.batch, self.o.nz, generator=self.gen)

    def _real(self) -> Tensor:
        return self.data.sample(self.o.batch, self.gen)

    def _noisy(self, x: Tensor) -> Tensor:
        std = instance_noise_std(self.o.instance_noise, self.step_no, self.o.steps)
        return instance_noise(x, std, self.gen)

    def _d_loss(self, d: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
        return self.objective.d_loss(d(self._noisy(real)), d(self._noisy(fake)))

    def step(self) -> dict[str, float]:
        """One D update, then one G update; returns the two losses."""
        o = self.o
        with torch.no_grad():
            fake = self.G(self._z())
        loss_d = self._d_loss(self.D, self._real(), fake)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # As the demo (Metz et al.'s notebook) does, the k look-ahead steps of D use one real
        # batch and the very fake batch whose loss the generator then takes against D_k.
        fake = self.G(self._z())
        d: Callable[[Tensor], Tensor] = self.D
        if o.unroll:
            real = self._real()

            def loss_at(params: dict[str, Tensor], _i: int) -> Tensor:
                return self._d_loss(lambda x: functional_call(self.D, params, (x,)), real, fake)

            params = unrolled_parameters(self.D, loss_at, o.unroll, self.opt_d)
            d = lambda x: functional_call(self.D, params, (x,))  # noqa: E731
        if o.feature_matching:
            f_fake = _features(self.D, d, self._noisy(fake))
            with torch.no_grad():
                f_real = _features(self.D, d, self._noisy(self._real()))
            loss_g = feature_matching_loss(f_real, f_fake)
        elif self.objective.relativistic:
            with torch.no_grad():
                real_logits = d(self._noisy(self._real()))
            loss_g = self.objective.g_loss(d(self._noisy(fake)), real_logits)
        else:
            loss_g = self.objective.g_loss(d(self._noisy(fake)))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.step_no += 1
        factor = decay_after(self.step_no, o.steps, o.lr_decay)
        for opt, lr in ((self.opt_g, o.lr_g), (self.opt_d, o.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}

    @torch.no_grad()
    def points(self) -> Tensor:
        with eval_mode(self.G):
            return self.G(self.fixed_z)


def _features(D: nn.Sequential, d: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The input of D's output layer when D is called as ``d`` (its own or unrolled weights:
    ``functional_call`` runs the same modules, so the hook fires either way)."""
    return penultimate(d, x, D[-2])[1]


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
