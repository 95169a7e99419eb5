"""torchrun: N processes give one process's answer, survive a lost worker and a SIGTERM, agree.

The multi-process tests start real ``torchrun --standalone`` jobs of two gloo processes on the
CPU (one thread each), every one under a hard timeout that kills the whole process group, so a
hang fails the test instead of eating the CI budget.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_classifier import write_class_folders
from torch import nn

from gankit.config import DataConfig
from gankit.data.stream import LoaderStream, MemoryStream
from gankit.engine import distributed
from gankit.engine.checkpoint import list_checkpoints, load_checkpoint
from gankit.errors import ConfigError

from conftest import TINY, TINY_CYCLEGAN, metrics_rows, write_domains

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch build has no torch.distributed"
)

TIMEOUT = 120  # seconds per torchrun job: a hang fails, it does not wait for CI's limit

GAN = [
    *(a for a in TINY if not a.startswith("train.batch_size=")),
    "train.batch_size=8",  # two ranks of 4
    "train.sync_bn=true",  # the DCGAN nets have BatchNorm: global statistics, as one process
    "gan.ema=0.9",
    "gan.augment=[translation, flip]",  # per-sample draws: each rank takes its rows
]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src}


def torchrun(
    args: list[str], cwd: Path, nproc: int = 2, extra: tuple[str, ...] = (), module: bool = True
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "--monitor-interval=0.2",
        *extra,
        *(["-m", "gankit"] if module else []),
        *args,
    ]
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, killed whole on a timeout
    )


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish within {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


def run_ok(args: list[str], cwd: Path, **kw) -> str:
    code, out = finish(torchrun(args, cwd, **kw))
    assert code == 0, out[-3000:]
    return out


def one_process(args: list[str], cwd: Path) -> None:
    cmd = [sys.executable, "-m", "gankit", *args]
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]


def final(run: Path) -> dict:
    return load_checkpoint(list_checkpoints(run / "checkpoints")[-1])


def assert_same_weights(a: dict, b: dict, rtol: float = 1e-5) -> None:
    """Every floating tensor of every network and EMA agrees to ``rtol`` (relative to its size)."""
    for group in ("nets", "ema"):
        assert a["parts"][group].keys() == b["parts"][group].keys()
        for part, state in a["parts"][group].items():
            for name, t in state.items():
                u = b["parts"][group][part][name]
                if t.is_floating_point():
                    err = (t - u).abs().max() / t.abs().max().clamp_min(1e-12)
                    assert err <= rtol, f"{group}.{part}.{name} differs by {err:.2e} relative"
                else:
                    assert torch.equal(t, u), f"{group}.{part}.{name}"


# --- one process's answer ----------------------------------------------------------------------


def test_gan_on_two_processes_equals_one_process(tmp_path):
    """20 steps of a DCGAN with BatchNorm, an EMA and DiffAugment: 2 ranks × 4 = 1 rank × 8."""
    args = ["train", "dcgan-mnist", *GAN, "train.steps=20"]
    out = run_ok([*args, "--out", str(tmp_path / "two")], tmp_path)
    one_process([*args, "--out", str(tmp_path / "one")], tmp_path)
    two, one = final(tmp_path / "two"), final(tmp_path / "one")
    assert two["step"] == one["step"] == 20
    assert_same_weights(two, one)
    assert two["streams"]["real"]["pos"] == one["streams"]["real"]["pos"] == 32
    # One writer: one line per logged step, the global batch logged, the path printed once.
    rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert sum('"step": 20, "loss_d"' in r for r in rows) == 1
    assert '"world": 2, "per_rank_batch": 4' in (tmp_path / "two" / "metrics.jsonl").read_text()
    assert out.count("run directory:") == 1


def test_classifier_on_two_processes_equals_one_process(tmp_path):
    data = write_class_folders(tmp_path / "data", n=8, size=12)
    args = [
        "train",
        "darknet-cifar10-cpu",
        f"data.source=folder:{data}",
        "data.image_size=12",
        "data.workers=0",
        "data.in_memory=no",  # the DataLoader path: a sharded sampler
        "nets.net.nf=4",
        "nets.net.num_blocks=[1, 1]",
        "train.epochs=null",
        "train.steps=12",
        "train.batch_size=8",
        "train.progress=false",
        "train.device=cpu",
        "train.sync_bn=true",
        "classifier.eval_every=6",
    ]
    run_ok([*args, "--out", str(tmp_path / "two")], tmp_path)
    one_process([*args, "--out", str(tmp_path / "one")], tmp_path)
    assert_same_weights(final(tmp_path / "two"), final(tmp_path / "one"))
    text = (tmp_path / "two" / "metrics.jsonl").read_text()
    assert text.count('"test_acc"') == 2  # rank 0 evaluated at steps 6 and 12, once each


def test_cyclegan_trains_under_torchrun(tmp_path):
    """A translation task (four networks, two optimizers, image pools) trains on two ranks,
    which agree (a checkpoint checks the ranks' networks against each other)."""

    root = write_domains(tmp_path / "domains", n=8)
    tiny = [a for a in TINY_CYCLEGAN if not a.startswith("train.batch_size")]
    args = ["train", "cyclegan-mnistm", *tiny, f"data.root={root}", "train.batch_size=4"]
    run_ok([*args, "--out", str(tmp_path / "run")], tmp_path)
    assert final(tmp_path / "run")["step"] == 4
    assert list((tmp_path / "run" / "samples").glob("step-*.png"))


# --- lost workers and signals ------------------------------------------------------------------

LONG = [*GAN, "train.steps=60", "train.ckpt_every=10", "train.keep_ckpts=10"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """An uninterrupted two-process run of ``LONG``: where every interrupted one must end."""
    where = tmp_path_factory.mktemp("straight")
    run_ok(["train", "dcgan-mnist", *LONG, "--out", str(where / "run")], where)
    return final(where / "run")


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{path} never appeared:\n{proc.communicate()[0][-3000:]}")
        time.sleep(0.01)


def _worker(parent: int, rank: int) -> int:
    """The pid of torchrun's worker process of ``rank`` (read from /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            env = (stat.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == parent and f"RANK={rank}".encode() in env:
            return int(stat.parent.name)
    raise AssertionError(f"no worker of rank {rank} under pid {parent}")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_killed_worker_is_restarted_and_the_run_ends_where_a_straight_one_does(
    tmp_path, straight
):
    run = tmp_path / "run"
    proc = torchrun(
        ["train", "dcgan-mnist", *LONG, "--out", str(run)], tmp_path, extra=("--max-restarts=1",)
    )
    _wait_for(run / "checkpoints" / "step-000020.pt", proc)
    os.kill(_worker(proc.pid, 1), signal.SIGKILL)
    code, out = finish(proc)
    assert code == 0, out[-3000:]
    assert "torchrun restart 1: resuming" in out
    for ckpt in list_checkpoints(run / "checkpoints"):
        load_checkpoint(ckpt)  # none is corrupt
    assert_same_weights(final(run), straight)
    assert final(run)["step"] == 60


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_sigterm_stops_every_rank_at_one_step_and_resume_ends_where_a_straight_run_does(
    tmp_path, straight
):
    run = tmp_path / "run"
    proc = torchrun(["train", "dcgan-mnist", *LONG, "--out", str(run)], tmp_path)
    _wait_for(run / "checkpoints" / "step-000020.pt", proc)
    os.kill(proc.pid, signal.SIGTERM)
    finish(proc)
    stopped = final(run)
    assert 20 <= stopped["step"] < 60, "the run should have stopped early"
    assert "stopped by SIGTERM at step" in (run / "run.log").read_text()
    # Resume in one process (the checkpoint does not depend on the number of processes).
    one_process(["train", "--resume", str(run)], tmp_path)
    assert final(run)["step"] == 60
    assert_same_weights(final(run), straight)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_sigterm_on_another_rank_is_reported_as_sigterm_when_train_minutes_is_set(tmp_path):
    # rank 0 (the writer) is not signalled and has time left: it must not say "train.minutes"
    run = tmp_path / "run"
    argv = ["train", "dcgan-mnist", *LONG, "train.minutes=30", "--out", str(run)]
    proc = torchrun(argv, tmp_path)
    _wait_for(run / "checkpoints" / "step-000020.pt", proc)
    os.kill(_worker(proc.pid, 1), signal.SIGTERM)
    finish(proc)
    log = (run / "run.log").read_text()
    assert final(run)["step"] < 60, "the run should have stopped early"
    assert "stopped by SIGTERM at step" in log and "train.minutes=30 reached" not in log


# --- evaluation split over ranks ---------------------------------------------------------------

EVAL_SCRIPT = """
import sys, torch
from torch import nn
from gankit.engine import distributed
from gankit.evaluation.metrics.features import ModuleFeatures
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.metrics.fid import compute_fid

distributed.start("gloo", "cpu", 60)
torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.Tanh(), nn.Linear(16, 4))
ext = ModuleFeatures(net, lambda x: x.float() / 255, batch_size=7, progress=False)
ext.split = distributed.active()
g = torch.Generator().manual_seed(1)
real = torch.randint(0, 256, (101, 3, 8, 8), dtype=torch.uint8, generator=g)
fake = (real.float() * 0.7).to(torch.uint8)
ref = reference_features(ext, "test-ref", len(real), lambda: real, cache=sys.argv[1])
fid = compute_fid(ref, ext(fake))["fid"]
assert ext(real[:1]).shape == (1, ref.shape[1])  # fewer images than ranks: a rank with none gathers too
if distributed.world().is_main:
    print(f"FID={float(fid)!r}")
distributed.stop()
"""


def test_fid_of_two_processes_equals_one_process(tmp_path):
    script = tmp_path / "fid.py"
    script.write_text(EVAL_SCRIPT)
    out = run_ok([str(script), str(tmp_path / "cache2")], tmp_path, module=False)
    two = float(out.split("FID=")[1].split()[0])
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "cache1")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    one = float(done.stdout.split("FID=")[1].split()[0])
    assert one > 0 and abs(two - one) / one < 1e-6
    assert len(list((tmp_path / "cache2").glob("*.npy"))) == 1  # rank 0 alone wrote the cache


def test_gankit_evaluate_under_torchrun_gives_one_process_scores(tmp_path, monkeypatch):
    """``torchrun -m gankit evaluate`` (features split over two ranks, rank 0 writes) scores a run
    as one process does, and training with ``eval.every`` on two ranks logs it once."""
    import json

    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    clf, gan = tmp_path / "clf", tmp_path / "gan"
    one_process(
        [
            "train",
            "classifier-mnist",
            "data.source=builtin:mnist",
            "data.image_size=16",
            "data.fit=resize",
            "data.limit=2000",
            "nets.net.nf=8",
            "classifier.eval_every=0",
            "train.epochs=null",
            "train.steps=20",
            "train.batch_size=32",
            "train.progress=false",
            "train.device=cpu",
            "--out",
            str(clf),
        ],
        tmp_path,
    )
    evaluation = [f"eval.features=classifier:{clf}", "eval.n=64", "eval.every=5"]
    run_ok(
        ["train", "dcgan-mnist", *GAN, "train.steps=10", *evaluation, "--out", str(gan)], tmp_path
    )
    logged = [r for r in metrics_rows(gan) if "eval_fid" in r]
    assert [r["step"] for r in logged] == [5, 10]
    args = [
        "evaluate",
        str(gan),
        "--ref",
        "builtin:mnist",
        "--n-samples",
        "90",
        "--metrics",
        "fid,kid",
        "--features",
        f"classifier:{clf}",
    ]
    run_ok([*args, "--out", str(tmp_path / "two")], tmp_path)
    one_process([*args, "--out", str(tmp_path / "one")], tmp_path)
    two = json.loads(next((tmp_path / "two").glob("evaluation-*.json")).read_text())["metrics"]
    one = json.loads(next((tmp_path / "one").glob("evaluation-*.json")).read_text())["metrics"]
    assert abs(two["fid"]["fid"] - one["fid"]["fid"]) / one["fid"]["fid"] < 1e-6
    assert abs(two["kid"]["kid"] - one["kid"]["kid"]) <= 1e-6 * abs(one["kid"]["kid"]) + 1e-9


# --- bad set-ups: one line, no hang ------------------------------------------------------------


def test_a_global_batch_that_does_not_split_is_refused_by_every_rank(tmp_path):
    code, out = finish(
        torchrun(["train", "dcgan-mnist", *GAN, "train.batch_size=5", "train.steps=2"], tmp_path)
    )
    assert code != 0
    assert "train.batch_size=5 is the global batch and does not split over 2 processes" in out
    assert out.count("error: train.batch_size=5") == 2  # one line from each rank
    assert "gankit/" not in "".join(
        line for line in out.splitlines() if line.startswith('  File "')
    )


def _fake_world(monkeypatch, **env: str) -> None:
    for k in ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def test_nccl_on_a_machine_without_cuda_is_a_one_line_error(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: NCCL is a valid choice here")
    _fake_world(monkeypatch, RANK="0", WORLD_SIZE="2")
    with pytest.raises(ConfigError, match="train.dist_backend=nccl needs CUDA GPUs"):
        distributed.start("nccl", "cpu", 5)
    assert not distributed.active()


def test_an_unreachable_rendezvous_store_is_a_bounded_wait_then_a_message(monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _fake_world(
        monkeypatch,
        RANK="1",
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="1",  # "another machine": the TCP store, not a local file
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="cannot reach the rendezvous store at 127.0.0.1"):
        distributed.start("gloo", "cpu", 2)
    assert time.monotonic() - t0 < 30
    assert not distributed.active()


# --- pieces, in one process --------------------------------------------------------------------


@pytest.fixture
def as_rank(monkeypatch):
    def become(rank: int, size: int) -> None:
        monkeypatch.setattr(distributed, "_WORLD", distributed.World(rank=rank, size=size))

    return become


def test_rank_rows_are_the_ranks_slices_of_one_global_draw(as_rank):
    draw = lambda k: torch.randn(k, 3, generator=torch.Generator().manual_seed(5))  # noqa: E731
    whole = draw(8)
    parts = []
    for r in range(2):
        as_rank(r, 2)
        parts.append(distributed.rank_rows(draw, 4))
    assert torch.equal(torch.cat(parts), whole)


@pytest.mark.parametrize("kind", ["memory", "loader"])
def test_each_rank_streams_its_slice_of_every_global_batch(kind, as_rank):
    images = torch.arange(24, dtype=torch.uint8).view(24, 1, 1, 1).expand(24, 1, 4, 4).clone()
    cfg = DataConfig(image_size=4, flip=True)

    def batches(rank: int, size: int) -> list[torch.Tensor]:
        as_rank(rank, size)
        if kind == "memory":
            s = MemoryStream(images, cfg, 8, torch.device("cpu"), seed=3)
        else:
            s = LoaderStream(_Images(images), cfg, 8, torch.device("cpu"), seed=3)
        return [next(s) for _ in range(5)]  # over an epoch boundary (24 images = 3 batches)

    whole = batches(0, 1)
    halves = [batches(r, 2) for r in range(2)]
    for k in range(5):
        assert torch.equal(torch.cat([halves[0][k], halves[1][k]]), whole[k])


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(as_rank):
    as_rank(0, 3)
    with pytest.raises(ConfigError, match="train.batch_size=8 is the global batch"):
        MemoryStream(
            torch.zeros(16, 1, 4, 4, dtype=torch.uint8),
            DataConfig(image_size=4),
            8,
            torch.device("cpu"),
            0,
        )


def test_sync_batchnorm_keeps_the_parameters_and_acts_as_batchnorm_in_one_process():
    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(3)))
    weight = net[1].weight
    ref = nn.BatchNorm2d(3)
    ref.load_state_dict(net[1].state_dict())
    keys = net.state_dict().keys()
    distributed.convert_sync_batchnorm(net)
    assert isinstance(net[1], distributed.SyncBatchNorm)
    assert isinstance(net[2][0], distributed.SyncBatchNorm)
    assert net[1].weight is weight and net.state_dict().keys() == keys
    x = torch.randn(5, 3, 4, 4)
    assert torch.allclose(net[1](x), ref(x))
    assert torch.allclose(net[1].running_var, ref.running_var)
    net.eval()
    assert net[2][0](torch.randn(4, 3)).shape == (4, 3)  # a 1-d BatchNorm still takes (N, C)
