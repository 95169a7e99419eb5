"""Writing an imported run directory safely: the ``--out`` rules and the final move into place,
shared by every ``gankit import`` format (:mod:`gankit.compat.stylegan2_import`,
:mod:`gankit.compat.translation_import`)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from gankit.engine.locks import exclusive
from gankit.engine.rundir import LOCK_NAME, run_busy
from gankit.errors import ConfigError


def check_out(out: Path, force: bool) -> None:
    """``--out``: new, an empty folder, or (``force``) a run directory to replace."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file: give a directory for the run")
    if not any(out.iterdir()):
        return
    if not force:
        raise ConfigError(
            f"--out {out} exists and is not empty: choose another directory, or add --force to "
            "replace the run in it"
        )
    if not (out / "config.yaml").is_file():
        raise ConfigError(
            f"--out {out} is not a gankit run directory (no config.yaml): --force replaces a run, "
            "never other files; choose another directory"
        )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def move_into_place(tmp: Path, out: Path, force: bool) -> None:
    check_out(out, force)  # again: it may have changed while the snapshot was read
    if out.is_dir() and any(out.iterdir()):  # a run, replaced with force, unless it trains
        with exclusive(out / LOCK_NAME, lambda holder: run_busy(out, holder)):
            shutil.rmtree(out)
            os.replace(tmp, out)
        return
    if out.is_dir():
        out.rmdir()
    os.replace(tmp, out)
