"""``gankit stats``: Inception statistics files (``mu``/``sigma``/``feats``) of a folder or a run.

The work is in :func:`gankit.evaluation.stats_files.make_stats`; the file layout is pytorch-fid's
and clean-fid's, with gankit's protocol fields beside (:mod:`gankit.evaluation.stats_files`).
"""

from __future__ import annotations

import argparse

from gankit.cli.evaluate import PROTOCOLS, RESIZERS
from gankit.cli.options import add_ema_option, number

DESCRIPTION = """\
Write the FID statistics of a folder of images (a reference set) or of a GAN run's samples to an
.npz that pytorch-fid and clean-fid read (mu, sigma; feats for KID), with the protocol, resize,
network checksum and image checksum beside them. Use it with gankit evaluate --ref stats:FILE.npz,
which refuses a file made under another protocol or resize.

  gankit stats ~/cifar10-train --out cifar10-train.npz --protocol fid50k_full
  gankit stats ~/ffhq --out ffhq-clean.npz --protocol clean-fid --no-feats
  gankit stats RUN --out run-10k.npz --n 10000 --ema
"""


def add_stats_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit stats`` on the CLI's sub-command parser."""
    p = sub.add_parser(
        "stats",
        help="FID statistics (.npz: mu, sigma, feats) of a folder or a run, for --ref stats:",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="FOLDER_OR_RUN", help="folder of images or GAN run directory")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the file")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="custom",
        help="as gankit evaluate's: a named protocol fixes the number of images and the resize "
        "(default custom)",
    )
    p.add_argument(
        "--resizer",
        choices=RESIZERS,
        help="how images reach 299x299 (default legacy-tensorflow; a named --protocol fixes it)",
    )
    p.add_argument(
        "--n",
        type=number(int, 1),
        help="custom: a folder's first N images in the fixed order (default all), or N samples of "
        "a run (default 10000)",
    )
    p.add_argument("--inception", metavar="PATH", help="FID Inception file (default: search)")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    add_ema_option(p)
    p.add_argument("--checkpoint", help="a checkpoint file of the run")
    p.add_argument("--seed", type=number(int, 0), default=0, help="noise seed (default 0)")
    p.add_argument(
        "--no-feats",
        dest="feats",
        action="store_false",
        help="leave out the features (N x 2048 float32, for KID and PRDC): a smaller file",
    )
    p.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    from gankit.evaluation.stats_files import make_stats

    made = make_stats(
        args.source,
        args.out,
        protocol=args.protocol,
        resizer=args.resizer,
        n=args.n,
        inception=args.inception,
        backend=args.backend,
        device=args.device,
        ema=args.ema,
        seed=args.seed,
        checkpoint=args.checkpoint,
        include_feats=args.feats,
    )
    f = made.fields
    held = "mu, sigma" + (", feats" if made.feats else "")
    print(
        f"wrote {made.path}: {held} of {made.n} images of {f['reference']} (protocol "
        f"{f['protocol']}, resize {f['resizer']}, network sha256 {f['network_sha256'][:12]}…)"
    )
    return 0
