"""Transfer: does fine-tuning from a run on other images beat training from scratch on 300 ships?

Data: CIFAR-10 (Krizhevsky 2009) as JPEGs. A fixed permutation (``numpy.random.default_rng(0)``)
picks 300 of the target class's 5,000 training images (``--target``, default ``ship``) into
``OUT/data/ship-300``, the training set of every arm; the other 4,700 and the 1,000 test ships are
held out, and all 6,000 are the FID/KID reference. The source run, the ``small-data`` recipe (the
arms' networks, so that ``--init-from`` fits), is trained once for ``--pretrain-minutes`` on the
other nine classes' 45,000 training images. Arms, run as a user runs them (``gankit train
small-data data.source=folder:OUT/data/ship-300 ...``) for ``--minutes`` on every seed:
``scratch``; ``fine-tuned``, the same ``--init-from`` the source with FINE_TUNE's options (the
source's minutes are extra compute it had: reported beside it); ``scratch-ada`` (only by
``--arms``), scratch with the fine-tuned arm's augmentation and learning rates, and
``fine-tuned-plain`` (only by ``--arms``), the source's start with the scratch arm's options (the
recipe's DiffAugment and learning rates, no FreezeD): each tells the start's share of a
difference from the options'.

Each run (the source too, as "no fine-tuning") is scored as benchmarks/small_data.py scores, on
``--n`` samples of its EMA generator: FID and KID against all target images (``--resizer``,
default gankit's ``legacy-tensorflow``, resizes them for the Inception), the memorisation
check (the 300 as the training side, 1,000 held-out images as the novel side; closest pairs in
``OUT/pairs``), steps; 64 samples in ``OUT/RUN.png``. Prints one JSON object (also
``OUT/transfer.json``) and a Markdown table on stderr. A run with a checkpoint is not trained again
(an interrupted benchmark goes on) unless its source was trained in this invocation.

    python benchmarks/transfer.py [--out runs/transfer-bench] [--minutes 5] [--pretrain-minutes 10]
        [--seeds 0,1] [--n 1000] [--target ship] [--size 32] [--cifar DIR] [--inception FILE]
        [--resizer NAME]

Run it alone: two torch processes on two cores slow each other many times over. ``--tiny``: the
smoke test's sizes (a few images and steps; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import small_data  # noqa: E402
from small_data import N_HELDOUT, hardware, parse_list, run_log, save_pairs, train  # noqa: E402
from translation import SHARED, cifar_folder  # noqa: E402

from gankit.config import DataConfig  # noqa: E402
from gankit.data.images import scan_images  # noqa: E402
from gankit.data.sources import load_source  # noqa: E402
from gankit.engine.checkpoint import list_checkpoints  # noqa: E402
from gankit.evaluation.extractors import make_extractor  # noqa: E402
from gankit.evaluation.metrics import compute_fid, compute_kid, compute_memorisation  # noqa: E402
from gankit.evaluation.metrics.reference_cache import reference_features  # noqa: E402
from gankit.evaluation.metrics.resize import DEFAULT_RESIZER, RESIZERS  # noqa: E402
from gankit.evaluation.samples import generate_samples  # noqa: E402
from gankit.gan.options import GanOptions  # noqa: E402
from gankit.inference.sampling import save_grid  # noqa: E402
from gankit.registries import load_config  # noqa: E402

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECIPE, N_TRAIN, GRID = "small-data", 300, 64
ADA = ["gan.augment=[]", "gan.ada=adaptive", "gan.ada_kimg=100"]
LOWER_LR = ["optim.G.lr=1e-4", "optim.D.lr=1e-4"]
FINE_TUNE = ["gan.freeze_d=2", *ADA, *LOWER_LR]
"""FreezeD on the two highest-resolution of D's four weight layers at 32x32 (Mo et al. 2020);
ADA with the short ramp the small-data benchmark found p needs in a CPU run (Karras et al. 2020);
half the recipe's 2e-4, since --init-from starts Adam's moments afresh on trained weights."""
ARMS: dict[str, tuple[list[str], bool]] = {
    "scratch": ([], False),
    "fine-tuned": (FINE_TUNE, True),
    "scratch-ada": ([*ADA, *LOWER_LR], False),
    "fine-tuned-plain": ([], True),
}
"""Arm -> (overrides on the recipe, whether it starts --init-from the source run)."""
TINY_TRAIN, TINY_PER_CLASS, TINY_N = 24, 8, 8
TINY_OVERRIDES = ["train.steps=4", "train.batch_size=8"]
"""--tiny: the smoke test's sizes (training images, source images a class, samples, steps)."""


