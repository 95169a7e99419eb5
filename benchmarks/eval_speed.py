"""How long `gankit evaluate` takes for FID + KID + PRDC with the FID Inception, cached and not.

The "samples" are the built-in MNIST digits (the 10,000 MNIST test images), standing in for a
generator's output: generating 10k images from a DCGAN takes seconds, extracting their features
takes minutes. The reference is ``--ref`` split as ``gankit evaluate`` does it (at most 4/5 of it
is reference, the rest held out):

- ``--ref builtin:mnist`` (default; no data needed): the samples are mirrored left-right so they
  differ from the reference, which is 8,000 of the same digits for ``--n 10000``.
- ``--ref mnist --root DIR`` (MNIST's training split): the samples are the test digits as they
  are, so the FID printed is FID(MNIST train 10k, MNIST test 10k), the sanity value of
  docs/benchmarks.md (1.65 at n = 10,000 under ``--resizer legacy-pytorch``) — one run gives both
  the time and the check.

Timed separately, once each and for each Inception backend (``--backends torch,onnx``: torch and
ONNX Runtime, on the same inputs in one run): reading the reference, its Inception features on a
miss (computed and written to an empty cache folder) and on a hit (read back), the samples'
features, FID (eigh), KID (100 subsets of 1,000) and PRDC. ``uncached_s`` and ``cached_s`` are the
totals of the steps that an evaluation runs in each case; ``speedup`` compares the backends'
``cached_s`` and images/s, and ``max_abs_feature_diff`` their features. ``--resizer`` (default
gankit's, ``legacy-tensorflow``) is the resize in front of the Inception for this comparison; the
figures in docs/benchmarks.md were made before it existed, with ``legacy-pytorch`` (gankit 0.2's
resize). ``--classifier-features`` adds the same comparison for a gankit classifier's penultimate
features (a MnistNet, 28x28).

``--resizers`` (default all four) times the cached evaluation once per resizer in front of the
Inception (gankit.evaluation.metrics.resize), with the first of ``--backends``, in one process:
``cached_s`` each, the resize alone (``resize_s``: every sample and reference image through
``resize_images``, no network), and the growth over ``legacy-pytorch`` (gankit 0.2's resize), both
end to end (``growth_pct``, which other load on the machine makes noisy) and from the resize
alone (``resize_growth_pct`` = extra resize seconds / legacy-pytorch's ``cached_s``). The issue's
bound is 10 %. Prints one JSON object, with the metric values.

    python benchmarks/eval_speed.py [--n 2000] [--ref mnist --root DIR] [--inception PATH]
                                    [--backends torch,onnx] [--resizer NAME] [--classifier-features]
                                    [--resizers legacy-pytorch,legacy-tensorflow,clean,pil-bilinear]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import torch
from fid_sanity import shared_inception  # a sibling script: benchmarks/ is on sys.path

from gankit.config import DataConfig
from gankit.data.sources import load_source
from gankit.evaluation.metrics import compute_fid, compute_kid, compute_prdc
from gankit.evaluation.metrics.inception import InceptionFeatures, find_inception
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.metrics.resize import DEFAULT_RESIZER, RESIZERS, resize_images
from gankit.evaluation.reference import load_reference


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t, 2)


def one_backend(
    backend: str, args, reference, fake, resizer: str = DEFAULT_RESIZER
) -> tuple[dict, torch.Tensor]:
    extractor = InceptionFeatures(
        find_inception(args.inception),
        resizer=resizer,
        device=args.device,
        batch_size=args.batch_size,
        backend=backend,
        progress=False,
    )
    extractor(fake[:2])  # load the network (and make the ONNX export) outside the timings
    key, n_ref = reference.feature_key("ref"), len(reference.images)
    with tempfile.TemporaryDirectory() as cache:
        ref_feats, t_miss = timed(
            lambda: reference_features(extractor, key, n_ref, lambda: reference.images, cache=cache)
        )
        _, t_hit = timed(
            lambda: reference_features(extractor, key, n_ref, lambda: reference.images, cache=cache)
        )
    fake_feats, t_fake = timed(lambda: extractor(fake))
    fid, t_fid = timed(lambda: compute_fid(ref_feats, fake_feats, method="eigh"))
    kid, t_kid = timed(lambda: compute_kid(ref_feats, fake_feats))
    prdc, t_prdc = timed(lambda: compute_prdc(ref_feats, fake_feats))
    metrics_s = t_fid + t_kid + t_prdc
    return {
        "reference_features_miss_s": t_miss,
        "reference_features_hit_s": t_hit,
        "sample_features_s": t_fake,
        "sample_img_per_s": round(len(fake) / t_fake, 1),
        "fid_s": t_fid,
        "kid_s": t_kid,
        "prdc_s": t_prdc,
        "uncached_s": round(t_miss + t_fake + metrics_s, 2),
        "cached_s": round(t_hit + t_fake + metrics_s, 2),
        "values": {"fid": fid, "kid": kid, "prdc": prdc},
    }, fake_feats


def classifier_features(n: int) -> dict:
    """img/s of a MnistNet's penultimate features under torch and under ONNX Runtime."""
    import onnxruntime as ort

    from gankit.evaluation.metrics.features import ModuleFeatures
    from gankit.nets.darknet import MnistNet

    net = MnistNet(10, 1, 28).eval()
    images = (torch.rand(n, 1, 28, 28) * 255).to(torch.uint8)
    pre = lambda x: x.float() / 127.5 - 1  # noqa: E731
    ours = ModuleFeatures(net, pre, progress=False)
    ours(images[:8])
    a, t_torch = timed(lambda: ours(images))

    class Penultimate(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.features(x)

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/f.onnx"
        torch.onnx.export(
            Penultimate(net), (pre(images[:1]),), path, input_names=["x"],
            dynamic_axes={"x": {0: "n"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

        def run():
            return torch.cat(
                [
                    torch.from_numpy(sess.run(None, {"x": pre(c).numpy()})[0])
                    for c in images.split(256)
                ]
            )

        run()
        b, t_onnx = timed(run)
    return {
        "n": n,
        "torch_img_per_s": round(n / t_torch, 1),
        "onnx_img_per_s": round(n / t_onnx, 1),
        "speedup": round(t_torch / t_onnx, 2),
        "max_abs_feature_diff": float((a - b.flatten(1)).abs().max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="samples (at most 10,000)")
    parser.add_argument("--ref", default="builtin:mnist", help="reference data.source")
    parser.add_argument("--root", help="data.root of the reference")
    parser.add_argument(
        "--inception",
        help="inception-2015-12-05.pt (default: ../shared's copy when present, else gankit's search)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--backends", default="torch,onnx", help="comma-separated: torch, onnx")
    parser.add_argument(
        "--resizer",
        choices=RESIZERS,
        default=DEFAULT_RESIZER,
        help="resize of the backend comparison (default legacy-tensorflow; legacy-pytorch: "
        "gankit 0.2's, that of the recorded figures)",
    )
    parser.add_argument("--classifier-features", action="store_true")
    parser.add_argument(
        "--resizers",
        default=",".join(["legacy-pytorch", *(r for r in RESIZERS if r != "legacy-pytorch")]),
        help="time the cached evaluation under each (empty: skip); legacy-pytorch is the baseline",
    )
    args = parser.parse_args()
    args.inception = args.inception or shared_inception()

    like = DataConfig(source="builtin:mnist", image_size=28, channels=1, fit="pad")
    digits = load_source(like, progress=False).images
    mirrored = args.ref == "builtin:mnist"  # otherwise the reference holds no test digit
    fake = digits[: args.n].flip(-1) if mirrored else digits[: args.n]  # type: ignore[index]
    reference, t_read = timed(lambda: load_reference(args.ref, like, args.n, root=args.root))
    results, feats = {}, {}
    for backend in args.backends.split(","):
        results[backend], feats[backend] = one_backend(
            backend, args, reference, fake, resizer=args.resizer
        )
        results[backend]["cached_s"] = round(results[backend]["cached_s"] + t_read, 2)
        results[backend]["uncached_s"] = round(results[backend]["uncached_s"] + t_read, 2)
    out = {
        "n_samples": len(fake),
        "samples": "MNIST test digits" + (", mirrored" if mirrored else ""),
        "n_reference": len(reference.images),
        "reference": args.ref,
        "device": args.device,
        "resizer": args.resizer,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "read_reference_s": t_read,
        "backends": results,
    }
    if {"torch", "onnx"} <= set(results):
        t, o = results["torch"], results["onnx"]
        out["speedup"] = {
            "cached_evaluation": round(t["cached_s"] / o["cached_s"], 2),
            "sample_img_per_s": round(o["sample_img_per_s"] / t["sample_img_per_s"], 2),
        }
        out["max_abs_feature_diff"] = float((feats["torch"] - feats["onnx"]).abs().max())
    if args.classifier_features:
        out["classifier_features"] = classifier_features(args.n)
    if args.resizers:
        backend = args.backends.split(",")[0]
        out["resizers"] = resizer_timings(args.resizers.split(","), backend, args, reference, fake)
        out["resizers_backend"] = backend
    print(json.dumps(out, indent=1))


def resizer_timings(names: list[str], backend: str, args, reference, fake) -> dict:
    """The cached evaluation and the resize alone under each resizer (see the docstring)."""
    rows = {}
    every = [fake, reference.images]
    batches = [b for images in every for b in images.split(args.batch_size)]
    for name in names:
        row, _ = one_backend(backend, args, reference, fake, resizer=name)
        _, resize_s = timed(lambda n=name: [resize_images(b.to(args.device), n) for b in batches])
        rows[name] = {
            "cached_s": row["cached_s"],
            "sample_features_s": row["sample_features_s"],
            "resize_s": resize_s,
            "fid": row["values"]["fid"]["fid"],
        }
    base = rows.get("legacy-pytorch")
    if base:
        for row in rows.values():
            row["growth_pct"] = round(100 * (row["cached_s"] / base["cached_s"] - 1), 1)
            extra = row["resize_s"] - base["resize_s"]
            row["resize_growth_pct"] = round(100 * extra / base["cached_s"], 2)
    return rows


if __name__ == "__main__":
    main()
