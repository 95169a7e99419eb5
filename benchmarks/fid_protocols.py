"""`gankit evaluate`'s FID under each resizer against pipelines built from the reference libraries.

For MNIST test[:n] (as a folder of PNGs: the "samples") against ``--ref mnist`` (the first n of
gankit's fixed order of MNIST train), with the same Inception file:

- **gankit**: ``evaluate_source(..., resizer=R, metrics="fid")``, the code behind
  ``gankit evaluate``;
- **library**: the very same uint8 images, resized by the library function that defines R --
  clean-fid's ``make_resizer("PIL", False, "bicubic")`` for ``clean``, torch-fidelity's
  ``interpolate_bilinear_2d_like_tensorflow1x`` for ``legacy-tensorflow``, clean-fid's
  ``make_resizer("PyTorch", False, "bilinear")`` for ``legacy-pytorch``, Pillow's float 'F'
  bilinear (StudioGAN's ``make_resizer``) for ``pil-bilinear`` --, scaled ``(x - 128) / 128``,
  through the TorchScript network with torch, and FID by pytorch-fid's
  ``calculate_frechet_distance`` (scipy ``sqrtm``; ``--library-fid nuclear`` is an exact
  shortcut for n < 2048: the trace term as the nuclear norm of the n x n cross product).

Prints one JSON object: per resizer both FIDs, their relative difference (the issue asks for
1e-3), the largest feature difference, and the resize effect (each FID minus legacy-tensorflow's).
The issue's figure is ``--n 2000`` (the guide's table): 4 x 4,000 images through gankit's
Inception and 4 x 4,000 through torch's, roughly an hour on a 2-core CPU, minutes on a GPU. tests/test_agreement.py runs ``run()`` at n = 6.

    python benchmarks/fid_protocols.py [--n 2000] [--data ../shared/datasets] [--inception PATH]
                                       [--resizers legacy-tensorflow,clean,legacy-pytorch,pil-bilinear]
                                       [--device cpu] [--library-fid pytorch-fid|nuclear]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fid_sanity import DEFAULT_DATA, read_images, shared_inception  # a sibling script
from PIL import Image

from gankit.evaluation.evaluate import evaluate_source
from gankit.evaluation.metrics.inception import feature_network, load_inception
from gankit.evaluation.metrics.resize import RESIZERS

LIBRARY = {
    "clean": "clean-fid make_resizer('PIL', False, 'bicubic', (299, 299))",
    "legacy-tensorflow": "torch-fidelity interpolate_bilinear_2d_like_tensorflow1x(align_corners=False)",
    "legacy-pytorch": "clean-fid make_resizer('PyTorch', False, 'bilinear', (299, 299))",
    "pil-bilinear": "Pillow float 'F' bilinear per channel (StudioGAN's make_resizer)",
}


def library_resize(images: torch.Tensor, resizer: str) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, 3, 299, 299) on 0-255, by the library that defines ``resizer``."""
    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    if resizer == "legacy-tensorflow":
        from torch_fidelity.interpolate_compat_tensorflow import (
            interpolate_bilinear_2d_like_tensorflow1x,
        )

        return interpolate_bilinear_2d_like_tensorflow1x(
            rgb.float(), size=(299, 299), align_corners=False
        )
    if resizer in ("clean", "legacy-pytorch"):
        from cleanfid.resize import make_resizer

        fn = (
            make_resizer("PIL", False, "bicubic", (299, 299))
            if resizer == "clean"
            else make_resizer("PyTorch", False, "bilinear", (299, 299))
        )
        out = [fn(np.ascontiguousarray(x.transpose(1, 2, 0))) for x in rgb.numpy()]
        return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy()).float()
    # pil-bilinear
    out = np.empty((len(rgb), 3, 299, 299), np.float32)
    for i, x in enumerate(rgb.numpy()):
        for c in range(3):
            f = Image.fromarray(x[c].astype(np.float32), mode="F")
            out[i, c] = np.asarray(f.resize((299, 299), resample=Image.BILINEAR))
    return torch.from_numpy(out)