def say(text: str) -> None:
    print(f"[transfer] {text}", file=sys.stderr, flush=True)


small_data.say = say  # the imported training helper reports under this benchmark's name


def fill(folder: Path, files: list[tuple[Path, str]]) -> Path:
    """``folder`` holding exactly ``files`` (source, name), made afresh unless it already does."""
    want = sorted(name for _, name in files)
    have = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))
    if have != want:
        shutil.rmtree(folder, ignore_errors=True)
        for src, name in files:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, folder / name)  # no space, no time; a copy across file systems
            except OSError:
                shutil.copyfile(src, folder / name)
    return folder


@dataclass
class Target:
    """All the target's images in one flat folder (``train-*``, ``test-*``), the indices of the
    training and held-out images in its sorted list, and the training images' own folder."""

    all_dir: Path
    files: list[Path]
    train_idx: np.ndarray
    heldout_idx: np.ndarray
    train_dir: Path


def build_target(cifar: Path, target: str, out: Path, n_train: int) -> Target:
    named = [
        (p, f"{split}-{p.name}")
        for split in ("train", "test")
        for p in scan_images(cifar / split / target)
    ]
    all_dir = fill(out / "data" / f"{target}-all", named)
    files = scan_images(all_dir)
    is_train = np.array([p.name.startswith("train-") for p in files])
    train_pos, test_pos = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    order = train_pos[np.random.default_rng(0).permutation(len(train_pos))]
    if len(order) <= n_train:
        sys.exit(f"transfer benchmark: {len(order)} training images of {target}, <= {n_train}")
    train_idx = order[:n_train]
    rest = np.concatenate([order[n_train:], test_pos])
    heldout_idx = rest[np.random.default_rng(1).permutation(len(rest))]  # test ships mixed in
    train_dir = fill(
        out / "data" / f"{target}-{n_train}", [(files[i], files[i].name) for i in train_idx]
    )
    return Target(all_dir, files, train_idx, heldout_idx, train_dir)


def build_source(cifar: Path, target: str, out: Path, per_class: int | None) -> tuple[Path, int]:
    """The other nine classes' training images (``per_class`` of each when given), one
    sub-folder a class; the folder and its number of images."""
    files = []
    for cls in CLASSES:
        if cls != target:
            found = scan_images(cifar / "train" / cls)[:per_class]
            files += [(p, f"{cls}/{p.name}") for p in found]
    return fill(out / "data" / f"source-no-{target}", files), len(files)


class ClassFeatures:
    """Inception features of the target's images at one geometry: the FID/KID reference (all of
    them), the training side and the held-out side of the memorisation check; cached on disk."""

    def __init__(self, target: Target, name: str, extractor, cache: Path):
        self.target, self.name, self.extractor, self.cache = target, name, extractor, cache
        self.mem_heldout_idx = target.heldout_idx[:N_HELDOUT]
        self._done: dict[tuple, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}

    def get(self, data: DataConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(uint8 images of every target image, features by side) at ``data``'s geometry."""
        geometry = (data.image_size, data.channels, data.fit)
        if geometry not in self._done:
            size = dict(zip(("image_size", "channels", "fit"), geometry, strict=True))
            folder = f"folder:{self.target.all_dir}"  # strict: the indices must stay valid
            dcfg = DataConfig(source=folder, **size, in_memory="yes", strict=True, workers=0)
            images = load_source(dcfg, progress=False).images
            assert images is not None and len(images) == len(self.target.files)
            digest = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]
            tag = "{}px-{}ch-{}".format(*geometry)
            say(f"Inception features of all {len(images)} {self.name} images at {tag} (cached)")
            key = f"cifar10-{self.name}-all:{tag}:{digest}"
            feats = reference_features(
                self.extractor, key, len(images), lambda: images, cache=self.cache
            )
            sides = {"fid": feats}
            for side, idx in (("train", self.target.train_idx), ("heldout", self.mem_heldout_idx)):
                sides[side] = feats[torch.from_numpy(idx)]
            self._done[geometry] = (images, sides)
        return self._done[geometry]


