"""Judge generated MNIST digits with a small CNN trained on real MNIST.

A sample counts as a confidently recognised digit when the judge's softmax is >= 0.9
(this judge gives >= 0.9 on about 93.8 % of real MNIST test images: run it with --real). Prints JSON:
fraction confident, classes present, the class histogram, and the judge's test accuracy; for a
conditional run (which draws every class in turn) also the share read as the requested class.

    python benchmarks/digit_judge.py RUN [--n 1000] [--ema | --no-ema] [--rank-by-d FROM] [--mnist ../shared/datasets/mnist]

A conditional run, judged on the images a user draws with ``gankit sample RUN --class K --n 100
--individual DIR/K`` for K = 0..9 (the share whose predicted digit is the requested one):

    python benchmarks/digit_judge.py --per-class DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CACHE = Path(os.environ.get("GANKIT_CACHE", Path.home() / ".cache" / "gankit")) / "bench"


def judge_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def load_mnist(root: str | None, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from ``root`` (a folder holding torchvision's ``MNIST/``, read from a copy so that
    nothing is written there), or, without one, downloaded by torchvision into the cache."""
    import torchvision

    if root is None:
        ds = torchvision.datasets.MNIST(str(CACHE / "mnist"), train=train, download=True)
        return ds.data.unsqueeze(1).float() / 255, ds.targets
    tmp = Path(tempfile.mkdtemp())
    shutil.copytree(Path(root) / "MNIST", tmp / "MNIST")  # never write into a shared copy
    ds = torchvision.datasets.MNIST(str(tmp), train=train, download=True)
    x, y = ds.data.unsqueeze(1).float() / 255, ds.targets
    shutil.rmtree(tmp)
    return x, y


def get_judge(mnist_root: str | None) -> tuple[nn.Module, float]:
    path = CACHE / "mnist_judge.pt"
    net = judge_net()
    if path.exists():
        state = torch.load(path, weights_only=True)
        net.load_state_dict(state["net"])
        return net.eval(), state["acc"]
    torch.manual_seed(0)
    x, y = load_mnist(mnist_root, True)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _epoch in range(2):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    xt, yt = load_mnist(mnist_root, False)
    net.eval()
    with torch.no_grad():
        acc = (net(xt).argmax(1) == yt).float().mean().item()
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save({"net": net.state_dict(), "acc": acc}, path)
    return net, acc


def read_pngs(folder: Path) -> torch.Tensor:
    """The PNGs of ``folder`` (sorted) as a (N, 1, H, W) tensor in [-1, 1]."""
    import numpy as np
    from PIL import Image

    files = sorted(folder.glob("*.png"))
    arrays = [np.asarray(Image.open(f).convert("L"), dtype=np.float32) for f in files]
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1) / 127.5 - 1


@torch.no_grad()
def judge_per_class(net: nn.Module, root: Path) -> dict:
    """Share of ``root/K/*.png`` the judge reads as digit K (and confidently, p >= 0.9)."""
    per_class, hits, confident, total = {}, 0, 0, 0
    for k in range(10):
        x = read_pngs(root / str(k))
        if not len(x):
            raise SystemExit(
                f"{root / str(k)} holds no PNG: gankit sample RUN --class {k} --individual DIR/{k}"
            )
        p = F.softmax(net((x + 1) / 2), 1)
        conf, cls = p.max(1)
        right = cls == k
        per_class[k] = round(right.float().mean().item(), 4)
        hits, confident, total = (
            hits + int(right.sum()),
            confident + int((right & (conf >= 0.9)).sum()),
            total + len(x),
        )
    return {
        "requested_class_fraction": hits / total,
        "requested_class_confident_fraction": confident / total,
        "per_class": per_class,
        "n": total,
    }


@torch.no_grad()
def judge_requested(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Share of ``images`` (in [-1, 1]) read as their requested ``labels`` (and with p >= 0.9)."""
    p = F.softmax(net((images.float() + 1) / 2), 1)
    conf, cls = p.max(1)
    right = cls == labels
    return {
        "requested_class_fraction": right.float().mean().item(),
        "requested_class_confident_fraction": (right & (conf >= 0.9)).float().mean().item(),
    }


@torch.no_grad()
def judge(net: nn.Module, images: torch.Tensor) -> dict:
    """images in [-1, 1], (N, 1, H, W) with H 28 or 32 (centre-cropped to 28)."""
    x = (images.float() + 1) / 2
    if x.shape[-1] != 28:
        o = (x.shape[-1] - 28) // 2
        x = (
            x[..., o : o + 28, o : o + 28]
            if x.shape[-1] > 28
            else F.interpolate(x, size=28, mode="bilinear")
        )
    p = F.softmax(net(x), 1)
    conf, cls = p.max(1)
    confident = conf >= 0.9
    hist = torch.bincount(cls[confident], minlength=10).tolist()
    return {
        "confident_fraction": confident.float().mean().item(),
        "classes_present": sum(h > 0 for h in hist),
        "class_histogram": hist,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="judge the EMA generator (default: when the run has one, as gankit sample does)",
    )
    ap.add_argument("--ckpt", help="a checkpoint of the run (default: the newest)")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument(
        "--rank-by-d",
        type=int,
        metavar="FROM",
        help="judge the n of FROM samples the run's discriminator scores highest (as gankit "
        "sample --rank-by-d --top n --from FROM)",
    )
    ap.add_argument("--real", action="store_true", help="judge real MNIST test images instead")
    ap.add_argument(
        "--per-class",
        metavar="DIR",
        help="judge DIR/0 ... DIR/9 (gankit sample --class K --individual DIR/K) against K",
    )
    ap.add_argument(
        "--mnist",
        metavar="DIR",
        help="a folder with torchvision's MNIST/ (read, never written); default: download it "
        "with torchvision into $GANKIT_CACHE/bench/mnist (about 60 MB, once)",
    )
    a = ap.parse_args()
    if a.rank_by_d is not None and a.rank_by_d < a.n:
        ap.error(
            f"--rank-by-d {a.rank_by_d} must be at least --n {a.n}: it keeps n of FROM samples"
        )
    net, acc = get_judge(a.mnist)
    if a.per_class:
        res = judge_per_class(net, Path(a.per_class))
    elif a.real:
        x, _ = load_mnist(a.mnist, False)
        res = judge(net, x[: a.n] * 2 - 1)
    else:
        from gankit.inference.loading import load_run
        from gankit.inference.roles import label_classes
        from gankit.inference.sampling import generate, rank_by_discriminator, resolve_ema

        run = load_run(a.run, checkpoint=a.ckpt)
        task, step = run.model, run.step
        ema = resolve_ema(a.ema, task, a.run)
        if a.rank_by_d is not None:
            images = generate(task, a.rank_by_d, seed=a.seed, ema=ema)
            images = rank_by_discriminator(task, images, a.n)
        else:
            images = generate(task, a.n, seed=a.seed, ema=ema)
        res = judge(net, images)
        if label_classes(task) and a.rank_by_d is None:
            # a conditional run drew every class in turn: also score the requested class
            res |= judge_requested(net, images, task.default_labels(len(images)).cpu())
        res["step"], res["ema"], res["rank_by_d_from"] = step, ema, a.rank_by_d
    res["judge_test_accuracy"] = acc
    print(json.dumps(res))


if __name__ == "__main__":
    main()
