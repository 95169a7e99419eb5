"""``gankit import stylegan2-ada PKL --out RUN``: another project's network file as a gankit run.

Thin glue between argparse and :mod:`gankit.compat.stylegan2_import`; registered by
:func:`add_import_command` from :mod:`gankit.cli.main`.
"""

from __future__ import annotations

import argparse


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


def add_import_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit import`` (with its one format, ``stylegan2-ada``) on ``sub``."""
    p = sub.add_parser(
        "import",
        help="turn another project's network file into a gankit run: stylegan2-ada",
        description="Write a gankit run directory from another project's network file, so that "
        "gankit sample, evaluate, export and train --init-from work on it.",
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
