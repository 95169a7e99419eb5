"""Content preservation of image-to-image translation: MNIST ↔ MNIST-M, judged by a digit CNN.

Domain A is MNIST digits padded to 32×32 RGB; domain B is MNIST-M-style digits (Ganin & Lempitsky
2015: |patch − digit| per channel, the patch a 32×32 crop of a CIFAR-10 image), drawn from MNIST
training digits disjoint from A's. Test B is built from the MNIST test split and CIFAR-10 test
images, with each image's digit label kept. A model translates test B to A; the MNIST judge of
``digit_judge.py`` (trained on real MNIST) reads the translated digit, and the score is the share
it reads as the source digit. Orientation: judging test B untranslated gives ~27 %, the clean
source digits ~97 %.

    python benchmarks/translation.py build DIR          # trainA trainB testA testB paired/ labels
    python benchmarks/translation.py baselines DIR      # untranslated and clean test B, as JSON
    python benchmarks/translation.py score DIR OUT      # accuracy of translated images in OUT
    python benchmarks/translation.py picture DIR OUT.png RUN...   # test B | translated | reconstructed
    python benchmarks/translation.py run DIR RECIPE [--out RUN] [overrides ...]
        # trains the recipe with data.root=DIR (pix2pix recipes: DIR/paired), translates test B
        # with `gankit translate ... --direction BtoA`, scores, prints JSON (time, accuracy)

Needs ../shared/datasets (MNIST, CIFAR-10 JPEGs); never writes there (copies into a cache).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from digit_judge import CACHE, get_judge, load_mnist  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
N_TRAIN, N_TEST = 10_000, 1_000


def cifar_folder(shared: Path = SHARED) -> Path:
    """CIFAR-10 JPEGs unpacked into the cache (once)."""
    out = CACHE / "cifar10-jpg"
    if not (out / "test").is_dir():
        archive = shared / "cifar10-jpg" / "cifar10-jpg.tar.gz"
        if not archive.is_file():
            sys.exit(f"translation benchmark: {archive} is missing (needs ../shared/datasets)")
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
    return out


def _cifar_files(root: Path, split: str) -> list[Path]:
    return sorted(root.glob(f"**/{split}/*/*.jpg"))


def padded_rgb(digits: torch.Tensor) -> np.ndarray:
    """MNIST (N, 1, 28, 28) floats in [0, 1] → (N, 32, 32, 3) uint8, padded 2 px each side."""
    x = (digits * 255).round().to(torch.uint8).numpy()[:, 0]
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[..., None], 3, axis=3)


def mnist_m(digits: np.ndarray, patches: list[Path], rng: np.random.Generator) -> np.ndarray:
    """|patch − digit| per channel, a random 32×32 crop of a random natural image per digit."""
    out = np.empty_like(digits)
    for i, d in enumerate(digits):
        img = np.asarray(Image.open(patches[rng.integers(len(patches))]).convert("RGB"))
        h, w = img.shape[:2]
        y, x = rng.integers(0, h - 31), rng.integers(0, w - 31)
        patch = img[y : y + 32, x : x + 32].astype(np.int16)
        out[i] = np.abs(patch - d.astype(np.int16)).astype(np.uint8)
    return out


def _save(images: np.ndarray, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, im in enumerate(images):
        name = f"{i:05d}.png"
        Image.fromarray(im).save(folder / name)
        names.append(name)
    return names


def build(root: Path, shared: Path = SHARED) -> None:
    """The unpaired domains, the paired version (A|B side by side) and test B's labels."""
    rng = np.random.default_rng(0)
    cifar = cifar_folder(shared)
    xtr, ytr = load_mnist(str(shared / "mnist"), True)
    xte, yte = load_mnist(str(shared / "mnist"), False)
    a = padded_rgb(xtr[:N_TRAIN])
    b_digits = padded_rgb(xtr[30_000 : 30_000 + N_TRAIN])  # disjoint from A's digits
    b = mnist_m(b_digits, _cifar_files(cifar, "train"), rng)
    test_digits = padded_rgb(xte[:N_TEST])
    test_b = mnist_m(padded_rgb(xte[5_000 : 5_000 + N_TEST]), _cifar_files(cifar, "test"), rng)
    _save(a, root / "trainA")
    _save(b, root / "trainB")
    _save(test_digits, root / "testA")
    names = _save(test_b, root / "testB")
    labels = {n: int(y) for n, y in zip(names, yte[5_000 : 5_000 + N_TEST], strict=True)}
    (root / "testB_labels.json").write_text(json.dumps(labels))
    # Paired: each B digit beside its own clean digit (A on the left), for pix2pix (BtoA).
    _save(np.concatenate([b_digits, b], axis=2), root / "paired" / "train")
    clean = padded_rgb(xte[5_000 : 5_000 + N_TEST])
    _save(np.concatenate([clean, test_b], axis=2), root / "paired" / "test")
    print(json.dumps({"built": str(root), "trainA": len(a), "trainB": len(b), "testB": N_TEST}))


