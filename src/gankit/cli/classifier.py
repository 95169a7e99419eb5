"""``gankit lr-find`` and ``gankit evaluate-classifier``: the classifier recipes' tools.

Thin glue between argparse and :mod:`gankit.evaluation.classifier`; registered by
:func:`add_classifier_commands` from :mod:`gankit.cli.main`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.cli.options import number
from gankit.errors import ConfigError
from gankit.outputs import output_dir


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


def add_classifier_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit lr-find`` and ``gankit evaluate-classifier`` on the ``gankit`` subparsers."""
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
    p.add_argument(
        "--start-lr",
        type=number(float, 0, lo_open=True),
        default=1e-5,
        help="first lr (default 1e-5)",
    )
    p.add_argument(
        "--end-lr", type=number(float, 0, lo_open=True), default=10.0, help="last lr (default 10)"
    )
    p.add_argument(
        "--num", type=number(int, 2), default=100, help="steps of the sweep (default 100)"
    )
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
