"""Small data: does gankit's small-data recipe beat plain DCGAN on 300 CIFAR-10 horses?

Data: the 5,000 CIFAR-10 ``train/horse`` JPEGs. A fixed permutation
(``numpy.random.default_rng(0)``) picks 300 of them, copied into ``OUT/data/horse-300`` (a flat
folder, the training set of every row); the other 4,700 are held out. Each row of ROWS is trained
with the real command line, as a user would (``gankit train RECIPE data.source=folder:...
data.image_size=S seed=SEED train.minutes=M ...`` in a subprocess, its output in ``OUT/logs``),
and then scored on ``--n`` samples of its EMA generator when it has one (as ``gankit evaluate``
samples):

- FID against all 5,000 horses at the run's size, read through gankit's own ``folder:`` pipeline
  at that size (the geometry the training images had), Inception features cached in OUT/cache;
  the resize to the Inception's 299 is ``--resizer`` (default gankit's ``legacy-tensorflow``; the
  figures in docs/guides/small-data.md were measured with ``legacy-pytorch``, gankit 0.2's);
- memorisation (``compute_memorisation``) with the 300 training images as the training side and
  1,000 of the held-out horses as the novel side: the default rule's ``fraction_flagged``, and
  ``share_closer_than_median``, the share of samples nearer to a training image than the median
  held-out image is; the 16 closest (sample | nearest training image) pairs go to
  ``OUT/pairs/NAME-S-sSEED.png``: look at them;
- steps, images/s and D's outputs on reals and fakes (and ADA's p and r_t) from metrics.jsonl,
  drawn for plain vs small-data in ``OUT/d_trace-S.png``.

Prints one JSON object (also written to OUT/small_data.json) and a Markdown summary on stderr.
A run directory that already holds a checkpoint is not trained again (an interrupted benchmark
resumes where it stopped); ``--retrain`` trains it afresh.

    python benchmarks/small_data.py [--out runs/small-data-bench] [--sizes 32,64] [--minutes 5]
        [--seeds 0,1] [--n 1000] [--rows plain,small-data,ada,...] [--retrain] [--resizer NAME]

``--seeds`` applies to the headline rows (plain and small-data); the other rows use the first seed.
Run it alone: two torch processes on two cores slow each other many times over. Needs
../shared/datasets/cifar10-jpg (unpacked once into the benchmark cache; never written to).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
from digit_judge import CACHE  # noqa: E402
from translation import SHARED, cifar_folder  # noqa: E402

from gankit.config import DataConfig  # noqa: E402
from gankit.data.images import scan_images  # noqa: E402
from gankit.data.sources import load_source  # noqa: E402
from gankit.drawing import font  # noqa: E402
from gankit.engine.checkpoint import list_checkpoints  # noqa: E402
from gankit.engine.health import read_rows  # noqa: E402
from gankit.evaluation.extractors import make_extractor  # noqa: E402
from gankit.evaluation.metrics import compute_fid, compute_memorisation  # noqa: E402
from gankit.evaluation.metrics.reference_cache import reference_features  # noqa: E402
from gankit.evaluation.metrics.resize import DEFAULT_RESIZER, RESIZERS  # noqa: E402
from gankit.evaluation.samples import generate_samples  # noqa: E402
from gankit.gan.options import GanOptions
from gankit.inference.sampling import save_grid  # noqa: E402

NO_AUG = "gan.augment=[]"
ROWS: dict[str, tuple[str, list[str]]] = {
    # the two headline rows: the recipes as a user runs them
    "plain": ("dcgan", []),
    "small-data": ("small-data", []),
    # (small-data = base + DiffAugment color,translation,cutout: that lever's row)
    # each lever alone on the small-data recipe's base (its nets, batch and EMA, no augmentation),
    # so that a lever is measured where training gets far enough in the budget to show it
    "base": ("small-data", [NO_AUG]),
    "ada": ("small-data", [NO_AUG, "gan.ada=adaptive"]),
    # the paper's ramp (500k images for p to go 0 -> 1) is longer than a CPU budget's whole run:
    # 100k lets p reach the over-fitting it measures within a few thousand steps of batch 32
    "ada-fast": ("small-data", [NO_AUG, "gan.ada=adaptive", "gan.ada_kimg=100"]),
    # γ = 0.05: R3GAN's CIFAR-10 setting (Huang et al. 2024); stylegan2-ada uses 0.01 there
    "r1": ("small-data", [NO_AUG, "nets.D.norm=none", "gan.r1=0.05"]),
    "rpgan-r1-r2": (
        "small-data",
        [NO_AUG, "gan.loss=rpgan", "nets.D.norm=none", "gan.r1=0.05", "gan.r2=0.05"],
    ),
    "fastgan": (
        "small-data",
        [
            NO_AUG,
            "nets.G.arch=fastgan",
            "nets.D.arch=fastgan",
            "nets.G.ngf=16",
            "nets.D.ndf=16",
            "nets.G.nz=256",
            "gan.loss=hinge",
        ],
    ),
    # the recipe's augmentation on the plain recipe's wider nets and larger batch
    "small-data-wide": (
        "small-data",
        ["nets.G.ngf=64", "nets.D.ndf=64", "train.batch_size=64"],
    ),
}
"""Row name -> (recipe, overrides); every row also gets the data, size, seed and time settings."""
HEADLINE = ("plain", "small-data")
"""Rows trained on every seed of --seeds (the others on the first seed only)."""
N_TRAIN, N_HELDOUT = 300, 1000
TRACE_POINTS = 100


def say(text: str) -> None:
    print(f"[small_data] {text}", file=sys.stderr, flush=True)


# --- data ------------------------------------------------------------------------------------


def horse_folder(shared: Path = SHARED) -> Path:
    """The 5,000 CIFAR-10 training horses, unpacked (once) into the benchmark cache."""
    archive = shared / "cifar10-jpg" / "cifar10-jpg.tar.gz"
    if not (CACHE / "cifar10-jpg" / "test").is_dir() and not archive.is_file():
        sys.exit(f"small_data benchmark: {archive} is missing (needs ../shared/datasets)")
    folder = cifar_folder(shared) / "train" / "horse"
    if not folder.is_dir():
        sys.exit(f"small_data benchmark: {folder} is missing: delete {CACHE / 'cifar10-jpg'}")
    return folder


def split(horses: Path, out: Path) -> tuple[list[Path], np.ndarray, np.ndarray, Path]:
    """All horse files (sorted, as the folder source reads them), the training and held-out
    indices into them, and the training folder (300 copies, made once)."""
    files = scan_images(horses)
    order = np.random.default_rng(0).permutation(len(files))
    train_idx, heldout_idx = order[:N_TRAIN], order[N_TRAIN:]
    train_dir = out / "data" / f"horse-{N_TRAIN}"
    if len(list(train_dir.glob("*.jpg"))) != N_TRAIN:
        shutil.rmtree(train_dir, ignore_errors=True)
        train_dir.mkdir(parents=True)
        for i in train_idx:
            shutil.copyfile(files[i], train_dir / files[i].name)
    return files, train_idx, heldout_idx, train_dir


class Reference:
    """Inception features of the horses at one geometry: FID reference, training and held-out
    sides, computed once per geometry and cached on disk."""

    def __init__(self, horses, files, train_idx, heldout_idx, extractor, cache, ref_limit):
        self.horses, self.files, self.extractor, self.cache = horses, files, extractor, cache
        self.train_idx = train_idx
        self.mem_heldout_idx = heldout_idx[:N_HELDOUT]  # the permutation is already random
        all_idx = np.arange(len(files))
        if ref_limit:  # debugging only: a few images stand in for each side
            self.fid_idx = np.concatenate([train_idx, heldout_idx])[:ref_limit]
            self.train_idx = train_idx[:ref_limit]
            self.mem_heldout_idx = self.mem_heldout_idx[:ref_limit]
        else:
            self.fid_idx = all_idx
        self._done: dict[tuple, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}

    def get(self, data: DataConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(uint8 images of the whole folder, features by side) at ``data``'s geometry."""
        geometry = (data.image_size, data.channels, data.fit)
        if geometry not in self._done:
            dcfg = DataConfig(
                source=f"folder:{self.horses}",
                image_size=data.image_size,
                channels=data.channels,
                fit=data.fit,
                in_memory="yes",
                strict=True,  # indices into the file list must stay valid
                workers=0,
            )
            images = load_source(dcfg, progress=False).images
            assert images is not None and len(images) == len(self.files)
            need = np.unique(np.concatenate([self.fid_idx, self.train_idx, self.mem_heldout_idx]))
            digest = hashlib.sha256(images[need].contiguous().numpy().tobytes()).hexdigest()[:16]
            tag = "{}px-{}ch-{}".format(*geometry)
            say(f"Inception features of {len(need)} horses at {tag} (cached after the first time)")
            feats = reference_features(
                self.extractor,
                f"cifar10-train-horse:{tag}:{digest}",
                len(need),
                lambda: images[need],
                cache=self.cache,
            )
            where = {int(k): i for i, k in enumerate(need)}
            sides = {
                name: feats[[where[int(k)] for k in idx]]
                for name, idx in (
                    ("fid", self.fid_idx),
                    ("train", self.train_idx),
                    ("heldout", self.mem_heldout_idx),
                )
            }
            self._done[geometry] = (images, sides)
        return self._done[geometry]