def _grey28(folder: Path, names: list[str]) -> torch.Tensor:
    ims = [np.asarray(Image.open(folder / n).convert("L"), dtype=np.float32) for n in names]
    x = torch.from_numpy(np.stack(ims))[:, None] / 255
    return x[..., 2:30, 2:30]  # A's padding back off: the judge reads 28×28 MNIST


def score(root: Path, folder: Path, shared: Path = SHARED) -> dict:
    """Share of images in ``folder`` (named as test B) that the judge reads as their label."""
    labels = json.loads((root / "testB_labels.json").read_text())
    names = sorted(labels)
    judge, judge_acc = get_judge(str(shared / "mnist"))
    x = _grey28(folder, names)
    with torch.no_grad():
        pred = judge(x).argmax(1)
    y = torch.tensor([labels[n] for n in names])
    return {"accuracy": float((pred == y).float().mean()), "n": len(names), "judge_acc": judge_acc}


def baselines(root: Path, shared: Path = SHARED) -> dict:
    clean = CACHE / "translation-clean"
    clean.mkdir(parents=True, exist_ok=True)
    labels = json.loads((root / "testB_labels.json").read_text())
    for n in labels:  # the left half of the paired test image is the clean source digit
        Image.open(root / "paired" / "test" / n).crop((0, 0, 32, 32)).save(clean / n)
    return {
        "untranslated": score(root, root / "testB", shared)["accuracy"],
        "clean_source": score(root, clean, shared)["accuracy"],
    }


def run(root: Path, recipe: str, out: Path, overrides: list[str]) -> dict:
    data_root = root / "paired" if recipe.startswith("pix2pix") else root
    t0 = time.perf_counter()
    subprocess.run(
        ["gankit", "train", recipe, "--out", str(out), f"data.root={data_root}", *overrides],
        check=True,
    )
    train_s = time.perf_counter() - t0
    translated = out / "translated-testB"
    subprocess.run(
        ["gankit", "translate", str(out), str(root / "testB"), "--direction", "BtoA"]
        + ["--out", str(translated)],
        check=True,
    )
    steps = len((out / "metrics.jsonl").read_text().splitlines())
    return {
        "recipe": recipe,
        "overrides": overrides,
        "train_minutes": round(train_s / 60, 2),
        "metrics_rows": steps,
        "torch_threads": torch.get_num_threads(),
        **score(root, translated),
    }


def picture(root: Path, runs: list[Path], out: Path, n: int = 12) -> None:
    """Rows per run under one row of real test B: translated to A, and (two-sided runs) back."""
    import gankit

    names = sorted(json.loads((root / "testB_labels.json").read_text()))[:n]
    real = torch.from_numpy(
        np.stack([np.asarray(Image.open(root / "testB" / k).convert("RGB")) for k in names])
    ).permute(0, 3, 1, 2)
    rows = [real]
    for run in runs:
        model = gankit.load(run)
        fake = model.translate(real, "BtoA")
        rows.append(fake)
        if "AtoB" in model.inner.directions:
            rows.append(model.translate(fake, "AtoB"))
    grid = torch.cat(rows).view(len(rows), n, 3, 32, 32).permute(0, 3, 1, 4, 2)
    img = grid.reshape(len(rows) * 32, n * 32, 3).numpy()
    Image.fromarray(img).resize((n * 64, len(rows) * 64), Image.Resampling.NEAREST).save(out)
    print(json.dumps({"wrote": str(out), "rows": len(rows)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("build", "baselines"):
        sub.add_parser(name).add_argument("root", type=Path)
    s = sub.add_parser("score")
    s.add_argument("root", type=Path)
    s.add_argument("folder", type=Path)
    pic = sub.add_parser("picture")
    pic.add_argument("root", type=Path)
    pic.add_argument("out", type=Path)
    pic.add_argument("runs", type=Path, nargs="+")
    r = sub.add_parser("run")
    r.add_argument("root", type=Path)
    r.add_argument("recipe")
    r.add_argument("overrides", nargs="*")
    r.add_argument("--out", type=Path, default=None)
    args, extra = p.parse_known_args()
    if extra and args.cmd != "run":
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd == "build":
        build(args.root)
    elif args.cmd == "baselines":
        print(json.dumps(baselines(args.root)))
    elif args.cmd == "picture":
        picture(args.root, args.runs, args.out)
    elif args.cmd == "score":
        print(json.dumps(score(args.root, args.folder)))
    else:
        out = args.out or Path("runs") / f"bench-{args.recipe}"
        print(json.dumps(run(args.root, args.recipe, out, args.overrides + extra)))


if __name__ == "__main__":
    main()
