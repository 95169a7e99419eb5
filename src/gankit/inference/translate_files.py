"""``gankit translate``: image files in, translated files of the same names and sizes out.

Inputs are files or folders (searched recursively; the folder's layout is kept under ``--out``).
Images of the same size are translated in batches; each keeps its height and width exactly (the
model pads to what its network needs and crops back, see
:class:`gankit.tasks.image_to_image.TranslatorModel`). Outputs keep the input's name and format.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gankit.data.images import IMAGE_EXTENSIONS, load_image, scan_images, to_array
from gankit.data.stream import to_unit
from gankit.errors import ConfigError, DataError
from gankit.inference.roles import Translator


def plan(inputs: list[str | Path], out: Path) -> list[tuple[Path, Path]]:
    """(source, destination) for every image under ``inputs``; refuses clashes and overwrites."""
    pairs: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            pairs += [
                (f, out / f.relative_to(item))
                for f in scan_images(item, label="input folder", hint="check the path")
            ]
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(f"{item} is not an image file ({', '.join(IMAGE_EXTENSIONS)})")
            pairs.append((item, out / item.name))
        else:
            raise DataError(f"input {item} does not exist")
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in seen:
            raise ConfigError(
                f"{seen[dst]} and {src} would both be written to {dst}: translate them into "
                "separate --out folders"
            )
        if dst.resolve() == src.resolve():
            raise ConfigError(f"--out {out} would overwrite the input {src}: choose another folder")
        seen[dst] = src
    return pairs


def _save(array: np.ndarray, path: Path) -> None:
    img = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower())
    img.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    os.replace(tmp, path)  # never a half-written image under the final name


def translate_files(
    model: Translator,
    inputs: list[str | Path],
    out: str | Path,
    direction: str = "AtoB",
    channels: int = 3,
    batch_size: int = 8,
    progress: bool = True,
) -> list[Path]:
    """Translate every image under ``inputs`` into ``out``; returns the files written."""
    from gankit.evaluation.samples import to_uint8

    if batch_size <= 0:
        raise ConfigError(f"--batch-size {batch_size} must be positive")
    model.generator(direction)  # type: ignore[attr-defined]  # a wrong direction fails first
    out = Path(out)
    jobs = plan(inputs, out)
    if not jobs:
        raise DataError("no input images found")
    by_size: dict[tuple[int, int], list[tuple[np.ndarray, Path]]] = defaultdict(list)
    written: list[Path] = []
    bar = tqdm(total=len(jobs), desc="translating", unit="img", disable=not progress)

    def flush(items: list[tuple[np.ndarray, Path]]) -> None:
        x = to_unit(torch.from_numpy(np.stack([a for a, _ in items])))
        y8 = to_uint8(model.translate(x, direction)).numpy()
        for arr, (_, dst) in zip(y8, items, strict=True):
            _save(arr, dst)
            written.append(dst)
        bar.update(len(items))

    try:
        for src, dst in jobs:
            a = to_array(load_image(src, channels))
            group = by_size[a.shape[1:]]
            group.append((a, dst))
            if len(group) == batch_size:
                flush(group)
                group.clear()
        for group in by_size.values():
            if group:
                flush(group)
    finally:
        bar.close()
    return written
