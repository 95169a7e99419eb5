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
    python benchmarks/translation.py spread WORK [--recipes R1,R2] [--seeds 0,1,2]
        [--builds 1:5000,2:10000] [--minutes M] [overrides ...]
        # every recipe x data build (data seed: the digits and patches drawn; images per domain)
        # x seed; mean / min / max accuracy, minutes and steps per recipe as a Markdown table on
        # stderr and JSON (WORK/spread.json); finished runs are read back, so it can be resumed

Needs ../shared/datasets (MNIST, CIFAR-10 JPEGs); never writes there (copies into a cache).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
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
from recipes_cpu import _cpu  # noqa: E402  (the CPU's name, as the other benchmarks give it)

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


def _draw(data_seed: int, n_train: int) -> tuple[np.ndarray, ...]:
    """MNIST indices of A, B's digits, test A and test B. Data seed 0 is the benchmark's original
    build (fixed slices; up to 30,000 a side); any other seed draws disjoint sets at random."""
    if data_seed == 0:
        a, b = np.arange(n_train), np.arange(30_000, 30_000 + n_train)
        return a, b, np.arange(N_TEST), np.arange(5_000, 5_000 + N_TEST)
    rng = np.random.default_rng([data_seed, 1])
    train, test = rng.permutation(60_000), rng.permutation(10_000)
    return train[:n_train], train[n_train : 2 * n_train], test[:N_TEST], test[N_TEST : 2 * N_TEST]


def build(root: Path, shared: Path = SHARED, *, data_seed: int = 0, n_train: int = N_TRAIN) -> None:
    """The unpaired domains, the paired version (A|B side by side) and test B's labels.

    ``data_seed`` draws the digits and the CIFAR-10 patches (0: the benchmark's original build),
    ``n_train`` the images per training domain."""
    if not 0 < n_train <= 30_000:
        sys.exit(f"translation benchmark: n_train={n_train} must be in 1..30000")
    rng = np.random.default_rng(0 if data_seed == 0 else [data_seed, 2])
    cifar = cifar_folder(shared)
    xtr, _ = load_mnist(str(shared / "mnist"), True)
    xte, yte = load_mnist(str(shared / "mnist"), False)
    ia, ib, ita, itb = _draw(data_seed, n_train)
    a = padded_rgb(xtr[ia])
    b_digits = padded_rgb(xtr[ib])  # disjoint from A's digits
    b = mnist_m(b_digits, _cifar_files(cifar, "train"), rng)
    test_digits = padded_rgb(xte[ita])
    test_b = mnist_m(padded_rgb(xte[itb]), _cifar_files(cifar, "test"), rng)
    _save(a, root / "trainA")
    _save(b, root / "trainB")
    _save(test_digits, root / "testA")
    names = _save(test_b, root / "testB")
    labels = {n: int(y) for n, y in zip(names, yte[itb], strict=True)}
    (root / "testB_labels.json").write_text(json.dumps(labels))
    # Paired: each B digit beside its own clean digit (A on the left), for pix2pix (BtoA).
    _save(np.concatenate([b_digits, b], axis=2), root / "paired" / "train")
    clean = padded_rgb(xte[itb])
    _save(np.concatenate([clean, test_b], axis=2), root / "paired" / "test")
    info = {"built": str(root), "data_seed": data_seed, "trainA": len(a), "trainB": len(b)}
    print(json.dumps({**info, "testB": N_TEST}))


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


def _last_step(run: Path) -> int:
    rows = (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
    return max((int(r.get("step", 0)) for r in rows), default=0)


def run(root: Path, recipe: str, out: Path, overrides: list[str], log: Path | None = None) -> dict:
    """Train ``recipe`` on ``root`` into ``out``, translate test B to A and score it.
    ``log``: a file for the two commands' output (default: this process's)."""
    data_root = root / "paired" if recipe.startswith("pix2pix") else root
    with open(log, "a") if log else contextlib.nullcontext() as sink:
        t0 = time.perf_counter()
        subprocess.run(
            ["gankit", "train", recipe, "--out", str(out), f"data.root={data_root}", *overrides],
            check=True, stdout=sink, stderr=sink,
        )  # fmt: skip
        train_s = time.perf_counter() - t0
        translated = out / "translated-testB"
        subprocess.run(
            ["gankit", "translate", str(out), str(root / "testB"), "--direction", "BtoA"]
            + ["--out", str(translated)],
            check=True, stdout=sink, stderr=sink,
        )  # fmt: skip
    return {
        "recipe": recipe,
        "overrides": overrides,
        "train_minutes": round(train_s / 60, 2),
        "steps": _last_step(out),
        "torch_threads": torch.get_num_threads(),
        **score(root, translated),
    }


def parse_builds(text: str) -> list[tuple[int, int]]:
    """``"1:5000,2:10000"`` -> ``[(1, 5000), (2, 10000)]``: data seed and images per domain."""
    try:
        builds = [tuple(int(v) for v in part.split(":")) for part in text.split(",")]
    except ValueError:
        builds = []
    if not builds or any(len(b) != 2 for b in builds):
        sys.exit(f"translation spread: --builds {text!r} must look like 1:5000,2:10000")
    return builds  # type: ignore[return-value]


def _spread_run(work: Path, root: Path, recipe: str, seed: int, extra: list[str]) -> dict:
    """One recipe x data build x seed, trained and scored once: a finished one is read back."""
    name = f"{recipe}-{root.name}-s{seed}"
    done = work / "results" / f"{name}.json"
    if done.is_file():
        return json.loads(done.read_text())
    out = work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)  # a run cut off halfway starts again
    log = work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    row = {"data": root.name, "seed": seed, **run(root, recipe, out, [f"seed={seed}", *extra], log)}
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(row))
    return row


