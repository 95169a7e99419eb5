"""Command-line options shared by several subcommands (kept free of torch imports)."""

from __future__ import annotations

import argparse


def add_ema_option(parser: argparse.ArgumentParser) -> None:
    """``--ema/--no-ema`` for every command that samples a run; resolved by
    :func:`gankit.inference.sampling.resolve_ema` (default: the EMA generator when the run has one)."""
    parser.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sample with the EMA generator (default: when the run has one, as its previews "
        "do); --no-ema for the raw generator",
    )
