"""One family of errors for everything a user can get wrong.

Each error carries a one-line message that names the file or option at fault and the fix. The CLI
prints ``error: <message>`` without a traceback and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GankitError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(GankitError):
    """An unknown key, a value of the wrong type, or an impossible combination of settings."""


class DataError(GankitError):
    """A dataset that is missing, empty, unreadable or not what the configuration expects."""


class CheckpointError(GankitError):
    """A checkpoint or run directory that is missing, truncated or from another model."""


class TrainingError(GankitError):
    """Training cannot go on (for example a loss became NaN)."""


def did_you_mean(value: str, choices: Iterable[str], prefix: str = "", cutoff: float = 0.6) -> str:
    """``"did you mean NAME? "`` for the choice closest to ``value`` (difflib), or ``""``."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=cutoff)
    return f"did you mean {prefix}{close[0]}? " if close else ""


def first_line(error: BaseException | str, limit: int = 160) -> str:
    """The first line of an error's message (or its type's name when empty), cut at ``limit``:
    what a one-line error quotes of a library's multi-line message."""
    text = str(error).strip()
    if not text:
        return type(error).__name__ if isinstance(error, BaseException) else ""
    return text.splitlines()[0][:limit]
