"""The Python API: the functions the command line calls, for notebooks and scripts.

    import gankit
    run = gankit.train("dcgan-mnist", train={"steps": 300})   # or overrides=["train.steps=300"]
    model = gankit.load(run.path)                             # or an exported .safetensors file
    images = model.sample(16, seed=0)                         # uint8 (16, C, H, W)
    scores = gankit.evaluate(run.path, ref="builtin:mnist", n=500, metrics=["kid"])

Images go in and out as uint8 tensors (N, C, H, W) or PIL images. Errors are the command line's
:class:`~gankit.errors.GankitError` subclasses, with the same one-line messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from gankit.config import Config, flatten, load_recipe, recipe_names, to_dict
from gankit.errors import ConfigError, DataError
from gankit.registries import DEFAULT_RECIPE

__all__ = ["Model", "Run", "Scores", "evaluate", "load", "recipes", "train"]


def recipes() -> dict[str, str]:
    """The built-in recipes: ``{name: description}``."""
    return {name: load_recipe(name).get("description", "") for name in recipe_names()}


@dataclass
class Run:
    """A run directory after training: its path, config, last step and how it ended."""

    path: Path
    config: Config
    step: int
    stopped_by: str | None = None

    def load(self, device: str = "cpu", ema: bool | None = None) -> Model:
        """The trained model (see :func:`load`)."""
        return load(self.path, device=device, ema=ema)

    def metrics(self) -> list[dict]:
        """The rows of ``metrics.jsonl``: one per logged step, plus events."""
        from gankit.engine.health import read_rows

        return read_rows(self.path / "metrics.jsonl")

    def previews(self) -> list[Path]:
        """The preview grids in ``samples/``, oldest first."""
        return sorted((self.path / "samples").glob("step-*.png"))


def train(
    recipe: str | Config = DEFAULT_RECIPE,
    overrides: Sequence[str] | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    init_from: str | Path | None = None,
    **sections: dict[str, Any],
) -> Run:
    """Train a recipe (a name, a .yaml path or a Config) and return the :class:`Run`.

    Settings come as ``overrides`` (``["train.steps=300"]``, as on the command line) and/or as
    sections (``train={"steps": 300}, gan={"loss": "hinge"}``). ``resume=RUN`` continues a run
    with the given changes (the recipe is then the run's own). The progress bar is tqdm's, which
    notebooks show as text.
    """
    from gankit.engine.loop import train_run
    from gankit.registries import build_config, from_dict, load_config

    items = [*(overrides or []), *(f"{k}={json.dumps(v)}" for k, v in flatten(sections).items())]
    if resume is not None:
        run_dir = Path(resume)
        cfg = load_config(run_dir / "config.yaml", items)
        outcome = train_run(cfg, run_dir, resume=True)
    else:
        if isinstance(recipe, Config):
            cfg = from_dict(to_dict(recipe))
            if items:
                from gankit.config import apply_overrides, parse_overrides

                cfg = from_dict(apply_overrides(to_dict(cfg), parse_overrides(items)))
        else:
            cfg = build_config(recipe, items)
        outcome = train_run(cfg, out, init_from=init_from)
    return Run(outcome.run_dir, cfg, outcome.step, outcome.stopped_by)


def to_uint8_images(images: Tensor) -> Tensor:
    """Generator output in [-1, 1] -> uint8, exactly as the PNG files gankit writes."""
    # torchvision's save_image: (x + 1) / 2 * 255 + 0.5, clamped, truncated
    x = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    return x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def to_pil(images: Tensor) -> list[Image.Image]:
    """uint8 (N, C, H, W) -> PIL images (grey or RGB)."""
    out = []
    for img in images:
        arr = img.permute(1, 2, 0).numpy()
        out.append(Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr))
    return out


def from_images(
    images: Tensor | Image.Image | Sequence[Image.Image], channels: int | None = None
) -> Tensor:
    """uint8 (N, C, H, W) from a uint8 tensor, one PIL image or a list of them; with
    ``channels``, grey and colour are converted to it as the command line converts files (PIL's
    ``L``/``RGB``). A one-line DataError for no images or images of different sizes."""
    import numpy as np

    if isinstance(images, Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or not len(images):
            raise DataError(
                f"images must be uint8 (N, C, H, W) with N >= 1, got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if channels is None or images.shape[1] == channels:
            return images
        images = to_pil(images)
    if isinstance(images, Image.Image):
        images = [images]
    if not len(images):
        raise DataError("no images given: pass a uint8 tensor, a PIL image or a list of them")
    sizes = sorted({im.size for im in images})
    if len(sizes) > 1:
        (w0, h0), (w1, h1) = sizes[:2]
        raise DataError(
            f"images of different sizes ({w0}x{h0} and {w1}x{h1}) cannot form one batch: pass "
            "one size per call"
        )
    grey = {1: True, 3: False}.get(channels or 0)
    modes = [
        "L" if (grey if grey is not None else im.mode in ("1", "L", "I", "F")) else "RGB"
        for im in images
    ]
    arrays = [np.asarray(im.convert(mode)) for im, mode in zip(images, modes, strict=True)]
    stack = np.stack([a[..., None] if a.ndim == 2 else a for a in arrays])
    return torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous()


class Model:
    """A trained model, with the methods of its roles: ``sample``, ``translate``, ``classify``."""

    def __init__(self, inner: Any, ema: bool | None, source: str) -> None:
        self.inner, self.source = inner, source
        self.ema = ema

    def _role(self, role: type, what: str) -> Any:
        if not isinstance(self.inner, role):
            raise ConfigError(f"{self.source} {what}")
        return self.inner

    def sample(
        self,
        n: int = 64,
        seed: int = 0,
        labels: Tensor | int | None = None,
        pil: bool = False,
    ) -> Tensor | list[Image.Image]:
        """``n`` images from seeded noise: the same as ``gankit sample RUN --n N --seed S``.

        A class-conditional run draws ``labels[i]`` (class indices, see :attr:`classes`) for
        sample ``i``, or every class in turn without them (as ``gankit sample`` does); ``labels``
        may also be one int for ``n`` samples of that class (``gankit sample --class K``).
        """
        from gankit.inference.roles import Generative, label_classes
        from gankit.inference.sampling import generate, resolve_ema

        model = self._role(Generative, "has no generator: it cannot sample")
        if n < 1:
            raise ConfigError(f"n={n} must be positive")
        if labels is not None:
            if not label_classes(model):
                raise ConfigError(f"{self.source} is unconditional: it takes no labels")
            labels = torch.full((n,), labels) if isinstance(labels, int) else labels
            labels = torch.as_tensor(labels).long().view(-1)
            if len(labels) != n:
                raise ConfigError(f"labels: {len(labels)} labels for n={n} samples")
        ema = resolve_ema(self.ema, model, self.source)
        images = to_uint8_images(generate(model, n, seed=seed, ema=ema, labels=labels))
        return to_pil(images) if pil else images

    def translate(self, images: Tensor | Sequence[Image.Image], direction: str = "AtoB") -> Tensor:
        """Translate uint8 images (any height and width) with an image-to-image run."""
        from gankit.inference.roles import Translator

        model = self._role(Translator, "does not translate images (no image-to-image task)")
        from gankit.data.stream import to_unit

        batch = from_images(images, model.channels)
        return to_uint8_images(model.translate(to_unit(batch), direction))

    def classify(self, images: Tensor | Sequence[Image.Image]) -> Tensor:
        """Class probabilities (N, K) of uint8 images with a classifier run."""
        from gankit.inference.roles import Classifier

        model = self._role(Classifier, "is not a classifier run")
        return model.predict(from_images(images, model.channels)).softmax(1)

    @property
    def classes(self) -> list[str]:
        """The class names of a classifier or of a class-conditional GAN (label order)."""
        from gankit.inference.roles import Classifier, label_classes

        gan_classes = label_classes(self.inner)
        if gan_classes:
            return list(gan_classes)
        return self._role(Classifier, "is not a classifier run nor a conditional GAN").classes


def load(path: str | Path, device: str = "cpu", ema: bool | None = None) -> Model:
    """A run directory (or an exported ``.safetensors`` generator) as a :class:`Model`.

    ``ema``: None samples the EMA generator when the run has one (as ``gankit sample``).
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from gankit.inference.export import load_export

        return Model(load_export(path, device), ema, str(path))
    from gankit.inference.loading import load_run

    return Model(load_run(path, device=device).model, ema, str(path))


@dataclass
class Scores:
    """What :func:`evaluate` measured; a metric that was not asked for is None."""

    fid: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    precision: float | None = None
    recall: float | None = None
    density: float | None = None
    coverage: float | None = None
    modes: dict | None = None
    memorisation: dict | None = None
    copying: dict | None = None
    inception_score: float | None = None
    """``metrics=["is"]``: the mean over 10 splits; ``inception_score_std`` their std."""
    inception_score_std: float | None = None
    fd_infinity: float | None = None
    """``metrics=["fdinf"]``: FID extrapolated to infinitely many samples (Chong & Forsyth 2020)."""
    n: int = 0
    notes: list[str] = field(default_factory=list)


def evaluate(
    samples: str | Path,
    ref: str,
    *,
    n: int | None = None,
    metrics: Sequence[str] = ("fid", "kid", "prdc"),
    **options: Any,
) -> Scores:
    """Score a GAN run (or a folder of images) against the reference source ``ref``.

    The same computation as ``gankit evaluate`` (options: ``features``, ``inception``,
    ``backend``, ``classifier``, ``ema``, ``seed``, ``device``, ``checkpoint``, ``ref_n``, ``fit``,
    ``root``, ``protocol``, ``resizer``); nothing is written. ``n`` samples, 2,000 by default; a
    named ``protocol`` (``"fid50k_full"``, ...) fixes it, and ``n`` must then be left out.
    """
    from gankit.evaluation.evaluate import evaluate_source

    done = evaluate_source(samples, ref, n=n, metrics=list(metrics), **options)
    m = done.result.metrics
    prdc = m.get("prdc", {})
    return Scores(
        fid=m.get("fid", {}).get("fid"),
        kid=m.get("kid", {}).get("kid"),
        kid_std=m.get("kid", {}).get("kid_std"),
        precision=prdc.get("precision"),
        recall=prdc.get("recall"),
        density=prdc.get("density"),
        coverage=prdc.get("coverage"),
        modes=m.get("modes"),
        memorisation=m.get("memorisation"),
        copying=m.get("copying"),
        inception_score=m.get("is", {}).get("is"),
        inception_score_std=m.get("is", {}).get("is_std"),
        fd_infinity=m.get("fdinf", {}).get("fd_inf"),
        n=len(done.samples.images),
        notes=list(done.result.notes),
    )