# --- training --------------------------------------------------------------------------------


def available_recipes() -> set[str]:
    res = subprocess.run(
        [sys.executable, "-m", "gankit", "recipes"], capture_output=True, text=True, check=False
    )
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip()}


def last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else f"no output (see {log})"


def train(run: Path, log: Path, recipe: str, overrides: list[str], retrain: bool) -> str | None:
    """Train one run unless it already has a checkpoint; an error line, or None."""
    if list_checkpoints(run / "checkpoints") and not retrain:
        say(f"{run.name}: has a checkpoint, not trained again (--retrain to train it afresh)")
        return None
    shutil.rmtree(run, ignore_errors=True)  # a fresh run: gankit refuses an existing one
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "gankit", "train", recipe, *overrides, "--out", str(run)]
    say(f"{run.name}: {' '.join(['gankit', *cmd[3:]])}")
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        return last_line(log)
    if not list_checkpoints(run / "checkpoints"):
        return f"training wrote no checkpoint: {last_line(log)}"
    return None


# --- scoring ---------------------------------------------------------------------------------


def subsample(n: int, k: int = TRACE_POINTS) -> np.ndarray:
    return (
        np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else np.zeros(0, int)
    )


def d_is_probability(loss: str) -> bool | None:
    try:
        from gankit.gan.objectives import resolve_loss

        return resolve_loss(loss)[0].probability
    except (ImportError, KeyError):
        return None


