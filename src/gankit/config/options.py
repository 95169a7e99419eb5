"""A task option's default, check and structural flag, declared together on its field.

    @dataclass
    class GanOptions:
        d_steps: int = option(1, check=positive)
        ema: float = option(0.0, check=in_range(0, 1, hi_open=True))
        noise: Literal["normal", "uniform"] = option("normal", structural=True)

:func:`check_options` runs every field's check and raises one line naming the key, its value and
what it must be; :func:`structural_keys` lists the fields a resumed run may not change. A check
that reads several fields (``gan.minibatch`` and ``gan.mbstd`` exclude each other) stays in the
task's ``validate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any

from gankit.errors import ConfigError


@dataclass(frozen=True)
class Check:
    """A condition on one value and how to say it (``"must be > 0"``)."""

    ok: Callable[[Any], bool]
    needs: str


def positive(value: Any) -> bool:
    return value > 0


def non_negative(value: Any) -> bool:
    return value >= 0


def in_range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Check:
    """``lo <= value <= hi``, either end open."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"

    def ok(v: Any) -> bool:
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    return Check(ok, f"must be in {left}{lo:g}, {hi:g}{right}")


_NAMED = {positive: "must be > 0", non_negative: "must be >= 0"}


def option(
    default: Any = MISSING,
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    check: Check | Callable[[Any], bool] | None = None,
    structural: bool = False,
    hint: str = "",
) -> Any:
    """A dataclass field with its check (``positive``, ``non_negative``, :func:`in_range` or a
    :class:`Check`; None values are never checked) and whether a resumed run may change it.
    ``hint`` is appended to the error (an example value, what 0 means)."""
    if check is not None and not isinstance(check, Check):
        check = Check(check, _NAMED.get(check, "is not allowed"))
    meta = {"check": check, "structural": structural, "hint": hint}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_options(obj: Any, prefix: str) -> None:
    """Run the checks declared on ``obj``'s fields; a ConfigError names ``prefix.key=value``."""
    for f in dataclasses.fields(obj):
        check: Check | None = f.metadata.get("check")
        value = getattr(obj, f.name)
        if check is None or value is None:
            continue
        if not check.ok(value):
            hint = f.metadata.get("hint")
            raise ConfigError(
                f"{prefix}.{f.name}={value} {check.needs}" + (f"{hint}" if hint else "")
            )


def structural_keys(prefix: str, options: type | None) -> tuple[str, ...]:
    """``prefix.key`` for every field of ``options`` declared ``structural``."""
    if options is None:
        return ()
    return tuple(
        f"{prefix}.{f.name}" for f in dataclasses.fields(options) if f.metadata.get("structural")
    )
