import pytest
import torch

from gankit.engine.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from gankit.errors import CheckpointError


def test_save_load_round_trip_and_no_temp_files(tmp_path):
    p = save_checkpoint({"w": torch.arange(5), "step": 3}, tmp_path / "c" / "step-000003.pt")
    state = load_checkpoint(p)
    assert torch.equal(state["w"], torch.arange(5)) and state["step"] == 3
    assert [f.name for f in p.parent.iterdir()] == ["step-000003.pt"]


def test_failed_save_leaves_old_file_and_no_temp(tmp_path):
    p = save_checkpoint({"v": 1}, tmp_path / "step-000001.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint({"v": Unpicklable()}, p)
    assert load_checkpoint(p)["v"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["step-000001.pt"]


def test_truncated_and_foreign_files(tmp_path):
    p = save_checkpoint({"w": torch.randn(1000)}, tmp_path / "step-000001.pt")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(p)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a gankit checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_latest_and_prune(tmp_path):
    for s in (5, 20, 100):
        save_checkpoint({}, tmp_path / "run" / "checkpoints" / f"step-{s:06d}.pt")
    assert latest_checkpoint(tmp_path / "run").name == "step-000100.pt"
    prune_checkpoints(tmp_path / "run" / "checkpoints", 2)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == [
        "step-000020.pt",
        "step-000100.pt",
    ]
    with pytest.raises(CheckpointError, match="no checkpoints"):
        latest_checkpoint(tmp_path)
