"""``gankit train`` (new runs, ``--resume``, ``--init-from``) and ``gankit recipes``.

Thin glue between argparse and :func:`gankit.engine.loop.train_run`; registered by
:func:`add_train_command` and :func:`add_recipes_command` from :mod:`gankit.cli.main`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.errors import ConfigError


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


def _cmd_recipes(args: argparse.Namespace) -> int:
    from gankit.config import load_recipe, recipe_names

    names = recipe_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {load_recipe(name).get('description', '')}")
    return 0


def add_train_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit train`` on the ``gankit`` subparsers."""
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


def add_recipes_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit recipes`` on the ``gankit`` subparsers."""
    p = sub.add_parser(
        "recipes", help="list the built-in recipes", description="List the built-in recipes."
    )
    p.set_defaults(func=_cmd_recipes)
