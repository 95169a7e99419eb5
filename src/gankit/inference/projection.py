"""Projection: the latent code whose image is closest to a given image.

For a generator with a W space (StyleGAN2) this follows the projector of Karras et al. 2020
("Analyzing and Improving the Image Quality of StyleGAN", sec. 5; NVlabs/stylegan2-ada-pytorch,
``projector.py``): start at the mean w of 10,000 mapped z (per class for a conditional run),
optimise one w (or, with ``w_plus``, one per layer) together with the per-layer noise maps by
Adam, with

- a learning rate that ramps up over the first 5 % of the steps and down over the last 25 %
  (a half cosine), from 0.1;
- Gaussian noise added to w with a standard deviation of 0.05 · σ_w falling quadratically to 0
  at 75 % of the steps (σ_w the spread of the sampled ws), so that early steps explore;
- a penalty of 10^5 on the noise maps' autocorrelation at every scale down to 8×8, and the maps
  renormalised to zero mean and unit variance after each step, so that the noise cannot paint
  the image.

Any other GAN generator is projected in z with the same schedule (no noise maps, the code's
noise scaled by the prior's spread). There is no mean to start from that the generator maps to a
typical image, so the search starts from the ``restarts`` best of ``candidates`` seeded codes
(for a class-conditional run, of every class unless one is given), optimises them together and
keeps the closest; uniform codes are kept inside [-1, 1].

Several targets are optimised as one batch of independent problems (:func:`project_many`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from gankit.errors import ConfigError
from gankit.inference.distances import Binder, Bound, distance_binder
from gankit.inference.roles import Exportable, WSpaceModel, label_classes
from gankit.inference.sampling import seeded_noise
from gankit.inference.wspace import mapped_generator

OFFLINE_DISTANCE = "pixel"
"""The distance of ``--distance auto`` without LPIPS weights: the best of the offline ones on
held-out MNIST digits (docs/guides/explorer.md, ``benchmarks/projection.py``)."""

Progress = Callable[[int, int, Tensor], None]
"""Called as ``progress(step, steps, image)`` with the closest image so far (1, C, H, W)."""


@dataclass
class Schedule:
    """The optimisation's schedule; the defaults are those of stylegan2-ada-pytorch's
    ``projector.py``."""

    steps: int = 1000
    lr: float = 0.1
    noise_factor: float = 0.05
    noise_ramp: float = 0.75
    lr_rampdown: float = 0.25
    lr_rampup: float = 0.05
    noise_reg: float = 1e5

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``: cosine ramp down over the last ``lr_rampdown``, linear ramp
        up over the first ``lr_rampup`` of the steps."""
        t = step / self.steps
        ramp = min(1.0, (1.0 - t) / self.lr_rampdown)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        return self.lr * ramp * min(1.0, t / self.lr_rampup)

    def latent_noise_at(self, step: int) -> float:
        """The latent noise's scale (times the latent's spread) at ``step``."""
        t = step / self.steps
        return self.noise_factor * max(0.0, 1.0 - t / self.noise_ramp) ** 2


@dataclass
class Projection:
    """What a projection found: ``latent`` is ws (1, num_ws, w_dim) for a W-space run (``space``
    ``w`` or ``w+``: one w broadcast to every layer, or one per layer) or z (1, nz) (``z``);
    ``noise`` the optimised noise maps by buffer name (W space only); ``image`` what they give."""

    space: str
    latent: Tensor
    label: int | None
    image: Tensor
    target: Tensor
    distance_name: str
    distance: float
    steps: int
    noise: dict[str, Tensor] = field(default_factory=dict)
    frames: list[Tensor] = field(default_factory=list)

    def record(self) -> dict:
        """The latent file's content (``torch.save``-able plain tensors and values)."""
        return {
            "format": "gankit-latents",
            "space": self.space,
            "latent": self.latent.cpu(),
            "labels": None if self.label is None else torch.tensor([self.label]),
            "noise": {k: v.cpu() for k, v in self.noise.items()},
            "distance": self.distance_name,
            "value": self.distance,
            "steps": self.steps,
        }


def project(
    model: object,
    target: Tensor,
    distance: str = OFFLINE_DISTANCE,
    schedule: Schedule | None = None,
    **options: Any,
) -> Projection:
    """Project one image ``target`` (1, C, H, W): :func:`project_many` of one (same options)."""
    return project_many(model, target[:1], distance, schedule, **options)[0]


