"""Distributed training on this machine, and the numbers a scaling model needs (prints JSON).

For DCGAN-64 (the ``dcgan`` recipe: ngf = ndf = 64, 64×64 RGB) and the classifier
(``darknet-cifar10-cpu``), in one run, nothing else running:

1. gankit's loop in **one process × 2 threads** against **two processes × 1 thread**
   (``torchrun --standalone --nproc_per_node=2``, gloo), same global batch, images/s from
   ``metrics.jsonl`` after the first log interval;
2. the **bytes all-reduced per training step** and the number of all-reduce calls, counted in the
   two-process run by wrapping ``torch.distributed.all_reduce`` (gradients, BatchNorm buffers,
   logged values, the stop flag);
3. for DCGAN-64, the **gradient synchronisation** on its own: one GAN step of the plain PyTorch
   DCGAN-example loop on two processes with (a) no synchronisation (compute only), (b) gankit's
   flattened all-reduce per phase (:func:`gankit.engine.distributed.average_gradients`), (c) one DDP
   wrapper per network (``broadcast_buffers=False``, D frozen in the G phase as stylegan2-ada).

    python benchmarks/ddp_scaling.py [--steps 16] [--dcgan-batch 32]

Internally it starts itself under torchrun with ``--worker`` (do not call that by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.tasks.classifier import ClassifierOptions

HERE = Path(__file__).resolve()


def _env(threads: int) -> dict[str, str]:
    src = str(HERE.parents[1] / "src")
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": src}


def _torchrun(args: list[str], timeout: float = 900) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*cmd, str(HERE), "--worker", *args],
        env=_env(1),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        raise SystemExit(f"torchrun failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def _img_per_s(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "img_per_s" in r]
    return statistics.mean(r["img_per_s"] for r in rows[1:])


def _train_args(net: str, data: Path, steps: int, dcgan_batch: int) -> list[str]:
    common = [
        f"train.steps={steps}",
        f"train.log_every={steps // 4}",
        "train.progress=false",
        f"train.sample_every={10**9}",
        f"train.ckpt_every={10**9}",
        "train.device=cpu",
        "train.sync_bn=true",
    ]
    if net == "dcgan64":
        return ["dcgan", f"data.source=folder:{data}", f"train.batch_size={dcgan_batch}", *common]
    return [
        "darknet-cifar10-cpu",
        f"data.source=folder:{data}",
        "data.workers=0",
        "train.epochs=null",
        "classifier.eval_every=0",
        *common,
    ]


def _write_images(root: Path, n: int, size: int, classes: int = 0) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / "train" / f"c{i % classes}" if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(
            folder / f"{i:05d}.png"
        )
    if classes:  # the classifier reads a test split too
        for c in range(classes):
            (root / "test" / f"c{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(
                root / "test" / f"c{c}" / "0.png"
            )
    return root


# --- worker mode (under torchrun) --------------------------------------------------------------


def _count_all_reduce() -> dict:
    import torch.distributed as dist

    counts = {"calls": 0, "bytes": 0}
    real = dist.all_reduce

    def counted(tensor, *a, **kw):
        counts["calls"] += 1
        counts["bytes"] += tensor.numel() * tensor.element_size()
        return real(tensor, *a, **kw)

    dist.all_reduce = counted
    return counts


def worker_train(out: Path, args: list[str]) -> None:
    counts = _count_all_reduce()
    from gankit.cli import main

    code = main(["train", *args, "--out", str(out / "run")])
    if os.environ.get("RANK") == "0":
        (out / "counts.json").write_text(json.dumps(counts))
    raise SystemExit(code)


def worker_sync(out: Path, method: str, steps: int, batch: int) -> None:
    """One GAN step of the plain DCGAN-example loop per iteration, gradients synchronised by
    ``method``; rank 0 writes the median seconds per step."""
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    from gankit.engine import distributed
    from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator
    from gankit.nets.init import init_weights

    distributed.start("gloo", "cpu", 300)
    torch.manual_seed(0)
    G = init_weights(DCGANGenerator(64, 100, 64, 3))
    D = init_weights(DCGANDiscriminator(64, 64, 3))
    distributed.broadcast_modules([G, D])
    g, d = G, D
    if method == "ddp":
        g, d = DDP(G, broadcast_buffers=False), DDP(D, broadcast_buffers=False)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    local = batch // dist.get_world_size()
    real = torch.rand(local, 3, 64, 64) * 2 - 1
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        z = torch.randn(local, 100, 1, 1)
        fake = g(z)
        opt_d.zero_grad(set_to_none=True)
        r, f = d(real), d(fake.detach())
        loss_d = bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))
        loss_d.backward()
        if method == "flat":
            distributed.average_gradients(D.parameters())
        opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        if method == "ddp":
            with d.no_sync():  # D is frozen: no reduction may wait on it
                logits = d(fake)
        else:
            logits = d(fake)
        loss_g = bce(logits, torch.ones_like(logits))
        loss_g.backward()
        if method == "flat":
            distributed.average_gradients(G.parameters())
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)
        if i >= 2:  # warm-up excluded
            times.append(time.perf_counter() - t0)
    record = {"s_per_step": statistics.median(times)}
    if method == "none":  # the all-reduce itself: G's and D's gradients as one buffer
        flat = torch.zeros(sum(p.numel() for p in [*G.parameters(), *D.parameters()]))
        dist.all_reduce(flat)
        t0 = time.perf_counter()
        for _ in range(5):
            dist.all_reduce(flat)
        seconds = (time.perf_counter() - t0) / 5
        record.update(all_reduce_mb=flat.numel() * 4 / 1e6, all_reduce_s=seconds)
    if dist.get_rank() == 0:
        (out / f"sync-{method}.json").write_text(json.dumps(record))
    distributed.stop()


# --- the run -----------------------------------------------------------------------------------


def step_flops(recipe: str, overrides: list[str], batch: int) -> dict:
    """FLOPs of one training step of ``recipe`` per image (``torch.utils.flop_counter``, forward and
    backward of every network, on random inputs) and the bytes of its gradients."""
    from torch.utils.flop_counter import FlopCounterMode

    from gankit.engine.runtime import Runtime
    from gankit.registries import build_config, task_class
    from gankit.tasks.base import Streams

    cfg = build_config(recipe, [*overrides, f"train.batch_size={batch}", "train.device=cpu"])
    task_cls = task_class(cfg.task)
    rt = Runtime.from_config(cfg.train)

    def images(spec, n: int):
        size, ch = spec.data.image_size, spec.data.channels
        if spec.labels:
            x = torch.randint(0, 256, (n, ch, size, size), dtype=torch.uint8)
            return x, torch.randint(0, 10, (n,))
        return torch.rand(n, ch, size, size) * 2 - 1

    def stream(spec):
        while True:
            yield images(spec, batch)

    specs = task_cls.streams(cfg)
    if cfg.task == "classifier":
        cfg.section(ClassifierOptions).classes = [str(i) for i in range(10)]
    streams = Streams({k: stream(v) for k, v in specs.items()})
    first = {k: images(v, max(batch, cfg.train.n_preview)) for k, v in specs.items()}
    task = task_cls(cfg, rt, first)
    task.step(streams)  # warm-up (lazy parts, first-step branches)
    with FlopCounterMode(display=False) as fc:
        task.step(streams)
    params = sum(
        p.numel() for o in task.parts.optims.values() for g in o.param_groups for p in g["params"]
    )
    return {"flops_per_image": fc.get_total_flops() / batch, "gradient_bytes": 4 * params}


def _params(run: Path) -> dict[str, int]:
    """Trained parameters per network of a finished run (its checkpoint, BatchNorm statistics
    excluded)."""
    from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint

    nets = load_checkpoint(latest_checkpoint(run))["parts"]["nets"]
    skip = ("running_mean", "running_var", "num_batches_tracked")
    return {
        k: sum(t.numel() for n, t in sd.items() if not n.endswith(skip)) for k, sd in nets.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--dcgan-batch", type=int, default=32)
    ap.add_argument("--worker", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if a.worker:
        out, kind, *rest = a.worker
        if kind == "train":
            worker_train(Path(out), rest)
        else:
            worker_sync(Path(out), rest[0], int(rest[1]), int(rest[2]))
        return

    result: dict = {
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "steps": a.steps,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        datas = {
            "dcgan64": _write_images(tmp / "faces", 512, 64),
            "classifier": _write_images(tmp / "classes", 1280, 32, classes=10),
        }
        for net, data in datas.items():
            args = _train_args(net, data, a.steps, a.dcgan_batch)
            one = tmp / f"{net}-one"
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "gankit",
                    "train",
                    *args,
                    "train.threads=2",
                    "--out",
                    str(one),
                ],
                env=_env(2),
                check=True,
                capture_output=True,
                timeout=1800,
            )
            t_one = time.perf_counter() - t0
            two = tmp / f"{net}-two"
            two.mkdir()
            t0 = time.perf_counter()
            _torchrun([str(two), "train", *args, "train.threads=1"])
            t_two = time.perf_counter() - t0
            counts = json.loads((two / "counts.json").read_text())
            rate_one, rate_two = _img_per_s(one), _img_per_s(two / "run")
            result[net] = {
                "parameters": _params(one),
                "global_batch": a.dcgan_batch if net == "dcgan64" else 128,
                "img_per_s_1proc_2threads": round(rate_one, 2),
                "img_per_s_2procs_1thread": round(rate_two, 2),
                "ratio_2procs_over_1proc": round(rate_two / rate_one, 3),
                "wall_s_1proc": round(t_one, 1),
                "wall_s_2procs": round(t_two, 1),
                "all_reduce_bytes_per_step": counts["bytes"] // a.steps,
                "all_reduce_calls_per_step": round(counts["calls"] / a.steps, 1),
            }
            print(json.dumps({net: result[net]}), file=sys.stderr)
        sync = {}
        for method in ("none", "flat", "ddp"):
            _torchrun([str(tmp), "sync", method, str(a.steps), str(a.dcgan_batch)])
            sync[method] = json.loads((tmp / f"sync-{method}.json").read_text())["s_per_step"]
        gloo = json.loads((tmp / "sync-none.json").read_text())
        result["gloo_all_reduce"] = {
            "mb": round(gloo["all_reduce_mb"], 1),
            "seconds": round(gloo["all_reduce_s"], 4),
            "gb_per_s": round(gloo["all_reduce_mb"] / 1e3 / gloo["all_reduce_s"], 2),
        }
        result["dcgan64_sync_s_per_step"] = {k: round(v, 4) for k, v in sync.items()}
        result["dcgan64_sync_overhead"] = {
            k: round(sync[k] / sync["none"] - 1, 4) for k in ("flat", "ddp")
        }
    # Inputs of the scaling model in docs/guides/distributed.md (one step, counted on the CPU).
    with tempfile.TemporaryDirectory() as tmp:
        for side in ("trainA", "trainB"):
            _write_images(Path(tmp) / side, 2, 256)
        result["model_inputs"] = {
            "dcgan64": step_flops("dcgan", ["data.source=builtin:mnist"], 4),
            "cyclegan256_resnet9": step_flops("cyclegan", [f"data.root={tmp}"], 1),
            "darknet_cifar10": step_flops("darknet-cifar10", [], 8),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
