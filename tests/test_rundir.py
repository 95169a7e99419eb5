"""The run directory under faults: one writer, full disks, killed jobs, torn files, odd names.

Each test is one item of the "nothing lost, nothing mixed, no tracebacks" issue; the ones that
start processes use one thread per process and a hard timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.engine.rundir import LOCK_NAME
from gankit.errors import CheckpointError
from gankit.registries import build_config

from conftest import TINY, metrics_rows, write_random_images

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cfg_for(*extra):
    return build_config("dcgan-mnist", [*TINY, *extra])


def snapshot(run: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and "tb" not in p.parts}


def start_training(run: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gankit.cli", "train", "dcgan-mnist", *TINY, "train.steps=100000"]
    cmd += ["train.log_every=1", "train.threads=1", *extra, "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline:
        m = run / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("training did not start: " + proc.communicate()[1][-2000:])


def cli(*args: str) -> tuple[int, str]:
    p = subprocess.run(
        [sys.executable, "-m", "gankit.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    return p.returncode, p.stdout + p.stderr


# 1 and 10: one writer; stops by signal exit 130/143; a killed writer's lock is reported as stale.
def test_second_writer_is_refused_and_signals_exit_with_their_codes(tmp_path):
    run = tmp_path / "run"
    proc = start_training(run)
    try:
        code, out = cli("train", "--resume", str(run))
        assert code == 2 and "is being trained by PID" in out and str(proc.pid) in out, out
        assert "Traceback" not in out and len(out.strip().splitlines()) == 1
        code, out = cli("train", "dcgan-mnist", *TINY, "--out", str(run))
        assert code == 2 and "is being trained by PID" in out, out
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "--resume" in out + err
    assert not (run / LOCK_NAME).exists()  # released and removed on a clean exit

    step = load_checkpoint(latest_checkpoint(run))["step"]
    resumed = subprocess.Popen(
        [sys.executable, "-m", "gankit.cli", "train", "--resume", str(run), "train.steps=100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (run / LOCK_NAME).exists():
        time.sleep(0.1)
    time.sleep(1.0)
    resumed.kill()  # SIGKILL: no clean-up at all
    resumed.communicate(timeout=60)
    assert (run / LOCK_NAME).exists()  # its holder record is left behind
    code, out = cli("train", "--resume", str(run), f"train.steps={step + 2}")
    assert code == 0, out
    assert "ended without releasing its lock" in out
    assert "ended without releasing its lock" in (run / "run.log").read_text()


# 2: a changed data source is refused before anything in the run changes; so is changed data.
def test_resume_on_other_data_is_refused_and_changes_nothing(tmp_path, capsys):
    folder = tmp_path / "imgs"
    write_random_images(folder, n=12, size=16)
    run = tmp_path / "run"
    base = [*TINY, f"data.source=folder:{folder}", "data.workers=0", "data.limit=null"]
    assert main(["train", "dcgan-mnist", *base, "train.steps=2", "--out", str(run)]) == 0
    before = snapshot(run)
    for args in (["data.source=builtin:mnist"], ["train.steps=4"]):
        if args == ["train.steps=4"]:
            write_random_images(folder / "more", n=3, size=16, seed=9)  # the folder grew
        capsys.readouterr()
        assert main(["train", "--resume", str(run), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert ("data.source" in err) if "data.source" in args[0] else ("had 12 images" in err)
        assert snapshot(run) == before


# 3: no room, and a checkpoint that cannot be written, are one line each.
def test_full_disk_at_start_and_at_a_checkpoint(tmp_path, capsys, monkeypatch):
    from gankit.engine import checkpoint

    real = shutil.disk_usage
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: real(p)._replace(free=9 * 2**10))
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=2", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "free, but two checkpoints of this model need about" in err and "\n" not in err
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", real)

    calls = {"n": 0}
    save = torch.save

    def full(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] >= 2:
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64")
        return save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)
    run = tmp_path / "b"
    code = main(
        ["train", "dcgan-mnist", *TINY, "train.steps=4", "train.ckpt_every=2", "--out", str(run)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: could not write") and "\n" not in err, err
    assert "step-000002.pt is kept" in err and "MB free" in err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002.pt"]


# 4: orphan temporary checkpoints go; a resumed run's metrics equal an uninterrupted one's.
def test_resume_after_a_crash_trims_metrics_and_orphans(tmp_path):
    args = ("train.steps=8", "train.log_every=1", "train.ckpt_every=4", "train.keep_ckpts=5")
    straight = train(cfg_for(*args), tmp_path / "a")
    crashed = tmp_path / "b"
    shutil.copytree(straight, crashed)
    (crashed / "checkpoints" / "step-000008.pt").unlink()  # killed between steps 4 and 8 ...
    orphan = crashed / "checkpoints" / ".step-000008.pt.x1y2z3.tmp"
    orphan.write_bytes(b"\0" * 1000)  # ... while writing the step-8 checkpoint
    train(cfg_for(*args), crashed, resume=True)
    assert not orphan.exists()

    def scalar(rs):
        return [(r["step"], r["loss_d"], r["loss_g"]) for r in rs if "loss_d" in r]

    assert scalar(metrics_rows(crashed)) == scalar(metrics_rows(straight))
    assert [r["step"] for r in metrics_rows(crashed) if "loss_d" in r] == list(range(1, 9))


# 5: a name that is not valid UTF-8 does not stop training on its folder.
def test_unreadable_file_with_a_non_utf8_name(tmp_path):
    folder = tmp_path / "imgs"
    write_random_images(folder, n=8, size=16)
    bad = os.fsencode(folder) + b"/broken-\xff\xfe.png"
    with open(bad, "wb") as f:
        f.write(b"not an image")
    run = tmp_path / "run"
    code, out = cli(
        "train",
        "dcgan-mnist",
        *TINY,
        f"data.source=folder:{folder}",
        "data.workers=0",
        "data.limit=null",
        "train.steps=1",
        "--out",
        str(run),
    )
    assert code == 0 and "Traceback" not in out and "Logging error" not in out, out
    listed = (run / "data_skipped.txt").read_text(encoding="utf-8")
    assert "broken-\\udcff\\udcfe.png" in listed


# 6: a config.yaml that is not YAML.
def test_broken_config_yaml_on_resume_and_sample(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=1", "--out", str(run)]) == 0
    (run / "config.yaml").write_text("train: {steps: [1,\n  oops")
    for args in (["train", "--resume", str(run)], ["sample", str(run)]):
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "config.yaml is not valid YAML" in err and "\n" not in err


# 9: a truncated newest checkpoint names the one to use; --checkpoint resumes from it.
def test_resume_from_a_chosen_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*TINY, "train.steps=6", "train.ckpt_every=2", "train.keep_ckpts=5"]
    assert main(["train", "dcgan-mnist", *args, "--out", str(run)]) == 0
    newest = run / "checkpoints" / "step-000006.pt"
    newest.write_bytes(newest.read_bytes()[:3000])
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--resume {run} --checkpoint step-000004.pt" in err and "\n" not in err
    assert main(["train", "--resume", str(run), "--checkpoint", "step-000004.pt"]) == 0
    assert load_checkpoint(latest_checkpoint(run))["step"] == 6  # the resumed run's own step 6
    moved = list((run / "checkpoints").glob("superseded-*/step-000006.pt"))
    assert len(moved) == 1 and len(moved[0].read_bytes()) == 3000  # kept, not lost
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--checkpoint", "99"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


# 11: checkpoints are readable as the umask allows.
def test_checkpoint_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run = train(cfg_for("train.steps=1"), tmp_path / "run")
    finally:
        os.umask(old)
    assert (latest_checkpoint(run).stat().st_mode & 0o777) == 0o644


# 15: a non-finite value before any checkpoint says so.
def test_nan_at_the_first_step_says_no_checkpoint_yet(tmp_path, monkeypatch):
    from gankit.errors import TrainingError
    from gankit.tasks.gan import GANTask

    original = GANTask.step

    def poisoned(self, batches):
        out = original(self, batches)
        out["loss_d"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(GANTask, "step", poisoned)
    with pytest.raises(TrainingError, match="at step 1; no checkpoint had been written yet"):
        train(cfg_for("train.steps=3", "train.log_every=1"), tmp_path / "run")


def test_lock_is_exclusive_within_a_process_too(tmp_path):
    from gankit.engine.locks import LockedError, exclusive

    with exclusive(tmp_path / "l", lambda h: f"held by {h.get('pid')}") as stale:
        assert stale == {}
        with (
            pytest.raises(LockedError, match=f"held by {os.getpid()}"),
            exclusive(tmp_path / "l", lambda h: f"held by {h.get('pid')}"),
        ):
            pass
    assert not (tmp_path / "l").exists()


def test_write_failed_message_names_path_sizes_and_the_kept_one(tmp_path):
    from gankit.engine.checkpoint import write_failed

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step-000002.pt").write_bytes(b"x")
    e = write_failed(
        tmp_path / "checkpoints" / "step-000004.pt",
        {"w": torch.zeros(2**18)},
        OSError(28, "No space left on device"),
    )
    assert isinstance(e, CheckpointError)
    text = str(e)
    assert "No space left on device" in text and "1.0 MB needed" in text
    assert "step-000002.pt is kept" in text and "\n" not in text