def summarise(rows: list[dict]) -> dict:
    """Per recipe: runs, mean / min / max judged accuracy, training minutes and steps."""
    out: dict = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        acc = [r["accuracy"] for r in mine]
        minutes = [r["train_minutes"] for r in mine]
        out[recipe] = {
            "runs": len(mine),
            "accuracy_mean": round(float(np.mean(acc)), 4),
            "accuracy_min": round(min(acc), 4),
            "accuracy_max": round(max(acc), 4),
            "minutes_mean": round(float(np.mean(minutes)), 1),
            "minutes_max": round(max(minutes), 1),
            "steps_mean": round(float(np.mean([r["steps"] for r in mine]))),
        }
    return out


def table(summary: dict) -> str:
    lines = ["| recipe | runs | mean | min | max | minutes (mean, max) | steps (mean) |"]
    lines.append("|---|---|---|---|---|---|---|")
    for recipe, s in summary.items():
        pct = [f"{100 * s[k]:.1f} %" for k in ("accuracy_mean", "accuracy_min", "accuracy_max")]
        cells = [f"`{recipe}`", str(s["runs"]), *pct]
        cells += [f"{s['minutes_mean']}, {s['minutes_max']}", f"{s['steps_mean']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread(
    work: Path,
    recipes: list[str],
    seeds: list[int],
    builds: list[tuple[int, int]],
    overrides: list[str],
    minutes: float | None = None,
    shared: Path = SHARED,
) -> dict:
    """Every recipe on every data build with every seed; builds made in ``work`` once, finished
    runs read back (an interrupted spread goes on). Writes ``work/spread.json``."""
    extra = [f"train.minutes={minutes}"] if minutes else []
    extra += ["train.progress=false", *overrides]
    rows = []
    for data_seed, n_train in builds:
        root = work / f"data-s{data_seed}-n{n_train}"
        if not (root / "testB_labels.json").is_file():
            shutil.rmtree(root, ignore_errors=True)
            build(root, shared, data_seed=data_seed, n_train=n_train)
        for recipe in recipes:
            rows += [_spread_run(work, root, recipe, seed, extra) for seed in seeds]
    result = {
        "cpu": _cpu(),
        "builds": [f"seed {s}, {n:,} per domain" for s, n in builds],
        "seeds": seeds,
        "overrides": extra,
        "summary": summarise(rows),
        "runs": rows,
    }
    (work / "spread.json").write_text(json.dumps(result, indent=1))
    print(table(result["summary"]), file=sys.stderr)
    return result


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
    sp = sub.add_parser("spread")
    sp.add_argument("work", type=Path, help="data builds, runs, logs and spread.json go here")
    sp.add_argument("--recipes", default="cyclegan-mnistm,cut-mnistm,pix2pix-mnistm")
    sp.add_argument("--seeds", default="0,1,2")
    sp.add_argument("--builds", default="1:5000,2:10000", help="data seed:images per domain")
    sp.add_argument("--minutes", type=float, default=None, help="train.minutes of every run")
    sp.add_argument("overrides", nargs="*")
    r = sub.add_parser("run")
    r.add_argument("root", type=Path)
    r.add_argument("recipe")
    r.add_argument("overrides", nargs="*")
    r.add_argument("--out", type=Path, default=None)
    args, extra = p.parse_known_args()
    if extra and args.cmd not in ("run", "spread"):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd == "build":
        build(args.root)
    elif args.cmd == "baselines":
        print(json.dumps(baselines(args.root)))
    elif args.cmd == "picture":
        picture(args.root, args.runs, args.out)
    elif args.cmd == "spread":
        seeds = [int(v) for v in args.seeds.split(",")]
        recipes = args.recipes.split(",")
        builds = parse_builds(args.builds)
        res = spread(args.work, recipes, seeds, builds, args.overrides + extra, args.minutes)
        print(json.dumps(res["summary"], indent=1))
    elif args.cmd == "score":
        print(json.dumps(score(args.root, args.folder)))
    else:
        out = args.out or Path("runs") / f"bench-{args.recipe}"
        print(json.dumps(run(args.root, args.recipe, out, args.overrides + extra)))


if __name__ == "__main__":
    main()
