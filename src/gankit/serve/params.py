"""Reading a request's query string: every value checked, every mistake a one-line 400."""

from __future__ import annotations

import math
from collections.abc import Mapping

from gankit.errors import GankitError
from gankit.serve.uploads import RequestError

MAX_SEED = 2**32 - 1


class Query:
    """Typed access to query parameters; a missing value takes the default."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self.params = params

    def text(self, name: str, default: str | None = None, max_len: int = 200) -> str | None:
        value = self.params.get(name)
        if value is None or value == "":
            return default
        if len(value) > max_len:
            raise RequestError(400, f"{name}: at most {max_len} characters")
        return value

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        try:
            n = int(value)
        except ValueError:
            raise RequestError(400, f"{name}: {value[:40]!r} is not an integer") from None
        if not lo <= n <= hi:
            raise RequestError(400, f"{name}: {n} must be in {lo}..{hi}")
        return n

    def number(
        self, name: str, default: float | None, lo: float, hi: float, lo_open: bool = False
    ) -> float | None:
        value = self.text(name)
        if value is None:
            return default
        try:
            x = float(value)
        except ValueError:
            raise RequestError(400, f"{name}: {value[:40]!r} is not a number") from None
        if not math.isfinite(x) or x > hi or x < lo or (lo_open and x == lo):
            raise RequestError(
                400, f"{name}: {value[:40]} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
            )
        return x

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() not in ("0", "1", "true", "false"):
            raise RequestError(400, f"{name}: {value[:40]!r} must be true or false")
        return value.lower() in ("1", "true")

    def seeds(self, name: str, default: list[int], most: int = 8) -> list[int]:
        """Comma-separated seeds (``85,100,75``) or a range (``0-5``), at most ``most``."""
        value = self.text(name)
        if value is None:
            return default
        try:
            if "-" in value and "," not in value:
                a, b = (int(t) for t in value.split("-"))
                seeds = list(range(a, b + 1))
            else:
                seeds = [int(t) for t in value.split(",") if t.strip()]
        except ValueError:
            seeds = []
        if not 1 <= len(seeds) <= most or min(seeds) < 0 or max(seeds) > MAX_SEED:
            raise RequestError(
                400,
                f"{name}: give 1 to {most} seeds >= 0, comma-separated (1,2,3) or a range (0-5)",
            )
        return seeds

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise RequestError(
                400, f"{name}: {str(value)[:40]!r} is not one of {', '.join(choices)}"
            )
        return str(value)


def class_label(q: Query, classes: list[str], required: bool = False) -> int | None:
    """The ``class`` parameter as a label of the run (an index or a name), or None."""
    value = q.text("class")
    if value is None:
        return 0 if required and classes else None
    if not classes:
        raise RequestError(400, "class: this run is unconditional")
    if value in classes:
        return classes.index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    raise RequestError(
        400, f"class: {value[:40]!r} is not a class of this run (0..{len(classes) - 1})"
    )


def one_line(error: BaseException) -> str:
    """An error as the one line the page shows."""
    from gankit.errors import first_line

    text = first_line(error, 300)
    return text if isinstance(error, GankitError) else f"{type(error).__name__}: {text}"
