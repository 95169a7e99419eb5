"""``gankit report``, ``interpolate``, ``style-mix`` and ``arithmetic``: looking at a trained run.

Thin glue between argparse and :mod:`gankit.evaluation.report` / :mod:`gankit.inference.latent`; registered by
:func:`add_viz_commands` from :mod:`gankit.cli`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.cli.options import add_ema_option, number
from gankit.outputs import IMAGE_SUFFIXES, output_file


def _gan_run(args: argparse.Namespace):
    """``(cfg, model, step)`` of a run that has a generator, with --ema and outputs checked."""
    if args.out:
        output_file(args.out, "--out", IMAGE_SUFFIXES)
    if getattr(args, "gif", None):
        output_file(args.gif, "--gif", (".gif",))
    if getattr(args, "mp4", None):
        from gankit.inference.latent import check_mp4

        check_mp4(output_file(args.mp4, "--mp4", (".mp4",)))
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative
    from gankit.inference.sampling import resolve_ema

    run = load_role(args.run, Generative, device=args.device)
    args.ema = resolve_ema(args.ema, run.model, args.run)
    return run.cfg, run.model, run.step


def _cmd_report(args: argparse.Namespace) -> int:
    from gankit.evaluation.report import build_report

    if args.out:
        output_file(args.out, "--out", (".html", ".htm"))
    print(f"wrote {build_report(args.run, args.out, args.max_grids)}")
    return 0


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from gankit.inference.latent import interpolate, save_gif
    from gankit.inference.sampling import save_grid

    _, task, step = _gan_run(args)
    images = interpolate(task, args.rows, args.steps, args.mode, args.seed, args.ema)
    out = Path(
        args.out or Path(args.run) / "samples" / f"interpolate-step{step:06d}-seed{args.seed}.png"
    )
    save_grid(images, out, nrow=args.steps)
    print(f"wrote {out} ({args.rows} rows of {args.steps} steps, {args.mode})")
    if args.gif:
        print(f"wrote {save_gif(images, args.rows, args.steps, args.gif)}")
    if args.mp4:
        print(f"wrote {save_gif(images, args.rows, args.steps, args.mp4)}")
    return 0


def _cmd_arithmetic(args: argparse.Namespace) -> int:
    from gankit.inference.latent import arithmetic_grid, load_bank, parse_expression
    from gankit.inference.sampling import save_grid

    cfg, task, step = _gan_run(args)
    z = load_bank(args.bank, task.nz)
    terms = parse_expression(args.expression, z.shape[0])
    images, nrow = arithmetic_grid(task, z, terms, args.variants, args.jitter, args.seed, args.ema)
    out = Path(args.out or Path(args.run) / "samples" / f"arithmetic-step{step:06d}.png")
    save_grid(images, out, nrow=nrow)
    print(f"wrote {out}: one row per term, then the result; the last column reads the expression")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory")
    add_ema_option(p)
    p.add_argument("--seed", type=number(int, 0), default=0, help="noise seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")


def _seed_list(text: str) -> list[int]:
    """``--rows``/``--cols`` of style-mix: comma-separated seeds, or a range A-B."""
    try:
        if "-" in text and "," not in text:
            a, b = (int(t) for t in text.split("-"))
            seeds = list(range(a, b + 1))
        else:
            seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(seeds) > 32:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 1 to 32 seeds >= 0, comma-separated (85,100,75) or a range (0-5)"
        )
    return seeds


def _cmd_style_mix(args: argparse.Namespace) -> int:
    from gankit.inference.sampling import class_index, save_grid
    from gankit.inference.wspace import style_mix

    _, model, step = _gan_run(args)
    label = None if args.class_ is None else class_index(model, args.class_)
    images, width = style_mix(
        model, args.rows, args.cols, args.layers, args.truncation, label, args.ema
    )
    out = args.out or Path(args.run) / "samples" / f"style-mix-step{step:06d}.png"
    print(f"wrote {save_grid(images, out, nrow=width)}")
    return 0


def _add_style_mix_command(sub) -> None:
    p = sub.add_parser(
        "style-mix",
        help="style-mixing grid of a StyleGAN2 run: row seeds with layers from column seeds",
        description="The classic figure of Karras et al.: the column seeds' images along the "
        "top, the row seeds' down the left, and in each cell the row seed's ws with --layers "
        "taken from the column seed (0-3 coarse: pose, shape; the last layers: colour).",
    )
    p.add_argument("run", help="run directory")
    add_ema_option(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--rows", type=_seed_list, required=True, help="row seeds, e.g. 85,100,75")
    p.add_argument("--cols", type=_seed_list, required=True, help="column seeds, e.g. 55,821")
    p.add_argument(
        "--layers", default="0-6", help="ws taken from the column seed, A-B inclusive (default 0-6)"
    )
    p.add_argument(
        "--truncation", type=number(float, 0), default=1.0, help="psi in W (default 1: none)"
    )
    p.add_argument("--class", dest="class_", metavar="K", help="conditional runs: the class")
    p.add_argument("--out", help="grid PNG (default RUN/samples/style-mix-...png)")
    p.set_defaults(func=_cmd_style_mix)


def add_viz_commands(sub) -> None:
    """Register report, interpolate, style-mix and arithmetic on the ``gankit`` subparsers."""
    p = sub.add_parser(
        "report",
        help="write a self-contained report.html of a run",
        description="Curves, preview grids over time, health events, evaluation and config of a "
        "run, in one HTML file with nothing to download.",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="HTML file to write (default RUN/report.html)")
    p.add_argument(
        "--max-grids", type=number(int, 0), default=8, help="preview grids to include (default 8)"
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "interpolate",
        help="interpolation grid (and GIF) between random latent codes",
        description="Each row walks from one random code to another in --steps steps.",
    )
    _common(p)
    p.add_argument("--steps", type=number(int, 2), default=8, help="images per row (default 8)")
    p.add_argument("--rows", type=number(int, 1), default=4, help="rows, one path each (default 4)")
    p.add_argument(
        "--mode",
        choices=("slerp", "lerp"),
        default="slerp",
        help="slerp (spherical, default; for normal noise) or lerp (straight; for uniform noise)",
    )
    p.add_argument("--out", help="grid PNG (default RUN/samples/interpolate-...png)")
    p.add_argument("--gif", help="also write an animated GIF here")
    p.add_argument("--mp4", help='also write an MP4 video here (pip install -e ".[video]")')
    p.set_defaults(func=_cmd_interpolate)

    _add_style_mix_command(sub)

    p = sub.add_parser(
        "arithmetic",
        help='latent vector arithmetic on a bank: "A - B + C"',
        description="Average the codes of each comma-separated index set of a latent bank and "
        'add/subtract the means, e.g. gankit arithmetic RUN "3,7,9 - 12,20 + 5" --bank bank.pt. '
        "Make the bank with gankit sample RUN --bank bank.pt (see bank-images/index.png).",
    )
    _common(p)
    p.add_argument("expression", help='index sets joined by + and -, e.g. "3,7 - 12 + 5,9"')
    p.add_argument("--bank", required=True, help="latent bank from gankit sample --bank")
    p.add_argument("--out", help="grid PNG (default RUN/samples/arithmetic-...png)")
    p.add_argument(
        "--variants",
        type=number(int, 0),
        default=7,
        help="noisy variants of the result (default 7)",
    )
    p.add_argument(
        "--jitter",
        type=number(float, 0),
        default=0.25,
        help="uniform noise of the variants (default 0.25)",
    )
    p.set_defaults(func=_cmd_arithmetic)