def run_log(run: Path, loss: str, batch: int, minutes: float) -> dict:
    """Steps, images/s and D's trace from metrics.jsonl."""
    rows = [r for r in read_rows(run / "metrics.jsonl") if "event" not in r]
    logged = [r for r in rows if "d_real" in r and "d_fake" in r]
    steps = max((int(r["step"]) for r in rows), default=0)
    speed = [r["img_per_s"] for r in rows if "img_per_s" in r]
    img_per_s = speed[-1] if speed else (steps * batch / (minutes * 60) if minutes else None)
    keep = [logged[i] for i in subsample(len(logged))]
    trace: dict = {
        "d_output": {True: "sigmoid(logit)", False: "logit", None: "unknown"}[
            d_is_probability(loss)
        ],
        "step": [int(r["step"]) for r in keep],
        "d_real": [round(float(r["d_real"]), 4) for r in keep],
        "d_fake": [round(float(r["d_fake"]), 4) for r in keep],
    }
    for key in ("ada_p", "ada_rt"):
        if any(key in r for r in keep):
            trace[key] = [round(float(r[key]), 4) if key in r else None for r in keep]
    return {
        "steps": steps,
        "img_per_s": None if img_per_s is None else round(float(img_per_s), 1),
        "trace": trace,
    }


def save_pairs(fake: torch.Tensor, train: torch.Tensor, pairs: np.ndarray, path: Path) -> None:
    """Sample | its nearest training image, four pairs a row, closest first."""
    tiles = [t for g, k in pairs for t in (fake[int(g)], train[int(k)])]
    save_grid(torch.stack(tiles).float() / 127.5 - 1, path, nrow=8)