def project_many(
    model: object,
    targets: Tensor,
    distance: str = OFFLINE_DISTANCE,
    schedule: Schedule | None = None,
    *,
    label: int | None = None,
    ema: bool = True,
    w_plus: bool = False,
    seed: int = 0,
    restarts: int = 3,
    candidates: int = 64,
    lpips: nn.Module | None = None,
    frames: int = 40,
    progress: Progress | None = None,
) -> list[Projection]:
    """Project each of ``targets`` (T, C, H, W) in [-1, 1], of the run's size and channels.

    The targets are optimised together, as one batch of independent problems (a small
    generator's step costs about the same for one image as for twenty). ``distance`` names one of
    :data:`gankit.inference.distances.DISTANCES`; ``frames`` images along the way are kept for
    each target (the progress video), and the first target's are passed to ``progress``.
    """
    schedule = schedule or Schedule()
    if schedule.steps < 1:
        raise ConfigError(f"--steps {schedule.steps} must be at least 1")
    binder = distance_binder(distance, model, lpips)
    if isinstance(model, WSpaceModel) and model.w_generator(ema) is not None:
        opt = _w_problem(model, targets, binder, label, ema, w_plus, seed)
    elif isinstance(model, Exportable):
        opt = _z_problem(model, targets, binder, label, ema, seed, restarts, candidates)
    else:
        raise ConfigError("projection needs a GAN run's generator (task gan)")
    every = max(1, schedule.steps // max(1, frames))
    return opt.run(schedule, every, progress, targets, distance)


@dataclass
class _Problem:
    """One optimisation: ``per`` candidate latents for each target (rows target-major), how to
    draw them, their distances to their targets, and what else is optimised."""

    space: str
    latent: Tensor
    labels: Tensor | None
    per: int
    spread: float
    render: Callable[[Tensor], Tensor]
    distance: Bound
    noise: dict[str, Tensor] = field(default_factory=dict)
    clamp: bool = False
    full: Callable[[Tensor], Tensor] = lambda x: x
    """The latent as saved: a single w broadcast to every layer."""

    def run(
        self, s: Schedule, every: int, progress: Progress | None, targets: Tensor, name: str
    ) -> list[Projection]:
        latent = self.latent.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([latent, *self.noise.values()], lr=s.lr, betas=(0.9, 0.999))
        shown: list[list[Tensor]] = [[] for _ in targets]
        for step in range(s.steps):
            for group in opt.param_groups:
                group["lr"] = s.lr_at(step)
            jitter = torch.randn_like(latent) * (self.spread * s.latent_noise_at(step))
            images = self.render(latent + jitter)
            dist = self.distance(images)
            loss = dist.sum()
            if self.noise:
                loss = loss + s.noise_reg * noise_regularisation(self.noise.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self._after_step(latent)
            if (step + 1) % every == 0 or step + 1 == s.steps:
                for t, row in enumerate(self._best(dist)):
                    shown[t].append(images[row].detach().float().clamp(-1, 1).cpu()[None])
                if progress is not None:
                    progress(step + 1, s.steps, shown[0][-1])
        with torch.no_grad():
            images = self.render(latent)
            dist = self.distance(images)
        return [
            self._result(t, b, latent, images, dist, targets, name, s.steps, shown[t])
            for t, b in enumerate(self._best(dist))
        ]

    def _best(self, dist: Tensor) -> list[int]:
        """The row of each target's closest candidate."""
        per_target = dist.detach().view(-1, self.per)
        return (per_target.argmin(1) + torch.arange(len(per_target)) * self.per).tolist()

    def _result(self, t, b, latent, images, dist, targets, name, steps, frames) -> Projection:
        return Projection(
            space=self.space,
            latent=self.full(latent.detach()[b : b + 1]).cpu(),
            label=None if self.labels is None else int(self.labels[b]),
            image=images[b : b + 1].detach().float().clamp(-1, 1).cpu(),
            target=targets[t : t + 1].cpu(),
            distance_name=name,
            distance=float(dist[b]),
            steps=steps,
            noise={k: v.detach()[b : b + 1].cpu() for k, v in self.noise.items()},
            frames=frames,
        )

    @torch.no_grad()
    def _after_step(self, latent: Tensor) -> None:
        for buf in self.noise.values():  # the reference's renormalisation
            buf -= buf.mean(dim=(1, 2, 3), keepdim=True)
            buf *= buf.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
        if self.clamp:
            latent.clamp_(-1, 1)


def noise_regularisation(maps) -> Tensor:
    """Σ over maps and scales of the squared mean autocorrelation at a one-pixel shift, in x and
    in y, each map halved by average pooling down to 8×8 (stylegan2-ada's projector), per
    candidate and summed."""
    total = torch.zeros(())
    for v in maps:
        while True:
            sx = (v * torch.roll(v, shifts=1, dims=3)).mean(dim=(1, 2, 3)).square()
            sy = (v * torch.roll(v, shifts=1, dims=2)).mean(dim=(1, 2, 3)).square()
            total = total.to(v.device) + (sx + sy).sum()
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return total


def _candidate_labels(model: object, label: int | None) -> Tensor | None:
    """The class of each start: the one given, every class of a conditional run, or none."""
    classes = label_classes(model)
    if label is not None:
        if not classes or not 0 <= label < len(classes):
            raise ConfigError(f"--class {label}: not a class of this run")
        return torch.tensor([label])
    return torch.arange(len(classes)) if classes else None


W_AVG_SAMPLES = 10_000
"""Mapped z that give the start w and σ_w (stylegan2-ada's ``w_avg_samples``)."""


def _w_problem(
    model: WSpaceModel, targets: Tensor, binder: Binder, label: int | None, ema: bool,
    w_plus: bool, seed: int,
) -> _Problem:  # fmt: skip
    G = mapped_generator(model, ema, "projection in W")
    device = G.w_avg.device
    labels = _candidate_labels(model, label)
    n = 1 if labels is None else len(labels)
    starts, spread = _w_starts(G, model, labels, seed)
    synthesis = copy.deepcopy(G.synthesis).requires_grad_(False).eval()
    rows = n * len(targets)
    noise = {
        name: torch.randn(rows, 1, *buf.shape, device=device).requires_grad_(True)
        for name, buf in synthesis.named_buffers()
        if name.endswith("noise_const")
    }
    num_ws = G.num_ws
    latent = starts.unsqueeze(1).repeat(len(targets), num_ws if w_plus else 1, 1)

    def full(w: Tensor) -> Tensor:
        return w.expand(-1, num_ws, -1)

    def render(w: Tensor) -> Tensor:
        return functional_call(synthesis, noise, (full(w), "const"))

    labels = None if labels is None else labels.repeat(len(targets))
    y = None if labels is None else labels.to(device)
    bound = binder(targets.to(device).repeat_interleave(n, 0), y)
    space = "w+" if w_plus else "w"
    return _Problem(space, latent, labels, n, spread, render, bound, noise, full=full)


@torch.no_grad()
def _w_starts(G, model: object, labels: Tensor | None, seed: int) -> tuple[Tensor, float]:
    """The mean w of mapped seeded z, per class, and σ_w (root mean squared distance to it)."""
    device = G.w_avg.device
    n = 1 if labels is None else len(labels)
    per = max(1000, W_AVG_SAMPLES // n)
    z = seeded_noise(model, per, seed + 123).to(device)  # type: ignore[arg-type]
    starts, sq = [], []
    for k in range(n):
        y = None if labels is None else labels[k].repeat(per).to(device)
        w = G.mapping(z, y)[:, 0].float()
        starts.append(w.mean(0))
        sq.append((w - starts[-1]).square().sum(1).mean())
    return torch.stack(starts), float(torch.stack(sq).mean().sqrt())


def _z_problem(
    model: Exportable, targets: Tensor, binder: Binder, label: int | None, ema: bool, seed: int,
    restarts: int, candidates: int,
) -> _Problem:  # fmt: skip
    if restarts < 1 or candidates < restarts:
        raise ConfigError(f"need 1 <= restarts ({restarts}) <= candidates ({candidates})")
    net, record = model.export_generator(ema)
    net = copy.deepcopy(net).requires_grad_(False).eval()
    device = next(net.parameters()).device
    classes = _candidate_labels(model, label)
    z = seeded_noise(model, candidates, seed).to(device)  # type: ignore[arg-type]
    spread = float(z.std())
    y_all = None
    if classes is not None:  # every (code, class) pair is a candidate start
        y_all = classes.repeat_interleave(len(z)).to(device)
        z = z.repeat(len(classes), 1)

    def render_with(y: Tensor | None) -> Callable[[Tensor], Tensor]:
        return (lambda codes: net(codes, y)) if y is not None else (lambda codes: net(codes))

    targets = targets.to(device)
    chunks = [(i, None if y_all is None else y_all[i : i + 64]) for i in range(0, len(z), 64)]
    with torch.no_grad():
        pool = [render_with(y)(z[i : i + 64]) for i, y in chunks]
        best = [
            torch.cat([binder(t[None], y)(img) for (_, y), img in zip(chunks, pool, strict=True)])
            .argsort()[:restarts]
            for t in targets
        ]  # fmt: skip
    pick = torch.cat(best)
    labels = None if y_all is None else y_all[pick]
    bound = binder(targets.repeat_interleave(restarts, 0), labels)
    return _Problem(
        "z", z[pick], None if labels is None else labels.cpu(), restarts, spread,
        render_with(labels), bound, clamp=record.get("noise") == "uniform",
    )  # fmt: skip