def score(run: Path, n: int, ref: ClassFeatures, out: Path) -> dict:
    """FID, KID and the memorisation check of ``n`` samples (EMA generator when the run has one);
    the sample grid ``out/RUN.png`` and the closest pairs ``out/pairs/RUN.png``."""
    samples = generate_samples(run, n, ema=None, seed=0)
    images, sides = ref.get(samples.data)
    fake = ref.extractor(samples.images)
    kid = compute_kid(sides["fid"], fake)
    mem = compute_memorisation(fake, sides["train"], sides["heldout"])
    grid, pairs = out / f"{run.name}.png", out / "pairs" / f"{run.name}.png"
    save_grid(samples.images[:GRID].float() / 127.5 - 1, grid, nrow=8)
    save_pairs(
        samples.images, images[torch.from_numpy(ref.target.train_idx)], mem.closest_pairs, pairs
    )
    median_heldout = float(np.median(mem.ref_distances))
    return {
        "fid": round(float(compute_fid(sides["fid"], fake, method="eigh")["fid"]), 3),
        "kid": round(float(kid["kid"]), 6),
        "kid_std": round(float(kid["kid_std"]), 6),
        "fraction_flagged": mem.fraction_flagged,  # flagged as copies by the default rule
        "share_closer_than_median": float(np.mean(mem.gen_distances < median_heldout)),
        "ema": samples.ema,
        "grid_png": str(grid),
        "pairs_png": str(pairs),
        "copy_threshold": round(mem.threshold, 4),
        "nn_median": {"generated": float(np.median(mem.gen_distances)), "heldout": median_heldout},
    }


def train_and_score(
    row: dict, overrides: list[str], ref: ClassFeatures, a: argparse.Namespace, retrain: bool
) -> dict:
    """Train ``row["run"]`` (unless it has a checkpoint and not ``retrain``), score it, fill the
    row; a failure becomes the row's ``error``."""
    run, out = Path(row["run"]), a.out
    error = train(run, out / "logs" / f"{run.name}.log", RECIPE, overrides, retrain)
    if error is None:
        try:
            say(f"{run.name}: scoring {a.n} samples")
            row.update(score(run, a.n, ref, out))
            cfg = load_config(run / "config.yaml")
            log = run_log(run, cfg.section(GanOptions).loss, cfg.train.batch_size, row["minutes"])
            trace = log.pop("trace")
            row.update(log)
            row["end"] = {k: trace[k][-1] for k in ("d_real", "d_fake", "ada_p") if trace.get(k)}
        except Exception as e:  # noqa: BLE001 - one broken run must not stop the rest
            text = str(e).strip().splitlines()
            error = f"scoring failed: {type(e).__name__}: {text[0] if text else ''}"
    if error is not None:
        row["error"] = error
        say(f"{run.name}: {error}")
    else:
        say(f"{run.name}: FID {row['fid']:.2f}, KID {row['kid']:.4f}, {row['steps']} steps")
    return row


MEASURES = {"steps": "{:.0f}", "fid": "{:.2f}", "kid": "{:.2f}"}
MEASURES |= {"fraction_flagged": "{:.1%}", "share_closer_than_median": "{:.1%}"}
"""What the table shows of a run, in this order and format (KID x 10^3)."""


