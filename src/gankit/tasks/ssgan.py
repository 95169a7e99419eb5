"""The semi-supervised GAN: a K-class discriminator that learns from few labels and many images.

Salimans et al. 2016 ("Improved Techniques for Training GANs", sec. 5): the discriminator has K
class logits l(x) and no separate real/fake output; with Z(x) = Σ_k exp(l_k(x)) it reads
D(x) = Z/(Z + 1) as the probability that x is real, so log D = logZ − softplus(logZ) and
log(1 − D) = −softplus(logZ). One step

- updates D on a labelled batch (cross-entropy of the K logits), an unlabelled batch (−log D)
  and a generated batch (−log(1 − D)): ``loss_d = ce + unlabelled_weight · (softplus(−logZ_real)
  + softplus(logZ_fake))``;
- updates G by feature matching, ‖E f(x_real) − E f(G(z))‖² on D's last hidden layer (sec. 3.1),
  or with ``ssgan.g_loss=non-saturating`` by −log D(G(z)).

Streams: ``labelled`` (``data.labels_per_class`` images of every class, with labels) and
``unlabelled`` (every image of the source). ``ssgan.supervised_only=true`` trains the same
discriminator on the labelled stream alone: the baseline the semi-supervised run is measured
against. A loaded run is both a :class:`~gankit.inference.roles.Classifier` (``gankit evaluate-classifier``)
and a :class:`~gankit.inference.roles.Generative` (``gankit sample``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from gankit import seeds
from gankit.config import Config, OptimConfig
from gankit.config.options import option
from gankit.data.sources import ImageData, load_source
from gankit.data.stream import to_unit
from gankit.engine.runtime import Runtime, optimizer_step
from gankit.engine.schedules import decaying
from gankit.errors import ConfigError, DataError
from gankit.gan.model import GANModel, update_ema
from gankit.gan.stabilisers.matching import feature_matching_loss
from gankit.inference.roles import (
    Classifier,
    Critic,
    DataInitialised,
    FeatureDiscriminator,
    Generative,
)
from gankit.nets import build_net
from gankit.nets.eval_mode import eval_mode
from gankit.tasks.base import (
    Streams,
    StreamSpec,
    Task,
    TaskInfo,
    make_optimizer,
    requires_grad,
)

log = logging.getLogger("gankit")


@dataclass
class SsganOptions:
    """The semi-supervised GAN (``ssgan.*``)."""

    classes: tuple[str, ...] | None = option(None, structural=True)
    """Class names in label order; filled in from the data when training starts."""
    g_loss: Literal["feature-matching", "non-saturating"] = "feature-matching"
    """feature-matching: match the batch mean of D's last hidden layer (Salimans et al. 2016);
    non-saturating: −log D(G(z)) with D = Z/(Z+1)."""
    unlabelled_weight: float = 0.5
    """Weight of the unlabelled and generated terms of D's loss (0.5 in the paper's MNIST code)."""
    supervised_only: bool = option(False, structural=True)
    """Train the discriminator on the labelled images alone (no G, no unlabelled data): the
    baseline classifier of the same network and labels."""
    lr_decay_start: float | None = None
    """Fraction of train.steps after which both learning rates fall linearly to 0; None = constant."""
    average: float = option(0.0, structural=True)
    """Decay of an exponential moving average of D's weights that classifies (evaluation,
    ``gankit evaluate-classifier``); 0 = the trained D itself. The paper's code tests with a
    running average of D's parameters."""
    eval_every: int = 0
    """Steps between test-split accuracies in the log (0 = never)."""
    eval_batch_size: int = 1000


def real_logit(logits: Tensor) -> Tensor:
    """logZ = logsumexp of the K class logits: D(x) = sigmoid(logZ) = Z/(Z+1)."""
    return torch.logsumexp(logits, dim=1)


