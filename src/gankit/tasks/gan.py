"""The unconditional image GAN: one generator step and its critic steps.

One ``step`` is one generator update preceded by ``d_steps`` critic updates (Goodfellow et al. 2014,
algorithm 1; Arjovsky et al. 2017, algorithm 1). Each critic update draws its own real batch from
the stream. The fake batch of the last critic update is reused for the generator update, as in the
PyTorch DCGAN example, which saves one generator forward pass per step.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from gankit.augment import diff_augment
from gankit.config import Config, OptimConfig
from gankit.errors import CheckpointError
from gankit.health import gan_advice
from gankit.nets import build_discriminator, build_generator
from gankit.objectives import OBJECTIVES, gradient_penalty
from gankit.runtime import Runtime
from gankit.schedules import linear_decay


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam, RMSprop or SGD from an optimizer config."""
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


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


def _set_requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)


class GANTask:
    """Generator, discriminator, their optimizers and losses; the loop drives it."""

    name = "gan"

    def __init__(self, cfg: Config, runtime: Runtime):
        self.cfg, self.rt = cfg, runtime
        size, ch = cfg.data.image_size, cfg.data.channels
        self.G = build_generator(cfg.model, size, ch)
        self.D = build_discriminator(cfg.model, size, ch)
        self.g, self.d = runtime.prepare(self.G), runtime.prepare(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optim_g)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optim_d)
        self.scaler_g, self.scaler_d = runtime.grad_scaler(), runtime.grad_scaler()
        self.schedulers = [
            torch.optim.lr_scheduler.LambdaLR(o, self._lr_factor) for o in (self.opt_g, self.opt_d)
        ]
        self.objective = OBJECTIVES[cfg.gan.loss]
        self.clip = cfg.gan.clip if cfg.gan.clip is not None else self.objective.clip
        self.gp_weight = (
            cfg.gan.gp_weight if cfg.gan.gp_weight is not None else self.objective.gp_weight
        )
        self.ema: AveragedModel | None = None
        if cfg.gan.ema > 0:
            self.ema = AveragedModel(
                self.G, multi_avg_fn=ema_with_warmup(cfg.gan.ema), use_buffers=True
            )
        self.g_step = 0
        self._evaluator = None  # built on first use: see prepare_evaluation
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_z = self.noise(cfg.train.n_preview, generator=gen)

    def _lr_factor(self, step: int) -> float:
        start = self.cfg.gan.lr_decay_start
        if start is None:
            return 1.0
        total = (
            self.cfg.train.steps
        )  # read at each step: train.epochs may resolve it after __init__
        return linear_decay(step, total, int(start * total))

    # --- noise and sampling ------------------------------------------------------------------

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes: N(0, I), or U[-1, 1) with model.noise=uniform (cs231n)."""
        device = "cpu" if generator is not None else self.rt.device
        shape = (n, self.cfg.model.nz)
        if self.cfg.model.noise == "uniform":
            z = torch.rand(shape, generator=generator, device=device) * 2 - 1
        else:
            z = torch.randn(shape, generator=generator, device=device)
        return z.to(self.rt.device)

    def generator_for_sampling(self, ema: bool = True) -> nn.Module:
        """The EMA generator once it has started averaging, else the trained one."""
        if ema and self.ema is not None and self.ema.n_averaged.item() > 0:
            return self.ema.module
        return self.G

    @torch.no_grad()
    def sample(self, z: Tensor | None = None, ema: bool = True) -> Tensor:
        """Images in [-1, 1] from ``z`` (default: the fixed preview noise), in eval mode."""
        net = self.generator_for_sampling(ema)
        was_training = net.training
        net.eval()
        try:
            with self.rt.autocast():
                out = net(self.fixed_z if z is None else z.to(self.rt.device))
        finally:
            net.train(was_training)
        return out.float()

    # --- training ----------------------------------------------------------------------------

    def augment(self, x: Tensor) -> Tensor:
        """DiffAugment of D's input (identity without gan.augment)."""
        return diff_augment(x, self.cfg.gan.augment)

    @property
    def batches_per_step(self) -> int:
        """Real batches one step draws in the steady state (the critic steps)."""
        return self.cfg.gan.d_steps

    @property
    def images_per_step(self) -> int:
        return self.cfg.train.batch_size * critic_steps(
            self.cfg.gan.d_steps, self.cfg.gan.d_schedule, self.g_step
        )

    @property
    def d_is_probability(self) -> bool:
        """Whether ``d_real``/``d_fake`` are probabilities (the loop's D-winning health check)."""
        return self.objective.probability

    def health_advice(self) -> dict[str, str]:
        """Config changes to suggest for each training-health event (gankit.health)."""
        return gan_advice(self.cfg)

    def _update(
        self, loss: Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler
    ) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def step(self, batches: Iterator[Tensor]) -> dict[str, Tensor]:
        """One generator update after its critic updates; returns detached scalar tensors."""
        gan, obj, B = self.cfg.gan, self.objective, self.cfg.train.batch_size
        n_critic = critic_steps(gan.d_steps, gan.d_schedule, self.g_step)
        out: dict[str, Tensor] = {}
        for k in range(n_critic):
            last = k == n_critic - 1
            real = next(batches).contiguous(memory_format=self.rt.memory_format)
            z = self.noise(B)
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
            self._update(loss_d, self.opt_d, self.scaler_d)
            if self.clip:
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-self.clip, self.clip)

        _set_requires_grad(self.D, False)  # no D gradients are needed for the G update
        with self.rt.autocast():
            gen_logits = self.d(self.augment(fake)).float()
        loss_g = obj.g_loss(gen_logits)
        self._update(loss_g, self.opt_g, self.scaler_g)
        _set_requires_grad(self.D, True)

        for sched in self.schedulers:
            sched.step()
        self.g_step += 1
        if self.ema is not None and self.g_step > gan.ema_start:
            self.ema.update_parameters(self.G)

        squash = torch.sigmoid if obj.probability else (lambda t: t)
        out.update(
            loss_d=loss_d.detach(),
            loss_g=loss_g.detach(),
            d_real=squash(real_logits.detach()).mean(),
            d_fake=squash(fake_logits.detach()).mean(),
        )
        return out

    # --- evaluation during training (eval.every > 0) ------------------------------------------

    @property
    def eval_every(self) -> int:
        """Steps between evaluations by the loop (``eval.every``; 0 = never)."""
        return self.cfg.eval.every

    @property
    def best_metric(self) -> tuple[str, bool] | None:
        """The score that decides ``checkpoints/best.pt`` and whether higher is better."""
        from gankit.evaluation import TRAINING_METRICS

        if not self.cfg.eval.every:
            return None
        return f"eval_{self.cfg.eval.metric}", TRAINING_METRICS[self.cfg.eval.metric][1]

    def prepare_evaluation(self) -> None:
        """Build the evaluator once: feature extractor, reference images and cached features."""
        if self._evaluator is None:
            from gankit.evaluation import TrainingEvaluator

            # Reading a folder reference seeds DataLoader workers from the global RNG; the
            # training RNG must not move, or a resumed run would differ from a straight one.
            with torch.random.fork_rng(devices=[]):
                self._evaluator = TrainingEvaluator(self.cfg, self.rt.device)

    def evaluate(self) -> dict[str, float]:
        """``eval_<key>`` scores of ``eval.n`` samples from fixed noise (see gankit.evaluation)."""
        from gankit.sampling import generate

        self.prepare_evaluation()
        seed, ema = self.cfg.seed + 3, self.cfg.eval.ema
        with torch.random.fork_rng(devices=[]):
            return self._evaluator(lambda n: generate(self, n, seed=seed, ema=ema))  # type: ignore[misc]

    # --- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        state = {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "schedulers": [sched.state_dict() for sched in self.schedulers],
            "g_step": self.g_step,
            "fixed_z": self.fixed_z.cpu(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict, weights_only: bool = False) -> None:
        """Restore everything (or only G, D and EMA with ``weights_only``, for sampling)."""
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            self.fixed_z = state["fixed_z"].to(self.rt.device)
            if not weights_only:
                self.opt_g.load_state_dict(state["opt_g"])
                self.opt_d.load_state_dict(state["opt_d"])
                self.scaler_g.load_state_dict(state["scaler_g"])
                self.scaler_d.load_state_dict(state["scaler_d"])
                for sched, sd in zip(self.schedulers, state["schedulers"], strict=True):
                    sched.load_state_dict(sd)
                self.g_step = state["g_step"]
        except (KeyError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0][:160]
            raise CheckpointError(
                f"checkpoint does not match this model ({type(e).__name__}: {first})"
            ) from None
