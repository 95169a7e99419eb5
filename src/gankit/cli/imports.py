"""``gankit import stylegan2-ada PKL --out RUN`` and ``gankit import cyclegan|pix2pix|cut
FILE.pth [FILE2.pth] --out RUN``: another project's network files as a gankit run.

Thin glue between argparse and :mod:`gankit.compat.stylegan2_import` /
:mod:`gankit.compat.translation_import`; registered by :func:`add_import_command` from
:mod:`gankit.cli.main`.
"""

from __future__ import annotations

import argparse

from gankit.cli.options import number


def _cmd_stylegan2_ada(args: argparse.Namespace) -> int:
    from gankit.compat.stylegan2_import import SOURCE_PLACEHOLDER, import_stylegan2_ada

    run = import_stylegan2_ada(
        args.pkl, args.out, args.force, say=lambda message: print(message, flush=True)
    )
    classes = f"{len(run.classes)} classes" if run.classes else "unconditional"
    print(
        f"imported {args.pkl} (sha256 {run.sha256[:12]}): {run.resolution}x{run.resolution}, "
        f"{run.channels} channel{'s' if run.channels > 1 else ''}, {classes}, "
        f"G {run.g_params:,} / D {run.d_params:,} parameters"
    )
    print(f"run directory: {run.run_dir}")
    data = " data.source=folder:IMAGES" if run.data_source == SOURCE_PLACEHOLDER else ""
    print("next:")
    print(f"  gankit sample {run.run_dir} --truncation 0.7")
    print(
        f"  gankit train {run.run_dir / 'config.yaml'}{data} --init-from {run.run_dir} "
        f"--out {run.run_dir}-finetune"
    )
    return 0


def _cmd_translation(args: argparse.Namespace) -> int:
    from gankit.compat.translation_import import import_translation

    fmt = args.import_format
    run = import_translation(
        fmt,
        args.files,
        args.out,
        netG=args.netG,
        norm=args.norm,
        size=args.size,
        d_files=args.netD_file or (),
        direction=args.direction,
        antialias=False if args.no_antialias else None,
        antialias_up=False if args.no_antialias_up else None,
        data_root=args.data_root,
        force=args.force,
        say=lambda message: print(message, flush=True),
    )
    for part in run.parts:
        if part.file is None:
            print(f"{part.name}: new ({part.parameters:,} parameters), not in the files given")
            continue
        dropped = (
            f"; dropped {part.dropped} instance-norm statistics (saved by PyTorch 0.4 and "
            "earlier; the reference's loader drops them too)"
            if part.dropped
            else ""
        )
        print(
            f"{part.name} from {part.file} (sha256 {part.sha256[:12]}): {part.described}, "
            f"{part.parameters:,} parameters{dropped}"
        )
    if run.task == "cyclegan" and any(p.name == "G_B" and p.file is None for p in run.parts):
        print("note: G_B is new, so --direction BtoA gives noise until the run is fine-tuned")
    print(f"run directory: {run.run_dir} ({run.task}, {run.size}x{run.size}, {run.channels} ch)")
    direction = run.direction or "AtoB"
    flag = f" --direction {direction}" if direction != "AtoB" else ""
    root = "" if run.data_root else " data.root=DATASET"
    print("next:")
    print(f"  gankit translate {run.run_dir} IMAGES/ --out TRANSLATED/{flag}")
    print(
        f"  gankit train {run.run_dir / 'config.yaml'}{root} --init-from {run.run_dir} "
        f"--out {run.run_dir}-finetune"
    )
    if run.data_root:
        print(f"  gankit train --resume {run.run_dir}")
    return 0


_TRANSLATION = {
    "cyclegan": (
        "pytorch-CycleGAN-and-pix2pix CycleGAN generators (latest_net_G_A.pth "
        "[latest_net_G_B.pth], or a published horse2zebra.pth)",
        "Read one or two CycleGAN generator state dicts of junyanz/pytorch-CycleGAN-and-pix2pix "
        "(the first is G_A: A to B, the second G_B: B to A; a published one-way model such as "
        "horse2zebra.pth is G_A alone, and G_B starts new) and write them as a gankit cyclegan "
        "run. Defaults as the reference's: resnet_9blocks, instance norm.",
    ),
    "pix2pix": (
        "a pytorch-CycleGAN-and-pix2pix pix2pix generator (latest_net_G.pth, or a published "
        "facades_label2photo.pth)",
        "Read a pix2pix generator state dict of junyanz/pytorch-CycleGAN-and-pix2pix and write "
        "it as a gankit pix2pix run. Defaults as the reference's: unet_256, batch norm.",
    ),
    "cut": (
        "a CUT / FastCUT generator (latest_net_G.pth of taesungp/contrastive-unpaired-translation)",
        "Read a CUT or FastCUT generator state dict of taesungp/contrastive-unpaired-translation "
        "and write it as a gankit cut run. Defaults as the reference's: resnet_9blocks, instance "
        "norm, antialiased down- and upsampling (its default; --no-antialias and "
        "--no-antialias-up as its --no_antialias and --no_antialias_up).",
    ),
}


