"""The ``gankit`` command line: parse, build a config, call library functions.

Every GankitError is printed as one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gankit.cli.options import add_ema_option
from gankit.errors import ConfigError, GankitError
from gankit.outputs import IMAGE_SUFFIXES, output_dir, output_file

MAIN_HELP = """\
Train, sample and evaluate GANs.

  gankit train                         train cgan-mnist on the built-in MNIST digits
  gankit train wgan-gp data.source=folder:faces data.image_size=64
  gankit train --resume runs/cgan-mnist-20261123-120000
  gankit sample RUN --n 64 --out grid.png
  gankit sample RUN --bank bank.pt     numbered latent codes for gankit arithmetic
  gankit interpolate RUN --gif walk.gif
  gankit arithmetic RUN "3,7 - 12 + 5,9" --bank bank.pt
  gankit report RUN                    RUN/report.html: curves, samples, health, evaluation
  gankit recipes                       list the presets
  gankit lr-find darknet-cifar10-cpu data.source=folder:cifar10 --out lr
  gankit evaluate-classifier RUN --data folder:cifar10
  gankit evaluate RUN --ref builtin:mnist --n 2000   FID, KID, precision/recall, modes, copying
  gankit export RUN --format onnx --out g.onnx       the generator, for use without gankit
"""


def _cmd_train(args: argparse.Namespace) -> int:
    from gankit.engine.loop import train_run
    from gankit.registries import build_config, load_config

    if args.resume:
        if args.init_from:
            raise ConfigError("--resume continues a run; --init-from starts a new one: pick one")
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml in it)")
        items = ([args.recipe] if args.recipe else []) + args.overrides
        if any("=" not in i for i in items):
            raise ConfigError(
                "with --resume, give only key=value overrides (the recipe comes from the run)"
            )
        if any(i.startswith("train.steps=") for i in items) and not any(
            i.startswith("train.epochs=") for i in items
        ):
            items.append("train.epochs=null")  # an explicit length replaces one in epochs
        cfg = load_config(run_dir / "config.yaml", items)
        outcome = train_run(cfg, run_dir, resume=True, checkpoint=args.checkpoint)
    else:
        if args.checkpoint:
            raise ConfigError("--checkpoint chooses where --resume continues: use it with --resume")
        recipe, overrides = args.recipe, list(args.overrides)
        if recipe and "=" in recipe:  # `gankit train train.steps=10` means the default recipe
            recipe, overrides = None, [recipe, *overrides]
        cfg = build_config(recipe, overrides)
        outcome = train_run(cfg, args.out, init_from=args.init_from)
    if outcome.main:  # under torchrun: once, not once per process
        print(f"run directory: {outcome.run_dir}")
    # A clean stop by a signal exits as the shell would report the signal, so that a scheduler
    # can tell a preempted run (checkpoint written, resumable) from a finished one.
    return {"SIGINT": 130, "SIGTERM": 143}.get(outcome.stopped_by or "", 0)


def _cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from gankit.inference.loading import load_role
    from gankit.inference.roles import Critic, Generative
    from gankit.inference.sampling import (
        class_index,
        generate,
        rank_by_discriminator,
        resolve_ema,
        save_grid,
        save_individual,
    )

    if args.out:
        output_file(args.out, "--out", IMAGE_SUFFIXES)
    if args.individual:
        output_dir(args.individual, "--individual")
    run = load_role(args.run, Generative, device=args.device)
    task, step = run.model, run.step
    args.ema = resolve_ema(args.ema, task, args.run)
    if args.bank and args.rank_by_d:
        raise ConfigError("--bank stores the codes of plain samples: leave out --rank-by-d")
    label = None if args.class_ is None else class_index(task, args.class_)
    if args.bank and (label is not None or args.noise_std != 1 or args.truncation is not None):
        raise ConfigError("--bank stores plain codes: leave out --class/--noise-std/--truncation")

    def labels(n: int) -> torch.Tensor | None:
        return None if label is None else torch.full((n,), label, dtype=torch.long)

    noise = {"noise_std": args.noise_std, "truncation": args.truncation}
    if args.bank:
        from gankit.inference.latent import bank_images_dir, save_bank

        meta = {"run": str(args.run), "step": step}
        images = save_bank(task, args.n, args.bank, args.seed, args.ema, meta)
        print(f"wrote {args.bank} and {bank_images_dir(args.bank)}/ (index.png numbers them)")
    elif args.rank_by_d:
        if not isinstance(task, Critic):
            raise ConfigError(
                f"--rank-by-d: {args.run} is a {run.cfg.task} run without a discriminator"
            )
        if args.from_n < args.n:
            raise ConfigError(
                f"--from {args.from_n} must be at least --n {args.n}: rank more samples than you keep"
            )
        pool = generate(
            task, args.from_n, seed=args.seed, ema=args.ema, labels=labels(args.from_n), **noise
        )
        images = rank_by_discriminator(task, pool, args.n)
    else:
        images = generate(
            task, args.n, seed=args.seed, ema=args.ema, labels=labels(args.n), **noise
        )
    out = (
        Path(args.out)
        if args.out
        else Path(args.run) / "samples" / f"sample-step{step:06d}-seed{args.seed}.png"
    )
    save_grid(images, out)
    print(f"wrote {out}")
    if args.individual:
        paths = save_individual(images, args.individual)
        print(f"wrote {len(paths)} images to {args.individual}")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Translator
    from gankit.inference.translate_files import translate_files

    out = output_dir(args.out, "--out")
    run = load_role(args.run, Translator, device=args.device, checkpoint=args.checkpoint)
    written = translate_files(
        run.model,
        args.inputs,
        out,
        direction=args.direction,
        channels=run.cfg.data.channels,
        batch_size=args.batch_size,
    )
    print(f"wrote {len(written)} images to {out} ({args.direction}, step {run.step})")
    return 0


def _cmd_lr_find(args: argparse.Namespace) -> int:
    from gankit.evaluation.classifier import run_lr_find
    from gankit.registries import build_config

    recipe, overrides = args.recipe, list(args.overrides)
    if "=" in recipe:
        raise ConfigError(
            f"lr-find needs a recipe name first, e.g. darknet-cifar10, not {recipe!r}"
        )
    cfg = build_config(recipe, overrides)
    output_dir(args.out, "--out")
    result = run_lr_find(cfg, args.out, args.start_lr, args.end_lr, args.num)
    stop = "stopped when the loss diverged" if result.diverged else "no divergence"
    print(
        f"suggested lr {result.suggestion:.3g} (steepest descent); loss minimum at "
        f"{result.min_lr:.3g}, so about {result.min_lr / 10:.3g} by the min/10 rule; "
        f"{len(result.lrs)} steps, {stop}"
    )
    print(f"wrote {Path(args.out) / 'lr_find.png'}")
    return 0


def _cmd_evaluate_classifier(args: argparse.Namespace) -> int:
    import json
    import math

    from gankit.evaluation.classifier import evaluate_run, plot_confusion

    tta = {"auto": None, "on": True, "off": False}[args.tta]
    if args.out:
        output_dir(args.out, "--out")
    ev = evaluate_run(args.run, args.data, args.split, args.root, args.device, tta)
    total = sum(ev.counts)
    flip = ", flip TTA" if ev.tta_flip else ""
    print(
        f"{args.data} ({args.split}, {total} images), step {ev.step}{flip}: "
        f"accuracy {100 * ev.accuracy:.2f} %, loss {ev.loss:.4f}"
    )
    width = max(map(len, ev.classes))
    for name, acc, n in zip(ev.classes, ev.per_class, ev.counts, strict=True):
        shown = "   n/a" if math.isnan(acc) else f"{100 * acc:6.2f}"
        print(f"  {name:<{width}}  {shown} %  ({n} images)")
    out = Path(args.out) if args.out else Path(args.run)
    title = f"{args.data} ({args.split}): accuracy {100 * ev.accuracy:.2f} %"
    png = plot_confusion(ev.confusion, ev.classes, out / "confusion.png", title)
    (out / "evaluation.json").write_text(json.dumps({"data": args.data, **vars(ev)}) + "\n")
    print(f"wrote {png} and {out / 'evaluation.json'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gankit.inference.export import FORMATS, export_run

    out = args.out or str(Path(args.run) / f"generator{FORMATS.get(args.format, '')}")
    path, side = export_run(args.run, args.format, out, ema=args.ema)
    print(f"wrote {path} and {side}")
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from gankit.config import load_recipe, recipe_names

    names = recipe_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {load_recipe(name).get('description', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gankit", description=MAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from gankit import __version__

    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "train",
        help="train a model from a recipe",
        description="Train from a recipe (default cgan-mnist) with key.sub=value overrides, "
        "e.g. `gankit train dcgan data.source=folder:photos train.steps=5000`. "
        "Every key is listed in a run's config.yaml.",
    )
    p.add_argument("recipe", nargs="?", help="recipe name (see `gankit recipes`) or a .yaml file")
    p.add_argument("overrides", nargs="*", help="config overrides such as train.steps=500")
    p.add_argument("--out", help="run directory (default: runs/<recipe>-<timestamp>)")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue the run in this directory from its newest checkpoint; key=value overrides "
        "of tunable settings (learning rates, loss weights, train.steps, ...) apply from there on",
    )
    p.add_argument(
        "--checkpoint",
        metavar="NAME",
        help="with --resume: continue from this checkpoint (step-000400.pt, 400 or a path) instead "
        "of the newest; later ones are moved to checkpoints/superseded-*/",
    )
    p.add_argument(
        "--init-from",
        metavar="RUN",
        help="start a new run from this run's network weights (fine-tuning; optimizers fresh)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "sample",
        help="generate images from a trained run",
        description="Generate images from a run's newest checkpoint.",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--out", help="grid PNG to write (default RUN/samples/sample-...png)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    add_ema_option(p)
    p.add_argument(
        "--individual", metavar="DIR", help="also write each image as its own PNG in DIR"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument(
        "--rank-by-d",
        action="store_true",
        help="generate --from images and keep the --n the discriminator scores most real",
    )
    p.add_argument(
        "--top",
        dest="n",
        type=int,
        default=argparse.SUPPRESS,
        help="with --rank-by-d: how many to keep (same as --n)",
    )
    p.add_argument(
        "--from",
        dest="from_n",
        type=int,
        default=1024,
        help="with --rank-by-d: how many to rank (default 1024)",
    )
    p.add_argument(
        "--bank",
        metavar="FILE",
        help="also save the latent codes to FILE and numbered images for gankit arithmetic",
    )
    p.add_argument(
        "--class",
        dest="class_",
        metavar="K",
        help="conditional runs: draw this class (a class name or index); default every class in turn",
    )
    p.add_argument(
        "--noise-std",
        type=float,
        default=1.0,
        help="scale the noise by S < 1 for more typical, less varied samples (default 1)",
    )
    p.add_argument(
        "--truncation",
        type=float,
        metavar="T",
        help="truncation trick: redraw noise components beyond +-T (e.g. 0.7; default off)",
    )
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser(
        "translate",
        help="translate images with an image-to-image run (cyclegan, pix2pix, cut)",
        description="Translate image files or folders; outputs keep the names and sizes of the inputs.",
    )
    p.add_argument("run", help="run directory of a cyclegan, pix2pix or cut run")
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="folder to write the translated images to")
    p.add_argument(
        "--direction", default="AtoB", help="AtoB or BtoA (one-sided runs: their own only)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--checkpoint", help="checkpoint name or file (default: the newest)")
    p.set_defaults(func=_cmd_translate)

    p = sub.add_parser(
        "data",
        help="prepare datasets: download, faces, lsun-export, validate, cifar-folders",
        description="Tools that turn messy collections into training folders.",
    )
    data_sub = p.add_subparsers(dest="data_command", metavar="TOOL", required=True)
    from gankit.cli.data import add_data_commands
    from gankit.data.prep.cifar_folders import add_cifar_folders_command

    add_data_commands(data_sub)
    add_cifar_folders_command(data_sub)

    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test of a classifier recipe",
        description="Train a fresh copy of the recipe's model for --num steps while raising the "
        "learning rate exponentially; write lr_find.png (and .json) and print the suggestion. "
        "Nothing else is kept.",
    )
    p.add_argument("recipe", help="recipe name (see `gankit recipes`) or a .yaml file")
    p.add_argument("overrides", nargs="*", help="config overrides such as data.source=folder:DIR")
    p.add_argument("--out", default=".", help="folder for lr_find.png (default: here)")
    p.add_argument("--start-lr", type=float, default=1e-5, help="first lr (default 1e-5)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last lr (default 10)")
    p.add_argument("--num", type=int, default=100, help="steps of the sweep (default 100)")
    p.set_defaults(func=_cmd_lr_find)

    p = sub.add_parser(
        "evaluate-classifier",
        help="accuracy, per-class accuracy and confusion matrix of a classifier run",
        description="Score a classifier run's newest checkpoint on a labelled source and write "
        "confusion.png and evaluation.json.",
    )
    p.add_argument("run", help="run directory of a classifier")
    p.add_argument(
        "--data",
        required=True,
        help="folder:PATH (class sub-folders, or train/ and test/), cifar10, mnist, ...",
    )
    p.add_argument("--split", default="test", help="train or test (default test)")
    p.add_argument("--root", help="data.root for torchvision sources (default: the run's)")
    p.add_argument("--out", help="folder for confusion.png (default: the run directory)")
    p.add_argument(
        "--tta",
        choices=("auto", "on", "off"),
        default="auto",
        help="flip TTA (default: as trained)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.set_defaults(func=_cmd_evaluate_classifier)

    p = sub.add_parser(
        "export",
        help="export a run's generator: safetensors, onnx or torchscript",
        description="Write the run's generator (the EMA copy by default) to FILE and its "
        "architecture to FILE.json, loadable without gankit (see docs/api.md).",
    )
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--format", default="safetensors", help="safetensors (default), onnx or torchscript"
    )
    p.add_argument("--out", help="file to write (default RUN/generator.<ext>)")
    add_ema_option(p)
    p.set_defaults(func=_cmd_export)

    from gankit.cli.evaluate import add_evaluate_command

    add_evaluate_command(sub)

    from gankit.cli.view import add_viz_commands

    add_viz_commands(sub)

    from gankit.cli.toy import add_toy_command

    add_toy_command(sub)

    p = sub.add_parser(
        "recipes", help="list the built-in recipes", description="List the built-in recipes."
    )
    p.set_defaults(func=_cmd_recipes)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `gankit train RECIPE --out DIR key=value`: argparse stops filling the overrides at the
    # first option, so key=value items after it arrive here; anything else is an error.
    if (
        extra
        and hasattr(args, "overrides")
        and all("=" in e and not e.startswith("-") for e in extra)
    ):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "n", 1) is not None and getattr(args, "n", 1) <= 0:
        parser.error("--n must be positive")
    try:
        return args.func(args)
    except GankitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `gankit recipes | head`: the reader has gone. Point stdout at devnull so the flush at
        # exit does not raise again (the recipe in Python's `signal` docs), and stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
