"""The ``gankit`` command line: parse, build a config, call library functions.

Every GankitError is printed as one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gankit.errors import ConfigError, GankitError

MAIN_HELP = """\
Train, sample and evaluate GANs.

  gankit train                         train dcgan-mnist on the built-in MNIST digits
  gankit train wgan-gp data.source=folder:faces data.image_size=64
  gankit train --resume runs/dcgan-mnist-20261123-120000
  gankit sample RUN --n 64 --out grid.png
  gankit recipes                       list the presets
"""


def _cmd_train(args: argparse.Namespace) -> int:
    from gankit.config import (
        build_config,
        from_dict,
        load_config,
        merge_dicts,
        parse_overrides,
        to_dict,
    )
    from gankit.loop import train

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume {run_dir}: not a run directory (no config.yaml in it)")
        items = ([args.recipe] if args.recipe else []) + args.overrides
        if any("=" not in i for i in items):
            raise ConfigError(
                "with --resume, give only key=value overrides (the recipe comes from the run)"
            )
        cfg = from_dict(
            merge_dicts(to_dict(load_config(run_dir / "config.yaml")), parse_overrides(items))
        )
        out = train(cfg, run_dir, resume=True)
    else:
        recipe, overrides = args.recipe, list(args.overrides)
        if recipe and "=" in recipe:  # `gankit train train.steps=10` means the default recipe
            recipe, overrides = None, [recipe, *overrides]
        cfg = build_config(recipe, overrides)
        out = train(cfg, args.out)
    print(f"run directory: {out}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from gankit.sampling import (
        generate,
        load_run,
        rank_by_discriminator,
        save_grid,
        save_individual,
    )

    _, task, step = load_run(args.run, device=args.device)
    if args.ema and getattr(task, "ema", None) is None:
        raise ConfigError(f"--ema: {args.run} was trained without an EMA generator (gan.ema=0)")
    if args.rank_by_d:
        if args.from_n < args.n:
            raise ConfigError(
                f"--from {args.from_n} must be at least --n {args.n}: rank more samples than you keep"
            )
        images = rank_by_discriminator(
            task, generate(task, args.from_n, seed=args.seed, ema=args.ema), args.n
        )
    else:
        images = generate(task, args.n, seed=args.seed, ema=args.ema)
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
        description="Train from a recipe (default dcgan-mnist) with key.sub=value overrides, "
        "e.g. `gankit train dcgan data.source=folder:photos train.steps=5000`. "
        "Every key is listed in a run's config.yaml.",
    )
    p.add_argument("recipe", nargs="?", help="recipe name (see `gankit recipes`) or a .yaml file")
    p.add_argument("overrides", nargs="*", help="config overrides such as train.steps=500")
    p.add_argument("--out", help="run directory (default: runs/<recipe>-<timestamp>)")
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue the run in this directory from its newest checkpoint",
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
    p.add_argument(
        "--ema", action="store_true", help="use the EMA generator (runs trained with gan.ema>0)"
    )
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
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser(
        "data",
        help="prepare datasets: download, faces, lsun-export, validate, cifar-folders",
        description="Tools that turn messy collections into training folders.",
    )
    data_sub = p.add_subparsers(dest="data_command", metavar="TOOL", required=True)
    from gankit.data.prep.cifar_folders import add_cifar_folders_command
    from gankit.data.prep.commands import add_data_commands

    add_data_commands(data_sub)
    add_cifar_folders_command(data_sub)

    p = sub.add_parser(
        "recipes", help="list the built-in recipes", description="List the built-in recipes."
    )
    p.set_defaults(func=_cmd_recipes)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