def summarise(rows: list[dict]) -> dict:
    """Per arm: the mean and (max - min)/2 over seeds of every measure."""
    summary: dict = {}
    for arm in dict.fromkeys(r["arm"] for r in rows):
        done = [r for r in rows if r["arm"] == arm and "fid" in r]
        if done:
            s: dict = {"seeds": len(done), "minutes": done[0]["minutes"]}
            s["pretrain_minutes"] = done[0].get("pretrain_minutes", 0)
            for name in MEASURES:
                values = [float(r[name]) for r in done]
                s[name] = round(float(np.mean(values)), 6)
                s[f"{name}_spread"] = round((max(values) - min(values)) / 2, 6)
            summary[arm] = s
    if "scratch" in summary and "fine-tuned" in summary:
        ratio = summary["fine-tuned"]["fid"] / summary["scratch"]["fid"]
        summary["fid_ratio_fine_tuned_over_scratch"] = round(ratio, 3)
    return summary


def cells(row: dict) -> str:
    """A row's measures as Markdown cells; FID and KID with their spread when it has one."""
    out = []
    for name, fmt in MEASURES.items():
        scale = 1e3 if name == "kid" else 1.0
        text = fmt.format(scale * row[name])
        if f"{name}_spread" in row and name in ("fid", "kid"):
            text += " ± " + fmt.format(scale * row[f"{name}_spread"])
        out.append(text)
    return " | ".join(out)


