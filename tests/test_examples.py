"""The notebooks in examples/ run top to bottom (tiny settings) and their cells' asserts hold.

They are stored without outputs; nbclient executes them in a fresh kernel in a temporary folder
with ``GANKIT_EXAMPLE_TINY=1``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INCEPTION = (
    Path(__file__).resolve().parents[2] / "shared/datasets/inception/inception-2015-12-05.pt"
)


@pytest.mark.parametrize("name", ["quickstart.ipynb", "cs231n.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("GANKIT_EXAMPLE_TINY", "1")
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if INCEPTION.is_file():
        monkeypatch.setenv("GANKIT_INCEPTION", str(INCEPTION))
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, when a cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(
        o.get("output_type") == "execute_result" and "image/png" in o.get("data", {})
        for o in outputs
    )


@pytest.mark.parametrize("name", ["quickstart.ipynb", "cs231n.ipynb"])
def test_notebooks_are_stored_without_outputs(name):
    nb = json.loads((EXAMPLES / name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None
    assert os.path.getsize(EXAMPLES / name) < 50_000
