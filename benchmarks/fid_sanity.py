"""FID sanity values on MNIST and Fashion-MNIST, to compare with an independent measurement
(plain torch bilinear resize and scipy sqrtm; docs/guides/evaluation.md).

Computes, with gankit's FID Inception features (``--resizer``, default ``legacy-pytorch``: torch
bilinear resize to 299, align_corners=False, the resize of that measurement and of gankit 0.2;
float64 statistics, scipy sqrtm):

- FID(MNIST train[:n], MNIST test[:n])          independent: 9.5 at n = 2,000, 1.65 at n = 10,000
- FID(MNIST test[:n], Fashion-MNIST test[:n])   independent: 185 at n = 2,000

and prints one JSON object. Inception runs at about 5 images/s on this project's 2 CPU cores (n = 2,000
took 27 minutes), so n = 10,000 takes over an hour there (minutes on a GPU); features are cached per (extractor, set, n) in the
gankit cache folder, so a second run is instant. ``--n 20`` is a smoke test.

    python benchmarks/fid_sanity.py [--n 10000] [--data ../shared/datasets] [--device cuda]
                                    [--fid-method sqrtm|eigh] [--skip-fashion] [--resizer NAME]

With scipy's sqrtm each 2048-d FID takes 30-100 s on a busy 2-core CPU; ``--fid-method eigh``
gives the same value in seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gankit.evaluation.metrics.fid import FID_METHODS, fid_from_features
from gankit.evaluation.metrics.inception import InceptionFeatures
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.metrics.resize import RESIZERS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# The independent measurement resized with torch bilinear (pytorch-fid's resize), which is gankit's
# `legacy-pytorch`: its values only apply under that resizer, so it is this script's default (not
# gankit's default `legacy-tensorflow`) and the result names no reference under another one.
REFERENCE_RESIZER = "legacy-pytorch"
REFERENCE = {
    2000: {"mnist_train_vs_test": 9.5, "mnist_vs_fashion": 185.0},
    10000: {"mnist_train_vs_test": 1.65},
}


def shared_inception(data: Path = DEFAULT_DATA) -> Path | None:
    """The FID Inception in the shared datasets folder, when it is there (benchmarks only)."""
    path = data / "inception" / "inception-2015-12-05.pt"
    return path if path.is_file() else None


def read_images(path: Path, n: int) -> torch.Tensor:
    """The first n images of an idx3 .gz file as uint8 (n, 1, 28, 28); the file is only read."""
    raw = gzip.decompress(path.read_bytes())
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)
    if len(images) < n:
        raise SystemExit(f"{path} has {len(images)} images, fewer than --n {n}")
    return torch.from_numpy(images[:n].copy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images per side (at most 10,000)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with mnist/ and fashion-mnist/"
    )
    parser.add_argument(
        "--inception",
        type=Path,
        default=None,
        help="inception-2015-12-05.pt (default: gankit's search)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--fid-method",
        choices=FID_METHODS,
        default="sqrtm",
        help="sqrtm: the reference; eigh: faster",
    )
    parser.add_argument(
        "--skip-fashion",
        action="store_true",
        help="only FID(MNIST train, test): saves a third of the Inception passes",
    )
    parser.add_argument(
        "--resizer",
        choices=RESIZERS,
        default=REFERENCE_RESIZER,
        help="the resize to 299 (default legacy-pytorch: the one the reference values were "
        "measured with; the others print no reference)",
    )
    parser.add_argument(
        "--backend", default="auto", help="auto, torch or onnx: which runtime computes features"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="compute every feature now (an empty cache): cached features are shared by backends",
    )
    args = parser.parse_args()

    inception = args.inception or shared_inception(args.data)
    extractor = InceptionFeatures(
        inception,
        resizer=args.resizer,
        device=args.device,
        batch_size=args.batch_size,
        backend=args.backend,
    )
    cache = tempfile.mkdtemp() if args.fresh else None
    files = {
        "mnist-train": args.data / "mnist/MNIST/raw/train-images-idx3-ubyte.gz",
        "mnist-test": args.data / "mnist/MNIST/raw/t10k-images-idx3-ubyte.gz",
        "fashion-mnist-test": args.data
        / "fashion-mnist/FashionMNIST/raw/t10k-images-idx3-ubyte.gz",
    }
    if args.skip_fashion:
        del files["fashion-mnist-test"]
    start = time.perf_counter()
    feats = {
        name: reference_features(
            extractor, f"{name}[:n]", args.n, lambda p=path: read_images(p, args.n), cache=cache
        )
        for name, path in files.items()
    }
    seconds = time.perf_counter() - start

    def fid(a: torch.Tensor, b: torch.Tensor) -> float:
        return fid_from_features(a, b, method=args.fid_method)

    result = {
        "n": args.n,
        "feature_id": extractor.feature_id,
        "backend": extractor.backend,
        "resizer": args.resizer,
        "device": args.device,
        "fid_method": args.fid_method,
        "fid_mnist_train_vs_test": fid(feats["mnist-train"], feats["mnist-test"]),
        "fid_mnist_vs_fashion": None
        if args.skip_fashion
        else fid(feats["mnist-test"], feats["fashion-mnist-test"]),
        "reference": REFERENCE.get(args.n) if args.resizer == REFERENCE_RESIZER else None,
        "feature_seconds": round(seconds, 1),
        "note": "cached features make feature_seconds ~0 on a second run; FID is biased up at small n",
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
