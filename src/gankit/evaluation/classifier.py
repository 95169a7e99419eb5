"""Classifier tools behind the CLI: the learning-rate finder and evaluation of a trained run.

* :func:`run_lr_find` sweeps the learning rate over a fresh copy of a recipe's task (Smith 2017,
  arXiv:1506.01186, section 3.3; fast.ai's ``learn.lr_find()``) and writes ``lr_find.png``; the
  swept weights are thrown away.
* :func:`evaluate_run` scores a classifier run's newest checkpoint on a labelled source: accuracy,
  per-class accuracy and the confusion matrix, which :func:`plot_confusion` draws with PIL.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from gankit.config import Config
from gankit.data.sources import load_source
from gankit.data.stream import make_stream
from gankit.drawing import font as load_font
from gankit.engine.lr_find import LRFindResult, lr_find, plot_lr_find
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError, DataError
from gankit.tasks.classifier import ClassifierOptions

__all__ = [
    "ClassifierEvaluation",
    "confusion_matrix",
    "evaluate_run",
    "plot_confusion",
    "run_lr_find",
]


def run_lr_find(
    cfg: Config,
    out_dir: str | Path,
    lr_min: float = 1e-5,
    lr_max: float = 10.0,
    num: int = 100,
) -> LRFindResult:
    """LR range test of ``cfg``'s task on its training data; writes ``lr_find.png`` and ``.json``.

    Only classifiers have one learning rate and one loss to read (a GAN has two of each).
    Nothing else is written.
    """
    from gankit.tasks.classifier import ClassifierTask

    if cfg.task != ClassifierTask.name:
        raise ConfigError(
            f"lr-find needs a task with one learning rate and one loss (task: classifier); "
            f"{cfg.recipe} is a {cfg.task} recipe"
        )
    torch.manual_seed(cfg.seed)
    runtime = Runtime.from_config(cfg.train)
    cfg.section(ClassifierOptions).eval_every = 0  # the sweep needs no held-out split
    data = load_source(cfg.data, progress=cfg.train.progress, with_labels=True)
    stream = make_stream(
        data, cfg.data, cfg.train.batch_size, runtime.device, cfg.seed, with_labels=True
    )
    ClassifierTask.resolve(cfg, {"labelled": data})
    task = ClassifierTask(cfg, runtime, {})
    result = lr_find(lambda lr: task.lr_find_step(stream, lr), lr_min, lr_max, num)
    out = Path(out_dir)
    plot_lr_find(result, out / "lr_find.png")
    (out / "lr_find.json").write_text(json.dumps(dataclasses.asdict(result)) + "\n")
    return result


@dataclass
class ClassifierEvaluation:
    """Scores of one classifier on one labelled set."""

    accuracy: float
    loss: float
    classes: list[str]
    per_class: list[float]
    """Accuracy per true class (nan for a class with no images)."""
    counts: list[int]
    """Images per true class."""
    confusion: list[list[int]]
    """``confusion[true][predicted]`` image counts."""
    step: int
    tta_flip: bool


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, n: int) -> torch.Tensor:
    """(n, n) int64 counts, rows = true class, columns = predicted class."""
    return torch.bincount(labels * n + preds, minlength=n * n).view(n, n)


def evaluate_run(
    run_dir: str | Path,
    source: str,
    split: str = "test",
    root: str | None = None,
    device: str = "cpu",
    tta_flip: bool | None = None,
) -> ClassifierEvaluation:
    """Score the newest checkpoint of a classifier run on ``source`` (its ``split``).

    The images are prepared as in training (the run's ``data.image_size``, ``channels``, ``fit``);
    ``tta_flip`` defaults to the run's ``classifier.tta_flip``.
    """
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Classifier

    if split not in ("train", "test"):
        raise ConfigError(f"--split {split!r}: use train or test")
    run = load_role(run_dir, Classifier, device=device)
    cfg, task, step = run.cfg, run.model, run.step
    dcfg = dataclasses.replace(
        cfg.data,
        source=source,
        split=split,
        root=root or cfg.data.root,
        limit=None,
        in_memory="yes",
    )
    data = load_source(dcfg, progress=False, with_labels=True)
    classes = list(task.classes or [])
    if data.labels is None:
        raise DataError(f"{source} has no labels: use folder:PATH with one sub-folder per class")
    if data.classes and classes and data.classes != classes:
        raise DataError(
            f"{source} has classes {', '.join(data.classes)}, but {run_dir} was trained on "
            f"{', '.join(classes)}"
        )
    tta = task.tta_flip if tta_flip is None else tta_flip
    logits = task.predict(data.images, tta)
    labels = data.labels.cpu()
    n = logits.shape[1]
    if int(labels.max()) >= n:
        raise DataError(f"{source} has label {int(labels.max())}, but the run has {n} classes")
    matrix = confusion_matrix(labels, logits.argmax(1), n)
    counts = matrix.sum(1)
    per_class = (matrix.diag().double() / counts.clamp_min(1)).where(counts > 0, float("nan"))
    return ClassifierEvaluation(
        accuracy=float(matrix.diag().sum() / matrix.sum()),
        loss=F.cross_entropy(logits, labels).item(),
        classes=classes or [str(k) for k in range(n)],
        per_class=per_class.tolist(),
        counts=counts.tolist(),
        confusion=matrix.tolist(),
        step=step,
        tta_flip=tta,
    )


def plot_confusion(
    confusion: list[list[int]], classes: list[str], path: str | Path, title: str = ""
) -> Path:
    """Draw a confusion matrix as a PNG with PIL: rows true, columns predicted.

    Cells are shaded by the fraction of their row (white 0 → dark blue 1) and show their count
    when there is room; class names label both axes (rotated on the columns).
    """
    n = len(confusion)
    cell = max(10, min(56, 720 // max(n, 1)))
    font, small = load_font(16), load_font(max(8, min(14, cell // 3)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = int(max(probe.textlength(c, font=small) for c in classes)) + 16
    left, top = label_w + 28, label_w + 60
    width = max(left + n * cell + 20, int(probe.textlength(title, font=font)) + 24)
    height = top + n * cell + 20
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((width / 2, 18), title, fill="black", font=font, anchor="mm")
    draw.text((left + n * cell / 2, 42), "predicted", fill="black", font=font, anchor="mm")
    side = Image.new("RGB", (n * cell, 24), "white")
    ImageDraw.Draw(side).text((n * cell / 2, 12), "true", fill="black", font=font, anchor="mm")
    img.paste(side.rotate(90, expand=True), (2, top))
    for i, row in enumerate(confusion):
        total = max(sum(row), 1)
        y = top + i * cell
        draw.text((left - 6, y + cell / 2), classes[i], fill="black", font=small, anchor="rm")
        for j, count in enumerate(row):
            x = left + j * cell
            frac = count / total
            shade = (int(255 - 225 * frac), int(255 - 180 * frac), int(255 - 95 * frac))
            draw.rectangle((x, y, x + cell, y + cell), fill=shade, outline=(200, 200, 200))
            if cell >= 28 and count:
                ink = "white" if frac > 0.5 else "black"
                draw.text(
                    (x + cell / 2, y + cell / 2), str(count), fill=ink, font=small, anchor="mm"
                )
    for j, name in enumerate(classes):  # column labels, written sideways to fit
        tag = Image.new("RGB", (label_w, cell), "white")
        ImageDraw.Draw(tag).text((4, cell / 2), name, fill="black", font=small, anchor="lm")
        img.paste(tag.rotate(90, expand=True), (left + j * cell, top - label_w - 4))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path