def library_features(images: torch.Tensor, resizer: str, module, device: str, batch: int = 25):
    net = feature_network(module)
    out = []
    with torch.inference_mode():
        for chunk in images.split(batch):
            x = (library_resize(chunk, resizer) - 128.0) / 128.0
            out.append(net(x.to(device)).flatten(1).float().cpu())
    return torch.cat(out).double().numpy()


def library_fid(a: np.ndarray, b: np.ndarray, how: str) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    if how == "pytorch-fid":
        from pytorch_fid.fid_score import calculate_frechet_distance

        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return float(calculate_frechet_distance(mu1, s1, mu2, s2))
    # nuclear: tr sqrt(S1 S2) = ||A1 A2^T||_* / sqrt((n1 - 1)(n2 - 1)) with A the centred rows
    a1, a2 = a - mu1, b - mu2
    cross = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    traces = (a1 * a1).sum() / (len(a) - 1) + (a2 * a2).sum() / (len(b) - 1)
    diff = mu1 - mu2
    return float(diff @ diff + traces - 2.0 * cross)


def run(
    n: int,
    data: Path,
    inception: str | Path,
    resizers=RESIZERS,
    *,
    device: str = "cpu",
    backend: str = "auto",
    how: str = "pytorch-fid",
    cache: str | None = None,
) -> dict:
    """Both FIDs for each resizer (see the module docstring); ``cache``: a GANKIT_CACHE folder."""
    test = read_images(data / "mnist/MNIST/raw/t10k-images-idx3-ubyte.gz", n)
    module = load_inception(inception, device)
    out: dict = {"n": n, "inception": str(inception), "library_fid": how, "resizers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mnist-test"
        folder.mkdir()
        for i, img in enumerate(test.numpy()):
            Image.fromarray(img[0], "L").save(folder / f"{i:05d}.png")
        for resizer in resizers:
            start = time.perf_counter()
            done = evaluate_source(
                folder, "mnist", root=str(data / "mnist"), n=n, ref_n=n, metrics="fid",
                resizer=resizer, inception=str(inception), device=device, backend=backend,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            ours = done.result.metrics["fid"]["fid"]
            real = library_features(done.reference.images, resizer, module, device)  # type: ignore[union-attr]
            fake = library_features(done.samples.images, resizer, module, device)
            theirs = library_fid(real, fake, how)
            head = done.samples.images[:50]  # gankit's own features of a few, against the library's
            mine = done.extractor(head).double().numpy()  # type: ignore[misc]
            out["resizers"][resizer] = {
                "gankit_fid": ours,
                "library_fid": theirs,
                "relative_difference": abs(ours - theirs) / abs(theirs),
                "max_abs_feature_diff_first_50": float(np.abs(mine - fake[: len(head)]).max()),
                "library": LIBRARY[resizer],
                "gankit_seconds": round(seconds, 1),
                "features": done.extractor.feature_id,  # type: ignore[union-attr]
            }
    if "legacy-tensorflow" in out["resizers"]:
        base = out["resizers"]["legacy-tensorflow"]["gankit_fid"]
        out["resize_effect_vs_legacy_tensorflow"] = {
            r: round(v["gankit_fid"] - base, 4) for r, v in out["resizers"].items()
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images per side (at most 10,000)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with mnist/")
    parser.add_argument("--inception", help="the TorchScript network (default: ../shared's)")
    parser.add_argument("--resizers", default=",".join(RESIZERS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backend", default="auto", help="gankit's: auto, torch or onnx")
    parser.add_argument("--library-fid", choices=("pytorch-fid", "nuclear"), default="pytorch-fid")
    args = parser.parse_args()
    inception = args.inception or shared_inception(args.data)
    if inception is None:
        raise SystemExit("no Inception: pass --inception PATH")
    result = run(
        args.n, args.data, inception, args.resizers.split(","), device=args.device,
        backend=args.backend, how=args.library_fid,
    )  # fmt: skip
    result.update(
        cpu=platform.processor() or platform.machine(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
