"""One family of errors for everything a user can get wrong.

Each error carries a one-line message that names the file or option at fault and the fix. The CLI
prints ``error: <message>`` without a traceback and exits with status 2.
"""


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