def score(run: Path, n: int, ref: Reference, pairs_png: Path) -> dict:
    samples = generate_samples(run, n, ema=None, seed=0)  # EMA when the run has one
    images, sides = ref.get(samples.data)
    fake = ref.extractor(samples.images)
    fid = compute_fid(sides["fid"], fake, method="eigh")["fid"]
    mem = compute_memorisation(fake, sides["train"], sides["heldout"])
    save_pairs(
        samples.images, images[torch.from_numpy(ref.train_idx)], mem.closest_pairs, pairs_png
    )
    median_heldout = float(np.median(mem.ref_distances))
    return {
        "fid": round(float(fid), 3),
        "ema": samples.ema,
        "checkpoint_step": samples.step,
        "memorisation": {
            "fraction_flagged": mem.fraction_flagged,
            "share_closer_than_median": float(np.mean(mem.gen_distances < median_heldout)),
            "copy_threshold": round(mem.threshold, 4),
            "gen_nn_median": round(float(np.median(mem.gen_distances)), 4),
            "heldout_nn_median": round(median_heldout, 4),
            "pairs_png": str(pairs_png),
        },
    }


def cached_score(run: Path, n: int, ref: Reference, pairs_png: Path) -> dict:
    """:func:`score`, kept in RUN/small_data_score.json for the newest checkpoint and ``n`` (a
    rerun of the benchmark that adds rows does not score the finished ones again)."""
    newest = str(list_checkpoints(run / "checkpoints")[-1])
    key = {"checkpoint": newest, "n": n, "references": len(ref.fid_idx)}
    key["resizer"] = ref.extractor.resizer  # a score made under another resize is not reused
    path = run / "small_data_score.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key and Path(saved["score"]["memorisation"]["pairs_png"]).is_file():
            say(f"{run.name}: scored before ({path.name})")
            return saved["score"]
    say(f"{run.name}: scoring {n} samples")
    result = score(run, n, ref, pairs_png)
    path.write_text(json.dumps({"key": key, "score": result}) + "\n")
    return result


# --- the D-trace plot ------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(first, hi + step * 1e-9, step)]


def tick_text(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.2f}".rstrip("0")


COLOURS = {
    "D(real)": (31, 119, 180),
    "D(fake)": (214, 39, 40),
    "ADA p": (44, 160, 44),
    "ADA r_t": (148, 103, 189),
}


