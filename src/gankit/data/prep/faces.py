"""Crop faces out of a folder of pictures with an OpenCV cascade classifier.

The anime-96 recipe trains on 96×96 face crops, which is how the anime-face GAN datasets were made:
``lbpcascade_animeface`` (nagadomi) on drawings, or OpenCV's frontal Haar cascade on photos. Each
detection becomes a square crop, enlarged by a margin so hair and chin are kept, clamped to the
picture and resized.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from gankit.data.images import load_image, scan_images
from gankit.errors import DataError

REPORT_NAME = "faces_report.json"
BUILTIN_CASCADES = ("anime", "frontal")


@dataclass
class Crop:
    """One saved crop: where it came from (``box`` = left, top, right, bottom in source pixels)."""

    source: str
    file: str
    box: tuple[int, int, int, int]


@dataclass
class FaceReport:
    """How many images gave no face, one face, or several; what could not be read."""

    images: int = 0
    zero: int = 0
    one: int = 0
    many: int = 0
    unreadable: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    crops: list[Crop] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the terminal."""
        line = (
            f"{self.images} images: {self.zero} with no face, {self.one} with one, "
            f"{self.many} with more; {len(self.unreadable)} unreadable; {len(self.crops)} crops"
        )
        if self.images and not self.crops:
            line += (
                "\nno face found: photos need --cascade frontal, drawings --cascade anime; "
                "small faces need a lower --min-size"
            )
        return line


@contextlib.contextmanager
def _cascade_path(cascade: str):
    if cascade == "frontal":
        yield Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    elif cascade == "anime":
        ref = resources.files("gankit.data") / "cascades" / "lbpcascade_animeface.xml"
        with resources.as_file(ref) as path:  # a real file even when installed as a zip
            yield path
    else:
        yield Path(cascade)


def load_cascade(cascade: str) -> cv2.CascadeClassifier:
    """``anime`` (shipped lbpcascade_animeface), ``frontal`` (OpenCV Haar) or a path to an XML."""
    with _cascade_path(cascade) as path:
        if not path.is_file():
            raise DataError(
                f"--cascade {cascade}: no such file; use anime, frontal or a cascade .xml path"
            )
        try:
            classifier = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError):  # malformed XML: OpenCV raises instead of returning empty
            classifier = None
    if classifier is None or classifier.empty():
        raise DataError(f"--cascade {cascade}: {path} is not an OpenCV cascade classifier XML")
    return classifier


def detect_faces(
    classifier: cv2.CascadeClassifier,
    rgb: np.ndarray,
    scale_factor: float = 1.1,
    min_neighbors: int = 5,
    min_size: int = 48,
) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in an RGB uint8 array, largest first.

    Histogram equalisation first: both cascades were trained on contrast-normalised windows and
    miss faces in dim or washed-out pictures without it.
    """
    grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    found = classifier.detectMultiScale(
        grey, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size)
    )
    boxes = [tuple(int(v) for v in b) for b in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])


def square_box(
    face: tuple[int, int, int, int], margin: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """A square (left, top, right, bottom) around ``face`` grown by ``margin`` per side.

    Near an edge the square is shifted back inside the picture rather than cut, so the crop stays
    square without padding; only when it is larger than the picture is it shrunk.
    """
    x, y, w, h = face
    side = min(round(max(w, h) * (1 + 2 * margin)), width, height)
    cx, cy = x + w / 2, y + h / 2
    left = int(min(max(round(cx - side / 2), 0), width - side))
    top = int(min(max(round(cy - side / 2), 0), height - side))
    return left, top, left + side, top + side


def _source_images(src: Path, dst: Path) -> list[Path]:
    """The images under ``src`` to crop, less any under ``dst``."""
    dst_resolved = dst.resolve()
    # Skip our own output when DST lies inside SRC, so reruns do not crop crops.
    return [
        f
        for f in scan_images(src, label="faces: SRC", hint="give the folder of pictures to crop")
        if dst_resolved not in f.resolve().parents
    ]


def _save_crops(
    img: Image.Image,
    faces: list[tuple[int, int, int, int]],
    source: Path,
    out_dir: Path,
    size: int,
    margin: float,
    used: set[Path],
) -> list[tuple[Path, tuple[int, int, int, int]]]:
    """Save a ``size``×``size`` crop of ``img`` per face as ``out_dir/<stem>_<k>.png``.

    ``used`` holds the paths written so far (this one's are added); returns (path, box) per crop.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # a.jpg and a.png in one folder must not write the same a_0.png
    stem = (
        source.stem
        if out_dir / f"{source.stem}_0.png" not in used
        else f"{source.stem}_{source.suffix[1:]}"
    )
    saved = []
    for k, face in enumerate(faces):
        box = square_box(face, margin, img.width, img.height)
        crop = img.crop(box).resize((size, size), Image.Resampling.LANCZOS)
        out = out_dir / f"{stem}_{k}.png"
        used.add(out)
        crop.save(out)
        saved.append((out, box))
    return saved


def crop_faces(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    cascade: str = "anime",
    size: int = 96,
    margin: float = 0.2,
    min_size: int = 48,
    scale_factor: float = 1.1,
    min_neighbors: int = 5,
    progress: bool = True,
) -> FaceReport:
    """Save a ``size``×``size`` PNG for every face found in the images under ``src``.

    Crops go to ``dst`` keeping sub-folders, named ``<image stem>_<k>.png``; the report is also
    written to ``dst/faces_report.json``.
    """
    if size < 1 or min_size < 1 or margin < 0 or scale_factor <= 1 or min_neighbors < 0:
        raise DataError(
            "faces: need --size, --min-size >= 1, --margin >= 0, --scale-factor > 1, "
            "--min-neighbors >= 0"
        )
    src, dst = Path(src), Path(dst)
    files = _source_images(src, dst)
    classifier = load_cascade(cascade)
    dst.mkdir(parents=True, exist_ok=True)
    report = FaceReport()
    used: set[Path] = set()
    for f in tqdm(files, desc="faces", unit="img", disable=not progress):
        rel = f.relative_to(src)
        try:
            img = load_image(f, channels=3)
        except DataError:
            report.unreadable.append(str(rel))
            continue
        report.images += 1
        faces = detect_faces(classifier, np.asarray(img), scale_factor, min_neighbors, min_size)
        if not faces:
            report.zero += 1
            report.no_face.append(str(rel))
            continue
        if len(faces) == 1:
            report.one += 1
        else:
            report.many += 1
        for out, box in _save_crops(img, faces, f, dst / rel.parent, size, margin, used):
            report.crops.append(Crop(str(rel), str(out.relative_to(dst)), box))
    (dst / REPORT_NAME).write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")
    return report
