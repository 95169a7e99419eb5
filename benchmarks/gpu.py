"""Every GPU figure gankit promises, in one short run that writes one JSON file.

GPU time comes in windows of a few minutes, so this is prepared to run as one command (≤ 8 minutes
in all, each part under its own time cap) and to be debugged beforehand on a CPU:

    python benchmarks/gpu.py --out gpu.json [--cifar DIR] [--inception PATH]   # on a CUDA machine
    python benchmarks/gpu.py --device cpu --tiny --out gpu.json                 # every part, tiny, seconds

Parts:

- ``dcgan64``: DCGAN-64 training throughput (batch 128) of gankit's loop against the plain eager
  loop of the PyTorch DCGAN example on the same networks (``train_speed.py``'s two functions).
- ``dcgan64_switches``: the same loop with ``train.channels_last``, ``train.autocast=bf16`` and
  ``train.compile`` (each alone), as ratios to the plain loop.
- ``darknet_cifar10``: the ``darknet-cifar10`` recipe (the fast.ai 94 % Darknet), data resident on
  the device, evaluated after every epoch: seconds to 94 % test accuracy (or the best reached
  within the cap). Needs ``--cifar DIR`` with ``train/`` and ``test/`` class folders (the shared
  ``cifar10-jpg`` archive, extracted); skipped with a note without it.
- ``fid``: the FID Inception's images/s and the time of a 10,000-sample evaluation (reference
  features computed, FID + KID + PRDC) on MNIST digits, resized by ``--resizer`` (default
  gankit's, ``legacy-tensorflow``).
- ``cyclegan``: seconds per CycleGAN step at 256², batch 1, ResNet-9 / basic PatchGAN at 64 channels,
  gankit's task against the reference-style eager step (``translation_speed.py``).
- ``stylegan2``: img/s of a full StyleGAN2 iteration at 256² (the ``stylegan2`` recipe, auto
  config: batch 16, path length every 4 and R1 every 16 amortised over 32 steps) in fp32, with the
  reference's fp16 in the top 4 resolutions, with bf16 autocast, and fp16 + ``torch.compile``.
- ``r3gan``: img/s of an R3GAN CIFAR-10 iteration (the ``r3gan-cifar10`` recipe's networks and
  game, batch 128) in fp32 and bf16, eager and compiled.

Without CUDA (and without ``--device cpu``) it exits at once with one line and status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_speed.py, fid_sanity.py

FULL = {
    "dcgan_steps": 60,
    "dcgan_batch": 128,
    "dcgan_images": 4096,
    "switch_steps": 60,
    "darknet_cap_s": 240,
    "darknet_target": 0.94,
    "fid_n": 10_000,
    "fid_cap_s": 120,
    "cyclegan_size": 256,
    "cyclegan_ngf": 64,
    "cyclegan_steps": 20,
    "sg2_size": 256,
    "sg2_batch": 16,
    "sg2_steps": 32,
    "r3_batch": 128,
    "r3_steps": 24,
}
TINY = {
    "dcgan_steps": 8,
    "dcgan_batch": 4,
    "dcgan_images": 64,
    "switch_steps": 8,
    "darknet_cap_s": 60,
    "darknet_target": 0.99,
    "fid_n": 40,
    "fid_cap_s": 60,
    "cyclegan_size": 32,
    "cyclegan_ngf": 4,
    "cyclegan_steps": 2,
    "sg2_size": 16,
    "sg2_batch": 4,
    "sg2_steps": 4,
    "r3_batch": 4,
    "r3_steps": 4,
}


def _dcgan_overrides(args, sizes) -> list[str]:
    """The DCGAN-64 runs' settings: built-in digits at 64x64, the part's batch, the device."""
    base = [
        "data.source=builtin:mnist",
        f"data.limit={sizes['dcgan_images']}",
        f"train.batch_size={sizes['dcgan_batch']}",
        f"train.device={args.device}",
    ]
    return base + (["nets.G.ngf=8", "nets.D.ndf=8"] if args.tiny else [])


def dcgan64(args, sizes) -> dict:
    from train_speed import ours, reference_dcgan

    from gankit.data.sources import load_source
    from gankit.registries import build_config

    base = _dcgan_overrides(args, sizes)
    images = load_source(build_config("dcgan", base).data, progress=False).images
    steps, batch = sizes["dcgan_steps"], sizes["dcgan_batch"]
    mine = ours(base, steps, "dcgan")
    if args.tiny:  # the reference loop has the full-width nets: not comparable, only exercised
        reference_dcgan(images[:16], 2, 4, torch.device(args.device))
        return {"ours_img_per_s": round(mine, 1), "note": "--tiny: reference not comparable"}
    theirs = reference_dcgan(images, steps, batch, torch.device(args.device))
    return {
        "batch": batch,
        "ours_img_per_s": round(mine, 1),
        "reference_img_per_s": round(theirs, 1),
        "ours_over_reference": round(mine / theirs, 3),
    }


def dcgan64_switches(args, sizes) -> dict:
    from train_speed import ours

    base = _dcgan_overrides(args, sizes)
    steps = sizes["switch_steps"]
    plain = ours(base, steps, "dcgan")
    out: dict = {"plain_img_per_s": round(plain, 1)}
    switches = {
        "channels_last": ["train.channels_last=true"],
        "bf16": ["train.autocast=bf16"],
        "compile": ["train.compile=true"],
    }
    for name, extra in switches.items():
        if name == "compile" and args.tiny:
            out[name] = {"skipped": "--tiny: compiling takes minutes on a CPU"}
            continue
        v = ours([*base, *extra], steps, "dcgan")
        out[name] = {"img_per_s": round(v, 1), "over_plain": round(v / plain, 3)}
    return out


def darknet_cifar10(args, sizes) -> dict:
    from gankit.data.sources import load_source
    from gankit.data.stream import make_stream
    from gankit.engine.runtime import Runtime
    from gankit.registries import build_config
    from gankit.tasks.base import Streams
    from gankit.tasks.classifier import ClassifierTask

    if args.tiny:
        data = ["data.source=builtin:mnist", "data.channels=1", "data.limit=256", "data.fit=pad"]
        data += ["nets.net.num_blocks=[1, 1]", "nets.net.nf=4", "classifier.pad=2"]
        data += ["train.batch_size=32", "train.epochs=2"]
    elif args.cifar:
        data = [f"data.source=folder:{args.cifar}"]
    else:
        return {"skipped": "give --cifar DIR (train/ and test/ class folders) to time it"}
    cfg = build_config(
        "darknet-cifar10",
        [*data, "data.in_memory=yes", f"train.device={args.device}", "train.progress=false"],
    )
    t0 = time.perf_counter()
    d = load_source(cfg.data, progress=False, with_labels=True)
    ClassifierTask.resolve(cfg, {"labelled": d})
    per_epoch = len(d) // cfg.train.batch_size
    cfg.train.steps = math.ceil((cfg.train.epochs or 30) * len(d) / cfg.train.batch_size)
    rt = Runtime.from_config(cfg.train)
    stream = make_stream(d, cfg.data, cfg.train.batch_size, rt.device, cfg.seed, with_labels=True)
    task = ClassifierTask(cfg, rt, {})
    task.eval_data()  # the test split on the device before the clock starts
    t_data = time.perf_counter() - t0
    streams, epochs, t_train = Streams({"labelled": stream}), [], time.perf_counter()
    reached = None
    for step in range(1, cfg.train.steps + 1):
        task.step(streams)
        if step % per_epoch == 0 or step == cfg.train.steps:
            if rt.device.type == "cuda":
                torch.cuda.synchronize()
            acc = task.evaluate()["test_acc"]
            seconds = time.perf_counter() - t_train
            epochs.append({"step": step, "seconds": round(seconds, 1), "test_acc": round(acc, 4)})
            if acc >= sizes["darknet_target"] and reached is None:
                reached = seconds
                break
            if seconds > sizes["darknet_cap_s"]:
                break
    return {
        "target": sizes["darknet_target"],
        "seconds_to_target": None if reached is None else round(reached, 1),
        "best_test_acc": max(e["test_acc"] for e in epochs),
        "data_to_device_s": round(t_data, 1),
        "epochs": epochs,
        "note": None if reached else f"target not reached within {sizes['darknet_cap_s']} s",
    }


def fid(args, sizes) -> dict:
    from fid_sanity import shared_inception

    from gankit.config import DataConfig
    from gankit.data.sources import load_source
    from gankit.errors import CheckpointError
    from gankit.evaluation.metrics import compute_fid, compute_kid, compute_prdc
    from gankit.evaluation.metrics.inception import InceptionFeatures, find_inception
    from gankit.evaluation.metrics.reference_cache import reference_features
    from gankit.evaluation.reference import load_reference

    try:
        path = find_inception(args.inception or shared_inception(), download=False)
    except CheckpointError as e:
        return {"skipped": str(e)}
    n = sizes["fid_n"]
    like = DataConfig(source="builtin:mnist", image_size=28, channels=1, fit="pad")
    fake = load_source(like, progress=False).images[:n].flip(-1)
    ext = InceptionFeatures(
        path, resizer=args.resizer, device=args.device, progress=False, batch_size=200
    )
    ext(fake[:4])  # load (and on a CPU export) the network outside the clock
    t0 = time.perf_counter()
    feats = ext(fake)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = load_reference("builtin:mnist", like, n)
    with tempfile.TemporaryDirectory() as cache:
        rf = reference_features(
            ext, ref.feature_key("ref"), len(ref.images), lambda: ref.images, cache=cache
        )
    values = {"fid": compute_fid(rf, feats, method="eigh")["fid"]}
    values["kid"] = compute_kid(rf, feats)["kid"]
    compute_prdc(rf, feats)
    t_eval = time.perf_counter() - t0 + t_feat
    return {
        "backend": ext.backend,
        "resizer": args.resizer,
        "n": n,
        "img_per_s": round(n / t_feat, 1),
        "evaluation_s": round(t_eval, 1),
        "values": values,
    }


def cyclegan(args, sizes) -> dict:
    """One CycleGAN step at 256², batch 1, ResNet-9 / basic PatchGAN at 64 channels: gankit's
    task against the reference-style eager step of translation_speed.py, same networks."""
    from translation_speed import ours, reference, timed

    size, ngf, steps = sizes["cyclegan_size"], sizes["cyclegan_ngf"], sizes["cyclegan_steps"]
    task, step = ours(size, args.device, ngf)
    ref = reference(task, size, args.device)
    mine, theirs = timed(step, steps), timed(ref, steps)
    return {
        "size": size,
        "ngf": ngf,
        "ours_s_per_step": round(mine, 4),
        "reference_style_s_per_step": round(theirs, 4),
        "ours_over_reference_speed": round(theirs / mine, 3),
    }


def stylegan2(args, sizes) -> dict:
    from train_speed import ours

    base = [
        "data.source=builtin:mnist",
        "data.channels=3",
        f"data.image_size={sizes['sg2_size']}",
        f"data.limit={4 * sizes['sg2_batch']}",
        f"train.batch_size={sizes['sg2_batch']}",
        f"train.device={args.device}",
    ]
    if args.tiny:
        base += ["nets.G.fmaps=0.002", "nets.G.channel_max=8", "nets.D.fmaps=0.002"]
        base += ["nets.D.channel_max=8", "nets.G.nz=8", "nets.G.w_dim=8"]
    fp32 = ["nets.G.num_fp16_res=0", "nets.D.num_fp16_res=0"]
    variants = {
        "fp32": fp32,
        "fp16_top4": [],
        "bf16_autocast": [*fp32, "train.autocast=bf16"],
        "fp16_top4_compile": ["train.compile=true"],
    }
    out: dict = {"size": sizes["sg2_size"], "batch": sizes["sg2_batch"]}
    for name, extra in variants.items():
        if name.endswith("compile") and args.tiny:
            out[name] = {"skipped": "--tiny: compiling takes minutes on a CPU"}
            continue
        out[name] = {"img_per_s": round(ours([*base, *extra], sizes["sg2_steps"], "stylegan2"), 1)}
    for name in variants:
        if "img_per_s" in out[name]:
            out[name]["over_fp32"] = round(out[name]["img_per_s"] / out["fp32"]["img_per_s"], 3)
    return out


def r3gan(args, sizes) -> dict:
    """One R3GAN CIFAR-10 iteration (the ``r3gan-cifar10`` recipe's 768-wide conditional pair,
    RpGAN + R1 + R2 every step, ADA with cutout at p 0.3) on 32x32 digits as RGB with their
    labels: img/s in fp32 and bf16 autocast, eager and compiled."""
    from train_speed import ours

    base = [
        "data.source=builtin:mnist",
        "data.channels=3",
        f"data.limit={4 * sizes['r3_batch']}",
        f"train.batch_size={sizes['r3_batch']}",
        f"train.device={args.device}",
        "gan.schedules=[]",
        "gan.ada_p=0.3",
    ]
    if args.tiny:
        base += ["nets.G.widths=[16,16,16,16]", "nets.D.widths=[16,16,16,16]"]
    variants = {
        "fp32": [],
        "bf16_autocast": ["train.autocast=bf16"],
        "fp32_compile": ["train.compile=true"],
        "bf16_compile": ["train.autocast=bf16", "train.compile=true"],
    }
    out: dict = {"size": 32, "batch": sizes["r3_batch"]}
    for name, extra in variants.items():
        if name.endswith("compile") and args.tiny:
            out[name] = {"skipped": "--tiny: compiling takes minutes on a CPU"}
            continue
        speed = ours([*base, *extra], sizes["r3_steps"], "r3gan-cifar10")
        out[name] = {"img_per_s": round(speed, 1), "over_fp32": None}
    for name in variants:
        if "img_per_s" in out[name]:
            out[name]["over_fp32"] = round(out[name]["img_per_s"] / out["fp32"]["img_per_s"], 3)
    return out


PARTS = {
    "dcgan64": dcgan64,
    "dcgan64_switches": dcgan64_switches,
    "darknet_cifar10": darknet_cifar10,
    "fid": fid,
    "cyclegan": cyclegan,
    "stylegan2": stylegan2,
    "r3gan": r3gan,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: a dry run of every part")
    ap.add_argument("--out", default="gpu.json", help="JSON file to write (default gpu.json)")
    ap.add_argument("--cifar", help="CIFAR-10 folder with train/ and test/ class folders")
    ap.add_argument("--inception", help="inception-2015-12-05.pt (default: gankit's search)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of parts")
    ap.add_argument("--resizer", default="legacy-tensorflow", help="the fid part's resize to 299")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "error: no CUDA GPU here: run benchmarks/gpu.py on a GPU machine, or "
            "--device cpu --tiny for a dry run",
            file=sys.stderr,
        )
        return 2
    if args.device == "cpu" and not args.tiny:
        print(
            "error: --device cpu is for the --tiny dry run; the figures are GPU figures",
            file=sys.stderr,
        )
        return 2
    sizes = TINY if args.tiny else FULL
    dev = torch.device(args.device)
    result: dict = {
        "date": str(date.today()),
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tiny": args.tiny,
        "parts": {},
    }
    t_all = time.perf_counter()
    for name in args.parts.split(","):
        t0 = time.perf_counter()
        try:
            out = PARTS[name](args, sizes)
        except Exception as e:  # one broken part must not cost the window's other figures
            out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        result["parts"][name] = out
        print(f"{name}: {json.dumps(out)}", flush=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")  # after every part
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} in {result['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