def _add_translation_format(formats: argparse._SubParsersAction, fmt: str) -> None:
    from gankit.compat.translation_import import FORMATS
    from gankit.compat.translation_reference import GENERATORS, NORMS

    spec = FORMATS[fmt]
    help_text, description = _TRANSLATION[fmt]
    s = formats.add_parser(
        fmt,
        help=help_text,
        description=description + " Files are read with torch.load(weights_only=True); the "
        "instance-norm statistics old PyTorch versions saved are dropped, as the reference's "
        "loader does. The run records the files and their sha256 in RUN/imported.json.",
    )
    two = len(spec.generators) > 1
    s.add_argument(
        "files",
        nargs="+",
        metavar="FILE.pth",
        help="G_A's file, then G_B's (optional)" if two else "the generator's file",
    )
    s.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    s.add_argument(
        "--netG",
        choices=GENERATORS,
        help=f"the generator's architecture, the reference's --netG (default {spec.netG})",
    )
    s.add_argument(
        "--norm", choices=NORMS, help=f"its norm, the reference's --norm (default {spec.norm})"
    )
    s.add_argument(
        "--size",
        type=number(int, 1),
        default=256,
        help="the image size the model was trained at, the reference's --crop_size (default 256)",
    )
    s.add_argument(
        "--netD-file",
        action="append",
        metavar="FILE.pth",
        help=f"a discriminator's file (latest_net_{'D_A.pth, then D_B' if two else 'D'}.pth); "
        "without it the discriminators start new",
    )
    _add_model_options(s, fmt, two)
    s.add_argument(
        "--data-root",
        metavar="DIR",
        help="the dataset (trainA/ trainB/ testA/ testB/; pix2pix: train/ test/): recorded as "
        "data.root for gankit evaluate and fine-tuning, and loaded so that train --resume works",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="replace the run already in --out (never a folder that is not a run)",
    )
    s.set_defaults(func=_cmd_translation)


def _add_model_options(s: argparse.ArgumentParser, fmt: str, two: bool) -> None:
    """pix2pix's and CUT's one direction; CUT's antialiasing switches."""
    s.set_defaults(direction="AtoB", no_antialias=False, no_antialias_up=False)
    if not two:
        s.add_argument(
            "--direction",
            choices=("AtoB", "BtoA"),
            default="AtoB",
            help="the reference's --direction the model was trained with (default AtoB)",
        )
    if fmt == "cut":
        s.add_argument(
            "--no-antialias",
            action="store_true",
            help="the model was trained with CUT's --no_antialias (strided convs down, in G and D)",
        )
        s.add_argument(
            "--no-antialias-up",
            action="store_true",
            help="the model was trained with CUT's --no_antialias_up (transposed convs up)",
        )


def add_import_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit import`` (``stylegan2-ada``, ``cyclegan``, ``pix2pix``, ``cut``) on
    ``sub``."""
    p = sub.add_parser(
        "import",
        help="turn another project's network file into a gankit run: stylegan2-ada, cyclegan, "
        "pix2pix, cut",
        description="Write a gankit run directory from another project's network file, so that "
        "gankit sample or translate, evaluate, export and train --init-from work on it.",
    )
    formats = p.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    s = formats.add_parser(
        "stylegan2-ada",
        help="an NVlabs/stylegan2-ada-pytorch network pickle (network-snapshot-*.pkl, ffhq.pkl)",
        description="Read a stylegan2-ada-pytorch network pickle without running any code from "
        "it, and write its G, D and G_ema as a gankit StyleGAN2 run (a 'skip' G, a 'resnet' or "
        "'orig' D). The run records the file and its sha256 in RUN/imported.json.",
    )
    s.add_argument("pkl", metavar="PKL", help="the .pkl file")
    s.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    s.add_argument(
        "--force",
        action="store_true",
        help="replace the run already in --out (never a folder that is not a run)",
    )
    s.set_defaults(func=_cmd_stylegan2_ada)
    for fmt in _TRANSLATION:
        _add_translation_format(formats, fmt)
