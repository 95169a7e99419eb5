"""``gankit evaluate``: its arguments and what it prints and writes (the work is in gankit.evaluation.evaluate)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gankit.cli.evaluate_output import (
    compare_results,
    describe_protocol,
    format_table,
    reference_counts,
)
from gankit.cli.options import add_ema_option, number
from gankit.errors import ConfigError
from gankit.outputs import output_dir

if TYPE_CHECKING:
    import torch

    from gankit.evaluation.evaluate import EvaluationRun
    from gankit.evaluation.reference import ReferenceSet
    from gankit.evaluation.scoring import Evaluation

# The same as gankit.evaluation's (tests check): importing them here would load scipy for `--help`.
METRIC_CHOICES = ("fid", "kid", "prdc", "modes", "memorisation", "copying", "ppl", "is", "fdinf")
DEFAULT_METRICS = ("fid", "kid", "prdc", "modes", "memorisation")
PROTOCOLS = ("fid50k_full", "fid10k", "clean-fid", "studiogan", "custom")
RESIZERS = ("legacy-tensorflow", "clean", "legacy-pytorch", "pil-bilinear")
CUSTOM_N = 10_000

DESCRIPTION = """\
Score a GAN run (N samples from its newest checkpoint) or a folder of images against real data:
FID, KID, precision/recall, density/coverage, mode coverage and memorisation. Prints a table and
writes JSON (default RUN/eval/evaluation-step-NNNNNN.json) and, for memorisation, a PNG of the
closest sample/reference pairs. --metrics ppl: the perceptual path length of a StyleGAN2 run
(LPIPS-VGG16; no --ref needed); is: the Inception Score (full Inception); fdinf: FID extrapolated
to infinitely many samples. --protocol fixes a published pipeline's samples, reference and resize
so the FID can sit next to a paper's; --compare says whether two results can. See
docs/guides/evaluation.md for how to read the numbers.

  gankit evaluate RUN --ref builtin:mnist --n 2000 --ema
  gankit evaluate RUN --ref folder:~/cifar10-train --protocol fid50k_full
  gankit evaluate RUN --ref stats:cifar10_clean_train_32.npz --protocol clean-fid
  gankit evaluate RUN --metrics is --inception inception-2015-12-05.pt   (NVIDIA's full network)
  gankit evaluate --compare RUN/eval/evaluation-step-010000.json paper-run/evaluation.json
  gankit evaluate STYLEGAN2_RUN --metrics ppl --n 10000 [--vgg PATH --lpips PATH]
  gankit evaluate CGAN_RUN --ref builtin:mnist --n 2000 --per-class 500
  gankit evaluate RUN --ref mnist --root ~/data --features classifier:runs/mnist-clf --classifier runs/mnist-clf
  gankit evaluate samples/ --ref folder:~/faces --metrics fid,kid,prdc --out eval-samples
"""


def add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit evaluate`` on the CLI's sub-command parser."""
    p = sub.add_parser(
        "evaluate",
        help="FID, KID, precision/recall, modes, memorisation and PPL of a run or image folder",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "run", metavar="RUN_OR_FOLDER", nargs="?", help="GAN run directory or folder of images"
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="say whether two evaluation results are comparable, one line per difference "
        "(exit status 0: comparable, 1: not); nothing is evaluated",
    )
    _add_reference_options(p)
    _add_metric_options(p)
    _add_sample_options(p)
    p.add_argument("--out", help="output folder (default RUN/eval, or FOLDER-eval beside a folder)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.set_defaults(func=run_evaluate)


def _add_reference_options(p: argparse.ArgumentParser) -> None:
    """What to compare with: the real data and how many samples and reference images."""
    p.add_argument(
        "--ref",
        help="real data: builtin:mnist, mnist, fashion-mnist, cifar10 (with --root), folder:PATH, "
        "lmdb:PATH, or stats:FILE.npz (mu/sigma[/feats] from gankit stats, pytorch-fid or "
        "clean-fid); needed by every metric but ppl and is",
    )
    p.add_argument("--root", help="data.root for mnist/fashion-mnist/cifar10 (default: the run's)")
    p.add_argument(
        "--n",
        "--n-samples",
        dest="n",
        type=number(int, 1),
        help=f"samples to score (default {CUSTOM_N}; a named --protocol fixes it); under "
        "torchrun spell it --n-samples, which torchrun's own option parser does not take for "
        "one of its --n... options",
    )
    p.add_argument(
        "--ref-n",
        type=number(int, 1),
        help="reference images (default --n; at most 4/5 of the reference data; a named "
        "--protocol fixes it)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="custom",
        help="fid50k_full (stylegan2-ada), fid10k, clean-fid, studiogan: fix samples, reference, "
        "resize and covariance as that pipeline does; custom (default): --n, --ref-n, --resizer",
    )
    p.add_argument(
        "--resizer",
        choices=RESIZERS,
        help="how images reach the Inception's 299x299 (default legacy-tensorflow, the original "
        "FID code's and stylegan2-ada's; clean: clean-fid's PIL bicubic; legacy-pytorch: gankit "
        "0.2's torch bilinear; pil-bilinear: StudioGAN's); a named --protocol fixes it",
    )


def _add_metric_options(p: argparse.ArgumentParser) -> None:
    """What to compute: the metrics, the feature network and the classifier that counts modes."""
    p.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma-separated, from {', '.join(METRIC_CHOICES)} (default {','.join(DEFAULT_METRICS)})",
    )
    p.add_argument(
        "--features",
        default="inception",
        help="inception (the FID Inception) or classifier:RUN (a gankit classifier run)",
    )
    p.add_argument(
        "--inception",
        metavar="PATH",
        help="FID Inception file (default: search); --metrics is needs NVIDIA's full "
        "inception-2015-12-05.pt, which also gives the FID features",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="run the Inception under ONNX Runtime or torch (default auto: ONNX Runtime on a "
        "CPU, ~3x faster, same features; torch on a GPU)",
    )
    p.add_argument("--classifier", metavar="RUN", help="classifier run for the modes metric")
    p.add_argument("--vgg", metavar="PATH", help="ppl: torchvision's vgg16-397923af.pth file")
    p.add_argument("--lpips", metavar="PATH", help="ppl: the LPIPS v0.1 vgg.pth lin weights")


def _add_sample_options(p: argparse.ArgumentParser) -> None:
    """Which samples: generator copy, checkpoint, fit, seed, per-class and translation direction."""
    add_ema_option(p)
    p.add_argument(
        "--checkpoint", help="a checkpoint file of the run, or best (checkpoints/best.pt)"
    )
    p.add_argument(
        "--fit",
        choices=("resize", "pad"),
        help="how reference images reach the samples' size (default: the run's data.fit; resize)",
    )
    p.add_argument("--seed", type=number(int, 0), default=0, help="noise seed (default 0)")
    p.add_argument(
        "--per-class",
        type=number(int, 2),
        metavar="N",
        help="conditional runs: also FID and KID of N samples of each class against --ref's "
        "images of that class (--ref must be labelled: mnist, builtin:mnist, cifar10, "
        "folder:PATH with class sub-folders)",
    )
    p.add_argument(
        "--direction",
        help="translation runs: AtoB or BtoA (default AtoB, or the run's one direction); the "
        "source domain's test images are translated and scored against --ref",
    )


def save_pairs_grid(
    evaluation: Evaluation, fake: torch.Tensor, reference: ReferenceSet, path: str | Path
) -> Path | None:
    """A PNG of the closest (sample, reference image) pairs side by side, four pairs a row."""
    import torch

    from gankit.inference.sampling import save_grid

    if not evaluation.closest_pairs:
        return None
    tiles = []
    for pair in evaluation.closest_pairs:
        tiles += [fake[pair["sample"]], reference.images[pair["reference"]]]
    grid = torch.stack(tiles).float() / 127.5 - 1
    return save_grid(grid, path, nrow=8)


def _output_paths(args: argparse.Namespace, path: Path, step: int | None, is_run: bool):
    out = (
        Path(args.out)
        if args.out
        else (path / "eval" if is_run else path.parent / f"{path.name}-eval")
    )
    if step is None:
        return out / "evaluation.json", out / "memorisation.png"
    tag = f"{'best-' if args.checkpoint == 'best' else ''}step-{step:06d}"
    return out / f"evaluation-{tag}.json", out / f"memorisation-{tag}.png"


def run_evaluate(args: argparse.Namespace) -> int:
    """``gankit evaluate``; under torchrun every rank computes, rank 0 alone prints and writes."""
    from gankit.engine import distributed

    device = args.device
    w = distributed.start("auto", distributed.device_type(device), 600.0)
    if w.size > 1 and distributed.device_type(device) == "cuda" and ":" not in device:
        device = f"cuda:{w.local_rank}"  # one GPU per rank
    try:
        return _evaluate(args, device, w.is_main)
    finally:
        if w.size > 1:
            distributed.stop()


def _evaluate(args: argparse.Namespace, device: str, main: bool) -> int:
    from gankit.evaluation.evaluate import evaluate_source

    if args.compare:
        if args.run:
            raise ConfigError("--compare A.json B.json takes no RUN_OR_FOLDER")
        return compare_results(*args.compare) if main else 0
    if not args.run:
        raise ConfigError("give RUN_OR_FOLDER to evaluate, or --compare A.json B.json")
    path = Path(args.run)
    if args.per_class is not None:
        _check_per_class(path, args)
    done = evaluate_source(
        path,
        args.ref,
        n=args.n if args.n is not None or args.protocol != "custom" else CUSTOM_N,
        metrics=args.metrics,
        ref_n=args.ref_n,
        features=args.features,
        inception=args.inception,
        backend=args.backend,
        classifier=args.classifier,
        ema=args.ema,
        seed=args.seed,
        device=device,
        checkpoint=args.checkpoint,
        fit=args.fit,
        root=args.root,
        direction=args.direction,
        vgg=args.vgg,
        lpips=args.lpips,
        protocol=args.protocol,
        resizer=args.resizer,
    )
    per_class = _per_class(args, done, path, device) if args.per_class is not None else None
    if not main:
        return 0  # one writer
    samples = done.samples
    json_path, png_path = _output_paths(args, path, samples.step, samples.is_run)
    output_dir(json_path.parent, "--out")
    png = save_pairs_grid(done.result, samples.images, done.reference, png_path)
    record = _record(args, done, per_class, png)
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    _print_summary(args, done, per_class)
    print(f"wrote {json_path}" + (f" and {png}" if png else ""))
    return 0


def _check_per_class(path: Path, args: argparse.Namespace) -> None:
    """Refuse ``--per-class`` on a folder or an unconditional run before the main evaluation."""
    from gankit.evaluation.per_class import check_per_class
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative

    if not (path / "config.yaml").is_file():
        raise ConfigError(f"--per-class needs a conditional GAN run; {path} is not a run directory")
    if not args.ref:
        raise ConfigError("--per-class needs --ref DATA (labelled real images, e.g. builtin:mnist)")
    check_per_class(
        path, load_role(path, Generative, checkpoint=args.checkpoint).model, args.per_class
    )


def _per_class(
    args: argparse.Namespace, done: EvaluationRun, path: Path, device: str
) -> dict[str, dict[str, float]]:
    """``--per-class N``: per-class scores with the run's extractor (or one made for them)."""
    from gankit.evaluation.extractors import make_extractor
    from gankit.evaluation.per_class import per_class_scores

    feats = done.extractor or make_extractor(
        args.features,
        inception=args.inception,
        device=device,
        backend=args.backend,
        resizer=args.resizer or "legacy-tensorflow",
    )
    return per_class_scores(
        path,
        args.ref,
        feats,
        n=args.per_class,
        ema=args.ema,
        seed=args.seed,
        device=device,
        checkpoint=done.checkpoint,
        root=done.root,
    )


def _record(
    args: argparse.Namespace,
    done: EvaluationRun,
    per_class: dict[str, dict[str, float]] | None,
    png: Path | None,
) -> dict[str, Any]:
    """What ``evaluation-*.json`` holds: what was compared, how, and the scores."""
    samples, reference, result, like = done.samples, done.reference, done.result, done.like
    extractor, classifier, checkpoint = done.extractor, done.classifier, done.checkpoint
    images = reference_counts(reference)
    return {
        "samples": samples.origin,
        "step": samples.step,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "ema": samples.ema,
        "seed": args.seed,
        # ppl alone: its pairs
        "n": len(samples.images) if len(samples.images) else (args.n or CUSTOM_N),
        "image_size": like.image_size,
        "channels": like.channels,
        "fit": like.fit,
        "ref": args.ref,
        "ref_root": done.root,
        "ref_images": images[0],
        "heldout_images": images[1],
        "ref_source_images": images[2],
        "features": extractor.feature_id if extractor else None,
        "classifier": str(classifier.run) if classifier else None,
        "fid_method": "eigh",
        "protocol": done.protocol,
        "metrics": result.metrics,
        "notes": result.notes,
        "closest_pairs": result.closest_pairs,
        "per_class": per_class,
        "memorisation_grid": str(png) if png else None,
    }


def _print_summary(
    args: argparse.Namespace, done: EvaluationRun, per_class: dict[str, dict[str, float]] | None
) -> None:
    """What was compared, the features, the table of scores and the per-class rows."""
    samples, reference = done.samples, done.reference
    step = f", step {samples.step}" if samples.step is not None else ""
    head = f"{samples.origin}{step}{' (EMA)' if samples.ema else ''}"
    if reference is None and not len(samples.images):
        print(f"{head}: perceptual path length of {args.n or CUSTOM_N} pairs")
    elif reference is None:
        print(f"{head}: {len(samples.images)} samples (no reference)")
    else:
        ref_images, heldout, _ = reference_counts(reference)
        print(
            f"{head}: {len(samples.images)} samples vs {args.ref} ({ref_images} "
            f"reference, {heldout} held out)"
        )
    if done.extractor:
        print(f"features: {done.extractor.feature_id}")
    if done.protocol and done.protocol.get("ref_n") is not None:
        print(describe_protocol(done.protocol))
    print(format_table(done.result))
    if per_class:
        from gankit.evaluation.per_class import format_per_class

        print(f"per class ({args.per_class} samples each):")
        print(format_per_class(per_class))
