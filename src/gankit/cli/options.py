"""Command-line options shared by several subcommands (kept free of torch imports)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn


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


def number(
    kind: type = int,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], Any]:
    """An argparse ``type=`` for a finite int or float in a range, the one check every numeric
    option of every command uses: a bad value is argparse's one-line error (``argument --n:
    must be >= 1``), exit 2, never a traceback from deep inside the command."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if lo_open else '>='} {lo:g}")
        if hi is not None and (value >= hi if hi_open else value > hi):
            raise argparse.ArgumentTypeError(f"{text} must be {'<' if hi_open else '<='} {hi:g}")
        return value

    return parse


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (``gankit sample: error: ...``),
    exit 2, like every other gankit error; ``--help`` still prints the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
