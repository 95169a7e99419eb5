"""Per-class FID and KID of a class-conditional GAN run (``gankit evaluate --per-class``).

Each class's samples are scored against the reference source's training images of that class
only, so a class the generator draws badly shows even when the overall score looks fine.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from gankit.config import DataConfig
from gankit.data.sources import ImageData, load_source
from gankit.errors import ConfigError, DataError
from gankit.evaluation.metrics import compute_fid, compute_kid
from gankit.evaluation.metrics.features import FeatureExtractor
from gankit.evaluation.samples import to_uint8


def check_per_class(run: str | Path, model: object, n: int) -> list[str]:
    """The class names ``--per-class n`` scores, or a one-line ConfigError: the run must be
    class-conditional and ``n`` at least 2. ``gankit evaluate`` calls it before the main
    evaluation, which can take half an hour on a CPU."""
    from gankit.inference.roles import label_classes

    classes = list(label_classes(model) or [])
    if not classes:
        raise ConfigError(
            f"--per-class needs a class-conditional run (gan.conditional): {run} is unconditional"
        )
    if n < 2:
        raise ConfigError(f"--n {n}: per-class scores need at least 2 samples per class")
    return classes


def per_class_scores(
    run: str | Path,
    ref: str,
    extractor: FeatureExtractor,
    *,
    n: int = 500,
    ema: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    root: str | None = None,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """FID and KID of every class of a conditional GAN run (``gankit evaluate --per-class``).

    For class k: ``n`` samples drawn with label k against all of the reference's training images
    labelled k (``ref`` must have the run's classes). A class whose FID stands out is one the
    generator draws badly even when the overall score looks fine.
    """
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative
    from gankit.inference.sampling import generate, resolve_ema

    loaded = load_role(run, Generative, device=device, checkpoint=checkpoint)
    model, like = loaded.model, loaded.cfg.data
    classes = check_per_class(run, model, n)
    data = _labelled_reference(ref, like, classes, root, progress)
    ema = resolve_ema(ema, model, Path(run))
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(tqdm(classes, desc="per class", disable=not progress, leave=False)):
        real = data.images[data.labels == k]
        if len(real) < 2:
            raise DataError(f"--per-class: {ref} has {len(real)} images of class {name}")
        labels = torch.full((n,), k, dtype=torch.long)
        fake = to_uint8(generate(model, n, seed=seed + k, ema=ema, labels=labels))
        f_real, f_fake = extractor(real), extractor(fake)
        fid = compute_fid(f_real, f_fake, method="eigh")["fid"]
        size = min(len(f_real), len(f_fake), 1000)
        kid = compute_kid(f_real, f_fake, subset_size=size)["kid"]
        out[name] = {"fid": fid, "kid": kid, "samples": n, "reference": len(real)}
    return out


def _labelled_reference(
    ref: str, like: DataConfig, classes: list[str], root: str | None, progress: bool
) -> ImageData:
    """The training split of ``ref`` with labels, at ``like``'s geometry, checked for ``classes``."""
    dcfg = DataConfig(
        source=ref,
        root=root or like.root,
        split="train",
        image_size=like.image_size,
        channels=like.channels,
        fit=like.fit,
        in_memory="yes",
    )
    data = load_source(dcfg, progress=progress, with_labels=True)
    if data.labels is None or data.images is None:
        raise DataError(f"--per-class: {ref} has no labels (use a labelled source)")
    if data.classes and list(data.classes) != classes:
        raise DataError(
            f"--per-class: {ref} has classes {', '.join(data.classes)}, the run "
            f"{', '.join(classes)}"
        )
    return data


def format_per_class(scores: dict[str, dict[str, float]]) -> str:
    """Per-class scores as aligned rows, the worst FID marked."""
    worst = max(scores, key=lambda c: scores[c]["fid"])
    width = max(len("class"), *(len(c) for c in scores))
    lines = [f"  {'class':<{width}}  {'fid':>9}  {'kid':>9}  reference"]
    for name, row in scores.items():
        mark = "  <- worst" if name == worst and len(scores) > 1 else ""
        lines.append(
            f"  {name:<{width}}  {row['fid']:>9.4g}  {row['kid']:>9.4g}  {row['reference']}{mark}"
        )
    return "\n".join(lines)