def panel(draw, box, title: str, series: dict[str, tuple[list, list]], ylabel: str) -> None:
    x0, y0, x1, y1 = box
    small, big = font(13), font(15)
    draw.text((x0, y0 - 24), f"{title}   [{ylabel}]", fill="black", font=big)
    draw.rectangle(box, outline="black")
    pts = [
        (x, y) for xs, ys in series.values() for x, y in zip(xs, ys, strict=True) if y is not None
    ]
    if not pts:
        draw.text((x0 + 10, y0 + 10), "nothing logged", fill="grey", font=small)
        return
    xs_all, ys_all = [p[0] for p in pts], [p[1] for p in pts]
    xlo, xhi = min(xs_all), max(max(xs_all), min(xs_all) + 1)
    ylo, yhi = min(ys_all), max(ys_all)
    pad = 0.05 * (yhi - ylo or 1.0)
    ylo, yhi = ylo - pad, yhi + pad

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            x0 + (x - xlo) / (xhi - xlo) * (x1 - x0),
            y1 - (y - ylo) / (yhi - ylo) * (y1 - y0),
        )

    for v in nice_ticks(ylo, yhi):
        _, yy = px(xlo, v)
        draw.line([(x0, yy), (x1, yy)], fill=(230, 230, 230))
        draw.line([(x0 - 4, yy), (x0, yy)], fill="black")
        draw.text((x0 - 6, yy), tick_text(v), fill="black", font=small, anchor="rm")
    for v in nice_ticks(xlo, xhi, 6):
        xx, _ = px(v, ylo)
        draw.line([(xx, y1), (xx, y1 + 4)], fill="black")
        draw.text((xx, y1 + 6), tick_text(v), fill="black", font=small, anchor="ma")
    lx = x1 - 10
    for label, (xs, ys) in reversed(list(series.items())):
        line = [px(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if len(line) > 1:
            draw.line(line, fill=COLOURS[label], width=2)
        elif line:
            draw.ellipse(
                [line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2],
                fill=COLOURS[label],
            )
        w = draw.textlength(label, font=small)
        draw.line([(lx - w - 26, y0 + 14), (lx - w - 6, y0 + 14)], fill=COLOURS[label], width=3)
        draw.text((lx - w, y0 + 14), label, fill="black", font=small, anchor="lm")
        lx -= w + 40


def plot_traces(rows: list[dict], size: int, path: Path) -> Path | None:
    """D on reals and fakes over steps for plain, small-data, ada and ada-fast (first seed), and
    ADA's p and r_t where a run has them."""
    chosen = []
    for name in (*HEADLINE, "ada", "ada-fast"):
        found = [r for r in rows if r["name"] == name and r["size"] == size and "trace" in r]
        if found:
            chosen.append(min(found, key=lambda r: r["seed"]))
    if not chosen:
        return None
    panels = []
    for r in chosen:
        t = r["trace"]
        series = {"D(real)": (t["step"], t["d_real"]), "D(fake)": (t["step"], t["d_fake"])}
        title = f"{r['name']} (seed {r['seed']}): D's mean output on reals and fakes"
        panels.append((title, series, f"D = {t['d_output']}"))
        if "ada_p" in t or "ada_rt" in t:
            ada = {
                k: (t["step"], t[key])
                for k, key in (("ADA p", "ada_p"), ("ADA r_t", "ada_rt"))
                if key in t
            }
            panels.append((f"{r['name']} (seed {r['seed']}): ADA's p and r_t", ada, "p, r_t"))
    width, ph, left, gap = 900, 220, 80, 80
    img = Image.new("RGB", (width, 90 + len(panels) * (ph + gap)), "white")
    draw = ImageDraw.Draw(img)
    draw.text(
        (left, 12),
        f"300 CIFAR-10 horses at {size}x{size}: the discriminator over training steps",
        fill="black",
        font=font(17),
    )
    for i, (title, series, ylabel) in enumerate(panels):
        top = 50 + gap - 20 + i * (ph + gap)
        panel(draw, (left, top, width - 20, top + ph), title, series, ylabel)
        draw.text(
            ((left + width - 20) // 2, top + ph + 24),
            "step",
            fill="black",
            font=font(13),
            anchor="ma",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


# --- summary ---------------------------------------------------------------------------------


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        if r.get("fid") is not None:
            out.setdefault(str(r["size"]), {}).setdefault(r["name"], []).append(r["fid"])
    summary: dict = {}
    for size, by_name in out.items():
        summary[size] = {}
        for name, fids in by_name.items():
            summary[size][name] = {
                "fid_mean": round(float(np.mean(fids)), 3),
                "fid_spread": round((max(fids) - min(fids)) / 2, 3),
                "fid_std": round(float(np.std(fids, ddof=1)), 3) if len(fids) > 1 else None,
                "seeds": len(fids),
            }
        plain, small = summary[size].get("plain"), summary[size].get("small-data")
        summary[size]["ratio_small_data_over_plain"] = (
            round(small["fid_mean"] / plain["fid_mean"], 3) if plain and small else None
        )
    return summary


def markdown(summary: dict) -> str:
    lines = ["| size | row | FID mean | ± (max−min)/2 | seeds |", "|---|---|---|---|---|"]
    for size, by_name in summary.items():
        for name, s in by_name.items():
            if isinstance(s, dict):
                lines.append(
                    f"| {size} | {name} | {s['fid_mean']:.2f} | {s['fid_spread']:.2f} | {s['seeds']} |"
                )
        ratio = by_name.get("ratio_small_data_over_plain")
        if ratio is not None:
            lines.append(f"| {size} | small-data / plain | {ratio:.3f} | | |")
    return "\n".join(lines)


def hardware() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def parse_list(text: str, kind=str) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/small-data-bench"))
    ap.add_argument(
        "--rows", default=None, help=f"rows to run (of {', '.join(ROWS)} and --custom; default all)"
    )
    ap.add_argument("--sizes", default="32,64", help="image sizes (default 32,64)")
    ap.add_argument("--seeds", default="0,1", help="seeds of plain and small-data (others: first)")
    ap.add_argument("--minutes", type=float, default=5.0, help="training minutes a run (default 5)")
    ap.add_argument("--n", type=int, default=1000, help="samples scored a run (default 1000)")
    ap.add_argument(
        "--retrain", action="store_true", help="train runs that have a checkpoint again"
    )
    ap.add_argument(
        "--levers-at",
        default=None,
        metavar="SIZES",
        help="sizes at which the non-headline rows run (default: every size of --sizes)",
    )
    ap.add_argument(
        "--custom",
        action="append",
        default=[],
        metavar="NAME=RECIPE[:OVERRIDE ...]",
        help="an extra row, e.g. 'small32=small-data:nets.G.ngf=32 nets.D.ndf=32' (repeatable)",
    )
    ap.add_argument("--resizer", choices=RESIZERS, default=DEFAULT_RESIZER, help="FID's resize")
    ap.add_argument("--ref-limit", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    for spec in a.custom:
        name, eq, rest = spec.partition("=")
        recipe, _, extra = rest.partition(":")
        if not eq or not name.strip() or not recipe.strip() or name in ROWS:
            sys.exit(
                f"small_data benchmark: --custom {spec!r}: use NAME=RECIPE[:OVERRIDES], a new NAME"
            )
        ROWS[name.strip()] = (recipe.strip(), extra.split())
    names = parse_list(a.rows) if a.rows else list(ROWS)
    unknown = [r for r in names if r not in ROWS]
    if unknown:
        sys.exit(
            f"small_data benchmark: --rows: unknown {', '.join(unknown)} (of {', '.join(ROWS)})"
        )
    sizes, seeds = parse_list(a.sizes, int), parse_list(a.seeds, int)
    if not sizes or not seeds:
        sys.exit("small_data benchmark: --sizes and --seeds need at least one value each")
    lever_sizes = parse_list(a.levers_at, int) if a.levers_at else sizes
    out = a.out.resolve()
    horses = horse_folder()
    files, train_idx, heldout_idx, train_dir = split(horses, out)
    notes: list[str] = []
    recipes = available_recipes()
    for name in names:
        if ROWS[name][0] not in recipes:
            notes.append(f"row {name} skipped: recipe {ROWS[name][0]!r} is not in `gankit recipes`")
            say(notes[-1])
    names = [r for r in names if ROWS[r][0] in recipes]
    extractor = make_extractor("inception", progress=True, resizer=a.resizer)
    ref = Reference(horses, files, train_idx, heldout_idx, extractor, out / "cache", a.ref_limit)
    if a.ref_limit:
        notes.append(f"--ref-limit {a.ref_limit}: FID and memorisation use only a few references")

    rows: list[dict] = []
    for size in sizes:
        for name in names:
            if name not in HEADLINE and size not in lever_sizes:
                continue
            recipe, extra = ROWS[name]
            for seed in seeds if name in HEADLINE else seeds[:1]:
                tag = f"{name}-{size}-s{seed}"
                run = out / "runs" / tag
                overrides = [
                    f"data.source=folder:{train_dir}",
                    f"data.image_size={size}",
                    f"seed={seed}",
                    f"train.minutes={a.minutes:g}",
                    "train.steps=1000000",
                    "train.progress=false",
                    *extra,
                ]
                row: dict = {"name": name, "size": size, "seed": seed, "recipe": recipe}
                row["overrides"] = extra
                row["run"] = str(run)
                error = train(run, out / "logs" / f"{tag}.log", recipe, overrides, a.retrain)
                if error is None:
                    try:
                        row.update(cached_score(run, a.n, ref, out / "pairs" / f"{tag}.png"))
                        from gankit.registries import load_config

                        cfg = load_config(run / "config.yaml")
                        row.update(
                            run_log(
                                run, cfg.section(GanOptions).loss, cfg.train.batch_size, a.minutes
                            )
                        )
                    except Exception as e:  # noqa: BLE001 - one broken run must not stop the rest
                        text = str(e).strip().splitlines()
                        error = f"scoring failed: {type(e).__name__}: {text[0] if text else ''}"
                if error is not None:
                    row["error"] = error
                    say(f"{tag}: {error}")
                else:
                    say(f"{tag}: FID {row['fid']:.2f}, {row['steps']} steps")
                rows.append(row)

    plots = {}
    for size in sizes:
        p = plot_traces(rows, size, out / f"d_trace-{size}.png")
        if p is not None:
            plots[str(size)] = str(p)
    summary = summarise(rows)
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "hardware": hardware(),
        "minutes": a.minutes,
        "n": a.n,
        "resizer": a.resizer,
        "data": {
            "source": str(horses),
            "train": str(train_dir),
            "train_images": len(train_idx),
            "heldout_images": len(heldout_idx),
            "fid_reference_images": len(ref.fid_idx),
            "memorisation_heldout_images": len(ref.mem_heldout_idx),
        },
        "rows": rows,
        "summary": summary,
        "plots": plots,
        "notes": notes,
    }
    text = json.dumps(result)
    (out / "small_data.json").write_text(text + "\n")
    print(markdown(summary), file=sys.stderr)
    print(text)


if __name__ == "__main__":
    main()