def markdown(rows: list[dict], summary: dict) -> str:
    """Means over seeds (± (max - min)/2), then every run."""
    lines = [
        "| arm | seed | minutes (+ pretraining) | steps | FID | KID ×10³ | copies | nearer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, s in summary.items():
        if isinstance(s, dict):
            extra = f" (+ {s['pretrain_minutes']:g})" if s["pretrain_minutes"] else ""
            lines.append(f"| {arm} | mean of {s['seeds']} | {s['minutes']:g}{extra} | {cells(s)} |")
    for r in rows:
        body = cells(r) if "fid" in r else f"failed: {r.get('error')} | | | | "
        lines.append(f"| {r['arm']} | {r['seed']} | {r.get('minutes', 0):g} | {body} |")
    ratio = summary.get("fid_ratio_fine_tuned_over_scratch")
    return "\n".join(lines) + (f"\n\nFID fine-tuned / scratch: {ratio:.3f}" if ratio else "")


OPTIONS = (  # flag, type, default, help
    ("--minutes", float, 5.0, "training minutes of every arm (default 5)"),
    ("--pretrain-minutes", float, 10.0, "training minutes of the source run (default 10)"),
    ("--seeds", str, "0,1", "seeds of every arm (default 0,1)"),
    ("--n", int, 1000, "samples scored a run (default 1000)"),
    ("--size", int, 32, "image size (default 32)"),
    ("--arms", str, "scratch,fine-tuned", f"of {', '.join(ARMS)} (default scratch,fine-tuned)"),
    ("--cifar", Path, None, "unpacked CIFAR-10 JPEGs, train/ and test/ (default: the archive)"),
    ("--resizer", str, DEFAULT_RESIZER, f"of {', '.join(RESIZERS)} (default {DEFAULT_RESIZER})"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/transfer-bench"))
    for flag, kind, default, text in OPTIONS:
        ap.add_argument(flag, type=kind, default=default, help=text)
    ap.add_argument("--target", default="ship", choices=[c for c in CLASSES if c != "horse"])
    shared = SHARED / "inception" / "inception-2015-12-05.pt"
    ap.add_argument(
        "--inception",
        default=str(shared) if shared.is_file() else None,
        help="the FID Inception file (default: the shared copy, else gankit's own search)",
    )
    ap.add_argument("--retrain", action="store_true", help="train runs with a checkpoint again")
    ap.add_argument("--tiny", action="store_true", help="the smoke test's sizes (numbers: none)")
    a = ap.parse_args(argv)
    a.arms, a.seeds, a.out = parse_list(a.arms), parse_list(a.seeds, int), a.out.resolve()
    if not a.seeds or not a.arms or any(arm not in ARMS for arm in a.arms):
        sys.exit(f"transfer benchmark: --arms takes {', '.join(ARMS)}; --seeds at least one seed")
    if a.tiny:
        a.n = min(a.n, TINY_N)
    return a


def common(a: argparse.Namespace, data: Path, seed: int, minutes: float) -> list[str]:
    """The overrides every run has: its data, size, seed and time budget."""
    fixed = [f"data.source=folder:{data}", f"data.image_size={a.size}", f"seed={seed}"]
    budget = [f"train.minutes={minutes:g}", "train.steps=1000000", "train.progress=false"]
    return [*fixed, *budget, *(TINY_OVERRIDES if a.tiny else [])]


def run_all(a: argparse.Namespace, target: Target, source_dir: Path, ref: ClassFeatures):
    """The source run, then every arm on every seed: (the source's row, the arms' rows)."""
    source = a.out / "runs" / f"source-no-{a.target}-{a.size}-p{a.pretrain_minutes:g}"
    fresh = a.retrain or not list_checkpoints(source / "checkpoints")
    src_row = {"arm": "source (no fine-tuning)", "seed": 0, "run": str(source)}
    src_row["minutes"] = a.pretrain_minutes
    train_and_score(src_row, common(a, source_dir, 0, a.pretrain_minutes), ref, a, a.retrain)
    rows: list[dict] = []
    for arm in a.arms:
        extra, init = ARMS[arm]
        if init and "error" in src_row:
            rows.append({"arm": arm, "seed": None, "error": f"no source: {src_row['error']}"})
            continue
        for seed in a.seeds:
            run = a.out / "runs" / f"{arm}-{a.target}-{a.size}-s{seed}"
            row = {"arm": arm, "seed": seed, "run": str(run), "minutes": a.minutes}
            row["overrides"] = extra
            overrides = [*common(a, target.train_dir, seed, a.minutes), *extra]
            if init:  # a new source makes the fine-tuned runs stale: trained again
                overrides += ["--init-from", str(source)]
                row["pretrain_minutes"] = a.pretrain_minutes
            rows.append(train_and_score(row, overrides, ref, a, a.retrain or (init and fresh)))
    return src_row, rows


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    cifar = (a.cifar or cifar_folder()).resolve()
    target = build_target(cifar, a.target, a.out, TINY_TRAIN if a.tiny else N_TRAIN)
    per_class = TINY_PER_CLASS if a.tiny else None
    source_dir, n_source = build_source(cifar, a.target, a.out, per_class)
    extractor = make_extractor(
        "inception", inception=a.inception, progress=not a.tiny, resizer=a.resizer
    )
    ref = ClassFeatures(target, a.target, extractor, a.out / "cache")
    src_row, rows = run_all(a, target, source_dir, ref)
    summary = summarise(rows)
    settings = ("size", "minutes", "pretrain_minutes", "n", "seeds", "resizer", "tiny")
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "hardware": hardware(),
        "recipe": RECIPE,
        **{k: getattr(a, k) for k in settings},
        "data": {
            "target_class": a.target,
            "train": str(target.train_dir),
            "train_images": len(target.train_idx),
            "heldout_images": len(target.heldout_idx),
            "fid_reference_images": len(target.files),
            "memorisation_heldout_images": len(ref.mem_heldout_idx),
            "source": str(source_dir),
            "source_images": n_source,
        },
        "source": src_row,
        "rows": rows,
        "summary": summary,
    }
    text = json.dumps(result)
    (a.out / "transfer.json").write_text(text + "\n")
    print(markdown([src_row, *rows], summary), file=sys.stderr)
    print(text)
    return result


if __name__ == "__main__":
    main()
