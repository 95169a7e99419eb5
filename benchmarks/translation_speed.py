"""CycleGAN step time against a plain eager step written the reference's way, and peak memory of
CycleGAN vs CUT vs FastCUT. Prints JSON.

    python benchmarks/translation_speed.py [--size 128] [--steps 10] [--repeats 3] [--memory-size 256]

Speed: one training step at ``--size``² (the reference's 128×128 crop), batch 1, ResNet-9
generators and basic PatchGANs at ngf = ndf = 64, instance norm — gankit's ``cyclegan`` task
(``CycleGanTask.step``, fed from in-memory streams) against ``ReferenceStyleCycleGAN`` below: our
own transcription of pytorch-CycleGAN-and-pix2pix's ``optimize_parameters`` (forward, backward_G
with the Ds frozen, backward_D_A/B with image pools, one Adam over both Gs and one over both Ds),
eager, in plain PyTorch. The two alternate in ``--repeats`` rounds in one process; the ratio is
of the medians. Memory: each model trains 3 steps at ``--memory-size``² in its own subprocess;
peak resident memory (VmHWM) minus the resident memory before the networks were built.

Run it alone (one heavy process at a time on these 2 cores).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from gankit.engine.runtime import Runtime
from gankit.registries import build_config
from gankit.tasks import TASKS
from gankit.tasks.base import Streams

NETS = [
    "data.channels=3",
    "nets.G_A.arch=resnet_9blocks",
    "nets.G_B.arch=resnet_9blocks",
    "nets.G_A.ngf=64",
    "nets.G_B.ngf=64",
    "nets.D_A.ndf=64",
    "nets.D_B.ndf=64",
]


class Endless:
    """A stream of the same random batch, with the state methods the loop's streams have."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        return self.x

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Pool:
    """The reference's ImagePool, as it is written there: a Python list, random.uniform."""

    def __init__(self, size: int) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                k = random.randint(0, self.size - 1)
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class ReferenceStyleCycleGAN:
    """``optimize_parameters`` of the reference's CycleGANModel, eager, our own code."""

    def __init__(self, G_A: nn.Module, G_B: nn.Module, D_A: nn.Module, D_B: nn.Module) -> None:
        self.G_A, self.G_B, self.D_A, self.D_B = G_A, G_B, D_A, D_B
        self.opt_G = torch.optim.Adam(
            itertools.chain(G_A.parameters(), G_B.parameters()), lr=2e-4, betas=(0.5, 0.999)
        )
        self.opt_D = torch.optim.Adam(
            itertools.chain(D_A.parameters(), D_B.parameters()), lr=2e-4, betas=(0.5, 0.999)
        )
        self.pool_A, self.pool_B = Pool(50), Pool(50)
        self.mse, self.l1 = nn.MSELoss(), nn.L1Loss()

    def gan(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        return self.mse(pred, torch.full_like(pred, 1.0 if real else 0.0))

    def set_requires_grad(self, nets: list[nn.Module], flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> None:
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)
        self.set_requires_grad([self.D_A, self.D_B], False)
        self.opt_G.zero_grad()
        idt_A, idt_B = self.G_A(real_B), self.G_B(real_A)
        loss_G = (
            self.gan(self.D_A(fake_B), True)
            + self.gan(self.D_B(fake_A), True)
            + self.l1(rec_A, real_A) * 10
            + self.l1(rec_B, real_B) * 10
            + self.l1(idt_A, real_B) * 10 * 0.5
            + self.l1(idt_B, real_A) * 10 * 0.5
        )
        loss_G.backward()
        self.opt_G.step()
        self.set_requires_grad([self.D_A, self.D_B], True)
        self.opt_D.zero_grad()
        for D, real, fake in ((self.D_A, real_B, self.pool_B.query(fake_B)),
                              (self.D_B, real_A, self.pool_A.query(fake_A))):  # fmt: skip
            loss_D = (self.gan(D(real), True) + self.gan(D(fake.detach()), False)) * 0.5
            loss_D.backward()
        self.opt_D.step()


def ours(size: int, device: str = "cpu", ngf: int = 64):
    """gankit's CycleGAN task on one fixed random pair, and a function doing one step."""
    over = [o.replace("=64", f"={ngf}") for o in NETS]
    cfg = build_config(
        "cyclegan",
        [*over, f"data.image_size={size}", f"train.device={device}", "train.n_preview=1"],
    )
    x = torch.rand(1, 3, size, size, device=device) * 2 - 1
    streams = Streams({"A": Endless(x), "B": Endless(x.flip(3))})
    task = TASKS["cyclegan"](cfg, Runtime(torch.device(device)), {"A": x, "B": x})
    return task, (lambda: task.step(streams))


def reference(task, size: int, device: str = "cpu"):
    """The same networks (copies of ours, so both start from identical weights)."""
    import copy

    nets = [copy.deepcopy(getattr(task, k)) for k in ("G_A", "G_B", "D_A", "D_B")]
    ref = ReferenceStyleCycleGAN(*nets)
    x = torch.rand(1, 3, size, size, device=device) * 2 - 1
    return lambda: ref.step(x, x.flip(3))


def timed(fn, steps: int) -> float:
    """Seconds per call after one warm-up call (synchronising a GPU before reading the clock)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) / steps


def _status_kb(key: str) -> int:
    """A field of /proc/self/status in kB (VmRSS: now; VmHWM: the peak of this process image).

    Not ru_maxrss: on Linux a child started by fork + exec reports its parent's peak there.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def memory_child(task_name: str, size: int) -> None:
    """In a subprocess: peak RSS growth over 3 training steps of ``task_name`` at ``size``²."""
    before = _status_kb("VmRSS")
    recipe = {"cyclegan": "cyclegan", "cut": "cut", "fastcut": "fastcut"}[task_name]
    over = [f"data.image_size={size}", "train.device=cpu", "train.n_preview=1"]
    cfg = build_config(recipe, over)
    x = torch.rand(1, 3, size, size) * 2 - 1
    streams = Streams({"A": Endless(x), "B": Endless(x.flip(3))})
    task = TASKS[cfg.task](cfg, Runtime(torch.device("cpu")), {"A": x, "B": x})
    for _ in range(3):
        task.step(streams)
    peak = _status_kb("VmHWM")
    print(json.dumps({"task": task_name, "peak_mb": round((peak - before) / 1024, 1)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory-size", type=int, default=256)
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    p.add_argument("--memory-only", action="store_true", help="skip the step timing")
    args = p.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.memory_size)
        return
    torch.manual_seed(0)
    random.seed(0)
    t_ours, t_ref = [float("nan")], [float("nan")]
    if not args.memory_only:
        task, step_ours = ours(args.size)
        step_ref = reference(task, args.size)
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours.append(timed(step_ours, args.steps))
            t_ref.append(timed(step_ref, args.steps))
    memory = {}
    for name in ("cyclegan", "cut", "fastcut"):
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", name, "--memory-size", str(args.memory_size)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        memory[name] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
    print(json.dumps({
        "size": args.size, "batch": 1, "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "ours_s_per_step": round(statistics.median(t_ours), 4),
        "reference_style_s_per_step": round(statistics.median(t_ref), 4),
        "ours_over_reference_speed": round(statistics.median(t_ref) / statistics.median(t_ours), 3),
        "peak_mb_at": args.memory_size, "peak_mb": memory,
        "fastcut_over_cyclegan_memory": round(memory["fastcut"] / memory["cyclegan"], 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
