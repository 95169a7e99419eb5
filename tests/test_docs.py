"""The examples in docs/api.md and the README's "From Python" block run as written."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_api_page_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    result = doctest.testfile(
        str(ROOT / "docs" / "api.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 10 and result.failed == 0


def test_readme_from_python_block(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(block.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    # The same code, shorter: a tiny network and a few steps instead of the default job's.
    tiny = ", overrides=['nets.G.nz=8', 'data.limit=128', 'train.batch_size=16', 'train.progress=false']"
    code = block.replace('train={"steps": 300}', 'train={"steps": 3}' + tiny)
    assert code != block
    if "evaluate" in code:
        pytest.importorskip("onnxruntime")
    exec(compile(code, "README.md", "exec"), {})
