"""Files small enough to read in one sitting, functions that do one thing: no file in src longer
than 400 lines, no function longer than 60 (docs/design.md, "Layout", names the exception)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"
LONG_FILES = {"engine/distributed.py"}  # every torchrun primitive on one page (design.md)


def test_no_file_is_longer_than_400_lines():
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert set(long) <= LONG_FILES, long


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(SRC)}:{node.name} ({n} lines)")
    assert not long, long
