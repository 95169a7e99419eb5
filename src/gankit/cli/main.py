"""The ``gankit`` command line: parse, build a config, call library functions.

``build_parser`` collects the subcommands that each module registers: :mod:`gankit.cli.train`,
:mod:`~gankit.cli.sample`, :mod:`~gankit.cli.data`, :mod:`~gankit.cli.classifier`,
:mod:`~gankit.cli.evaluate`, :mod:`~gankit.cli.view` and :mod:`~gankit.cli.toy`.

Every GankitError is printed as one line (``error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from gankit.errors import GankitError

MAIN_HELP = """\
Train, sample and evaluate GANs.

  gankit train                         train cgan-mnist on the built-in MNIST digits
  gankit train wgan-gp data.source=folder:faces data.image_size=64
  gankit train --resume runs/cgan-mnist-20261123-120000
  gankit sample RUN --n 64 --out grid.png
  gankit sample RUN --bank bank.pt     numbered latent codes for gankit arithmetic
  gankit interpolate RUN --gif walk.gif
  gankit style-mix RUN --rows 1,2,3 --cols 4,5  StyleGAN2: coarse/fine styles of two seeds
  gankit arithmetic RUN "3,7 - 12 + 5,9" --bank bank.pt
  gankit project RUN photo.png --out proj   the latent code of a real image
  gankit serve RUN                     a local web page to explore a run (pip install -e ".[serve]")
  gankit report RUN                    RUN/report.html: curves, samples, health, evaluation
  gankit recipes                       list the presets
  gankit lr-find darknet-cifar10-cpu data.source=folder:cifar10 --out lr
  gankit evaluate-classifier RUN --data folder:cifar10
  gankit evaluate RUN --ref builtin:mnist --n 2000   FID, KID, precision/recall, modes, copying
  gankit stats FOLDER --out ref.npz                  FID statistics (mu, sigma) for pytorch-fid, clean-fid
  gankit export RUN --format onnx --out g.onnx       the generator, for use without gankit
  gankit import stylegan2-ada ffhq.pkl --out RUN     NVIDIA's StyleGAN2-ADA networks, safely
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``gankit`` parser: each command group registers its own subcommands, in help order."""
    # Imported here, not at the top: some groups pull in torch, and `import gankit.cli` stays instant.
    from gankit import __version__
    from gankit.cli.classifier import add_classifier_commands
    from gankit.cli.data import add_data_group
    from gankit.cli.evaluate import add_evaluate_command
    from gankit.cli.imports import add_import_command
    from gankit.cli.options import OneLineParser
    from gankit.cli.project import add_project_command
    from gankit.cli.sample import add_export_command, add_sample_commands
    from gankit.cli.serve import add_serve_command
    from gankit.cli.stats import add_stats_command
    from gankit.cli.toy import add_toy_command
    from gankit.cli.train import add_recipes_command, add_train_command
    from gankit.cli.view import add_viz_commands

    parser = OneLineParser(
        prog="gankit", description=MAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_train_command(sub)  # train
    add_sample_commands(sub)  # sample, translate
    add_data_group(sub)  # data download|faces|lsun-export|validate|cifar-folders
    add_classifier_commands(sub)  # lr-find, evaluate-classifier
    add_export_command(sub)  # export
    add_evaluate_command(sub)  # evaluate
    add_stats_command(sub)  # stats
    add_viz_commands(sub)  # report, interpolate, arithmetic
    add_project_command(sub)  # project
    add_serve_command(sub)  # serve
    add_import_command(sub)  # import stylegan2-ada
    add_toy_command(sub)  # toy
    add_recipes_command(sub)  # recipes
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