def ssgan_d_loss(
    labelled_logits: Tensor, labels: Tensor, real_logits: Tensor, fake_logits: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(supervised cross-entropy, −log D(real), −log(1 − D(fake))), each a batch mean."""
    ce = F.cross_entropy(labelled_logits, labels)
    real = F.softplus(-real_logit(real_logits)).mean()
    fake = F.softplus(real_logit(fake_logits)).mean()
    return ce, real, fake


class SsganModel:
    """A trained semi-supervised GAN for the commands: its D as a :class:`Classifier` of uint8
    images, its G as a :class:`Generative`, its logZ as a :class:`Critic` score."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        cfg: Config,
        device: torch.device,
        fixed_z: Tensor,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        self.net, self.G, self.cfg, self.device = D, G, cfg, device
        self.channels = cfg.data.channels
        self.classes = list(cfg.section(SsganOptions).classes or ())
        self.tta_flip = False
        self.gan = GANModel(G, None, None, cfg.nets["G"].nz, "uniform", fixed_z, device, autocast)
        self.nz, self.has_ema, self._autocast = self.gan.nz, False, autocast

    @property
    def fixed_z(self) -> Tensor:
        return self.gan.fixed_z

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes U[-1, 1) (the paper's MNIST generator draws uniform noise)."""
        return self.gan.noise(n, generator)

    def sample(
        self, z: Tensor | None = None, labels: Tensor | None = None, ema: bool = True
    ) -> Tensor:
        return self.gan.sample(z, labels, ema=False)

    def inputs(self, x: Tensor) -> Tensor:
        """uint8 (N, C, H, W) → [-1, 1] floats on the device, as in training."""
        return to_unit(x.to(self.device))

    @torch.no_grad()
    def _logits(self, x: Tensor) -> Tensor:
        with eval_mode(self.net), self._autocast():
            return self.net(x).float()

    def predict(self, images: Tensor, tta_flip: bool | None = None) -> Tensor:
        """Class logits (float32, CPU) of uint8 images; ``tta_flip`` also averages mirror images
        (off by default: digits are not mirror-symmetric)."""
        out = []
        for chunk in images.split(self.cfg.section(SsganOptions).eval_batch_size):
            x = self.inputs(chunk)
            logits = self._logits(x)
            if tta_flip:
                logits = (logits + self._logits(x.flip(-1))) / 2
            out.append(logits.cpu())
        return torch.cat(out)

    def discriminate(self, images: Tensor) -> Tensor:
        """logZ of images in [-1, 1]: the logit of D(x) = Z/(Z+1)."""
        return real_logit(self._logits(images.to(self.device))).cpu()


class SsganTask(Task[SsganOptions]):
    """G, a K-class D, their Adam optimizers; parts ``G``, ``D``; buffer ``fixed_z``."""

    name = "ssgan"
    Options = SsganOptions
    networks = {"G": ("generator", "ssgan-mlp"), "D": ("classifier", "ssgan-mlp")}
    optimizers = {
        "G": OptimConfig(lr=3e-3, betas=(0.5, 0.999)),
        "D": OptimConfig(lr=3e-3, betas=(0.5, 0.999)),
    }
    structural = ("train.n_preview",)
    roles = (Classifier, Generative, Critic)
    needs_first_batch = True

    @classmethod
    def validate(cls, cfg: Config) -> None:
        s = cfg.section(SsganOptions)
        if not 0 <= s.average < 1:
            raise ConfigError(f"ssgan.average={s.average} must be in [0, 1), e.g. 0.999; 0 = off")
        if s.unlabelled_weight < 0 or s.eval_every < 0 or s.eval_batch_size <= 0:
            raise ConfigError(
                "ssgan.unlabelled_weight and ssgan.eval_every must be >= 0, "
                "ssgan.eval_batch_size > 0"
            )
        if cfg.data.source.startswith(("lmdb:", "aligned:", "paired:")):
            raise ConfigError(
                f"task ssgan needs labelled images: {cfg.data.source} has no labels (use mnist, "
                "fashion-mnist, cifar10, builtin:mnist or folder:PATH with class sub-folders)"
            )
        if cfg.data.labels_per_class is None:
            log.warning("data.labels_per_class is unset: every image's label is used")

    @classmethod
    def streams(cls, cfg: Config) -> dict[str, StreamSpec]:
        labelled = {"labelled": StreamSpec(cfg.data, labels=True)}
        if cfg.section(SsganOptions).supervised_only:
            return labelled
        # unlabelled first: train.epochs counts passes over every image
        unlabelled = dataclasses.replace(cfg.data, labels_per_class=None)
        return {"unlabelled": StreamSpec(unlabelled), **labelled}

    @classmethod
    def resolve(cls, cfg: Config, data: dict[str, ImageData]) -> None:
        labelled = data["labelled"]
        top = int(labelled.labels.max()) + 1  # type: ignore[union-attr]
        found = tuple(labelled.classes) if labelled.classes else tuple(map(str, range(top)))
        if cfg.section(SsganOptions).classes is None:
            cfg.section(SsganOptions).classes = found
        elif tuple(cfg.section(SsganOptions).classes) != found:
            raise ConfigError(
                f"{cfg.data.source} has classes {', '.join(found)}, but this run was trained on "
                f"{', '.join(cfg.section(SsganOptions).classes)}"
            )

    @classmethod
    def build_nets(cls, cfg: Config) -> dict[str, nn.Module]:
        if not cfg.section(SsganOptions).classes:
            raise ConfigError("ssgan.classes is unknown: let training read it from the data")
        d = cfg.data
        G = build_net("generator", cfg.nets["G"], d.image_size, d.channels)
        D = build_net(
            "classifier",
            cfg.nets["D"],
            d.image_size,
            d.channels,
            num_classes=len(cfg.section(SsganOptions).classes),
        )
        if not isinstance(D, FeatureDiscriminator):
            raise ConfigError(f"nets.D.arch={cfg.nets['D'].arch} has no features() to match")
        return {"G": G, "D": D}

    @classmethod
    def load_model(cls, cfg: Config, parts: dict[str, Any], device: torch.device) -> SsganModel:
        nets = cls.build_nets(cfg)
        G, D = nets["G"], nets["D"]
        G.load_state_dict(parts["nets"]["G"])
        D.load_state_dict(parts["nets"]["D"])
        if "D" in parts.get("ema", {}):  # classify with the averaged weights
            avg = AveragedModel(D, use_buffers=True)
            avg.load_state_dict(parts["ema"]["D"])
            D = avg.module
        fixed_z = parts["buffers"]["fixed_z"].to(device)
        return SsganModel(G.to(device).eval(), D.to(device).eval(), cfg, device, fixed_z)

    def __init__(self, cfg: Config, rt: Runtime, first: dict[str, Any]) -> None:
        super().__init__(cfg, rt, first)
        nets = self.build_nets(cfg)
        self.G, self.D = nets["G"], nets["D"]
        if isinstance(self.D, DataInitialised):  # a resumed run then loads its own weights
            batch = first["labelled" if cfg.section(SsganOptions).supervised_only else "unlabelled"]
            self.D.init_from_data(self._images(batch).to(rt.device))
        self.g, self.d = rt.prepare(self.G), rt.prepare(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optim["G"])
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optim["D"])
        self.scaler_g, self.scaler_d = rt.grad_scaler(), rt.grad_scaler()
        self.average: AveragedModel | None = None
        if cfg.section(SsganOptions).average > 0:
            self.average = AveragedModel(self.D, use_buffers=True)
        classifier = self.D if self.average is None else self.average.module
        self.model = SsganModel(self.G, classifier, cfg, rt.device, torch.empty(0), rt.autocast)
        gen = seeds.generator(cfg.seed, seeds.PREVIEW)
        self.model.gan.fixed_z = self.model.noise(cfg.train.n_preview, generator=gen)
        self._eval: ImageData | None = None
        self.n_steps = torch.zeros((), dtype=torch.int64)  # a buffer, so it is checkpointed
        self.parts.nets = {"G": self.G, "D": self.D}
        self.parts.optims = {"G": self.opt_g, "D": self.opt_d}
        self.parts.scheds = decaying(
            self.parts.optims, cfg.train.steps, cfg.section(SsganOptions).lr_decay_start
        )
        self.parts.scalers = {"G": self.scaler_g, "D": self.scaler_d}
        self.parts.ema = {"D": self.average} if self.average is not None else {}
        self.parts.buffers = {"fixed_z": self.model.fixed_z, "step": self.n_steps}
        self.info = TaskInfo(
            progress_keys=("ce", "acc", "loss_g"),
            nan_advice="lower optim.D.lr and optim.G.lr",
            eval_every=cfg.section(SsganOptions).eval_every,
            diversity_row=None if cfg.section(SsganOptions).supervised_only else "fake",
        )

    def generative(self) -> SsganModel | None:
        return None if self.cfg.section(SsganOptions).supervised_only else self.model

    def previews(self) -> dict[str, Tensor]:
        return (
            {} if self.cfg.section(SsganOptions).supervised_only else {"fake": self.model.sample()}
        )

    def _images(self, batch: Any) -> Tensor:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        x = to_unit(x) if x.dtype == torch.uint8 else x
        return x.contiguous(memory_format=self.rt.memory_format)

    def step(self, batches: Streams) -> dict[str, Tensor]:
        s = self.cfg.section(SsganOptions)
        x_lab, y = next(batches["labelled"])
        x_lab = self._images(x_lab)
        out: dict[str, Tensor] = {}
        if s.supervised_only:
            with self.rt.autocast():
                lab_logits = self.d(x_lab).float()
            ce = F.cross_entropy(lab_logits, y)
            optimizer_step(ce, self.opt_d, self.scaler_d)
            loss_g = torch.zeros((), device=ce.device)
        else:
            x_unl = self._images(next(batches["unlabelled"]))
            z = self.rt.rank_rows(self.model.noise, len(x_unl))
            with self.rt.autocast():
                fake = self.g(z)
                lab_logits = self.d(x_lab).float()
                unl_logits = self.d(x_unl).float()
                fake_logits = self.d(fake.detach()).float()
            ce, real, fake_term = ssgan_d_loss(lab_logits, y, unl_logits, fake_logits)
            loss_d = ce + s.unlabelled_weight * (real + fake_term)
            optimizer_step(loss_d, self.opt_d, self.scaler_d)

            requires_grad([self.D], False)
            with self.rt.autocast():
                if s.g_loss == "feature-matching":
                    with torch.no_grad():
                        f_real = self.D.features(x_unl).float()
                    loss_g = feature_matching_loss(f_real, self.D.features(fake).float())
                else:
                    loss_g = F.softplus(-real_logit(self.d(fake).float())).mean()
            optimizer_step(loss_g, self.opt_g, self.scaler_g)
            requires_grad([self.D], True)
            p_real = torch.sigmoid(real_logit(unl_logits.detach()))
            out.update(
                loss_d=loss_d.detach(),
                d_real=p_real.mean(),
                d_fake=torch.sigmoid(real_logit(fake_logits.detach())).mean(),
            )
        for sched in self.parts.scheds.values():
            sched.step()
        if self.average is not None:
            update_ema(self.average, self.D, s.average, int(self.n_steps))
        self.n_steps += 1
        out.update(
            ce=ce.detach(),
            acc=(lab_logits.detach().argmax(1) == y).float().mean(),
            loss_g=loss_g.detach(),
        )
        return out

    # --- evaluation -------------------------------------------------------------------------

    def eval_data(self) -> ImageData:
        """The source's test split (all its labels), loaded once, in memory."""
        if self._eval is None:
            d = dataclasses.replace(
                self.cfg.data, split="test", in_memory="yes", labels_per_class=None, limit=None
            )
            with torch.random.fork_rng(devices=[]):
                data = load_source(d, progress=False, with_labels=True)
            if data.labels is None:
                raise DataError(f"{d.source} has no labelled test split: set ssgan.eval_every=0")
            self._eval = data
        return self._eval

    def evaluate(self) -> dict[str, float]:
        """Accuracy and cross-entropy of D's K logits on the test split."""
        data = self.eval_data()
        logits = self.model.predict(data.images)  # type: ignore[arg-type]
        labels = data.labels.cpu()  # type: ignore[union-attr]
        return {
            "test_loss": F.cross_entropy(logits, labels).item(),
            "test_acc": (logits.argmax(1) == labels).float().mean().item(),
        }
