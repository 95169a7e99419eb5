"""``gankit sample``, ``gankit translate`` and ``gankit export``: using a trained generator.

Thin glue between argparse and :mod:`gankit.inference`; registered by :func:`add_sample_commands`
and :func:`add_export_command` from :mod:`gankit.cli.main`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gankit.cli.options import add_ema_option, number
from gankit.errors import ConfigError
from gankit.outputs import IMAGE_SUFFIXES, output_dir, output_file

if TYPE_CHECKING:
    import torch

    from gankit.inference.loading import LoadedRun


def _cmd_sample(args: argparse.Namespace) -> int:
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative
    from gankit.inference.sampling import class_index, resolve_ema, save_grid, save_individual

    if args.out:
        output_file(args.out, "--out", IMAGE_SUFFIXES)
    if args.individual:
        output_dir(args.individual, "--individual")
    run = load_role(args.run, Generative, device=args.device)
    task, step = run.model, run.step
    args.ema = resolve_ema(args.ema, task, args.run)
    if args.bank and args.rank_by_d:
        raise ConfigError("--bank stores the codes of plain samples: leave out --rank-by-d")
    label = None if args.class_ is None else class_index(task, args.class_)
    shaped = args.noise_std != 1 or args.noise_mean != 0 or args.truncation is not None
    if args.bank and (label is not None or shaped):
        raise ConfigError(
            "--bank stores plain codes: leave out --class/--noise-std/--noise-mean/--truncation"
        )
    images = _latent_images(args, run, label) if args.latents else _sample_images(args, run, label)
    out = (
        Path(args.out)
        if args.out
        else Path(args.run) / "samples" / f"sample-step{step:06d}-seed{args.seed}.png"
    )
    save_grid(images, out)
    print(f"wrote {out}")
    if args.individual:
        paths = save_individual(images, args.individual)
        print(f"wrote {len(paths)} images to {args.individual}")
    return 0


def _latent_images(args: argparse.Namespace, run: LoadedRun, label: int | None) -> torch.Tensor:
    """The images of a latent file (``--latents``, written by gankit project)."""
    import torch

    from gankit.inference.projection_files import load_latents, render_latents

    if args.bank or args.rank_by_d or args.truncation is not None or args.noise_std != 1:
        raise ConfigError("--latents draws the file's codes as they are: leave out --bank, "
                          "--rank-by-d, --truncation and --noise-std")  # fmt: skip
    codes = load_latents(args.latents, run.model, args.ema)
    labels = None if label is None else torch.full((len(codes.latent),), label)
    return render_latents(run.model, codes, args.ema, labels)


def _sample_images(args: argparse.Namespace, run: LoadedRun, label: int | None) -> torch.Tensor:
    """The images of ``gankit sample``: a latent bank's, the discriminator's best, or plain."""
    import torch

    from gankit.inference.roles import Critic, WSpaceModel
    from gankit.inference.sampling import generate, rank_by_discriminator

    task = run.model

    def labels(n: int) -> torch.Tensor | None:
        return None if label is None else torch.full((n,), label, dtype=torch.long)

    noise = {
        "noise_std": args.noise_std,
        "truncation": args.truncation,
        "noise_mean": args.noise_mean,
    }
    if args.bank:
        from gankit.inference.latent import bank_images_dir, save_bank

        meta = {"run": str(args.run), "step": run.step}
        images = save_bank(task, args.n, args.bank, args.seed, args.ema, meta)
        print(f"wrote {args.bank} and {bank_images_dir(args.bank)}/ (index.png numbers them)")
    elif args.rank_by_d:
        if not isinstance(task, Critic):
            raise ConfigError(
                f"--rank-by-d: {args.run} is a {run.cfg.task} run without a discriminator"
            )
        if args.from_n < args.n:
            raise ConfigError(
                f"--from {args.from_n} must be at least --n {args.n}: rank more samples than you keep"
            )
        pool = generate(
            task, args.from_n, seed=args.seed, ema=args.ema, labels=labels(args.from_n), **noise
        )
        images = rank_by_discriminator(task, pool, args.n)
    elif args.truncation is not None and isinstance(task, WSpaceModel) and task.w_generator():
        from gankit.inference.wspace import generate_w

        if args.noise_std != 1 or args.noise_mean != 0:
            raise ConfigError(
                "--truncation truncates this run's W space: leave out --noise-std/--noise-mean"
            )
        images = generate_w(
            task, args.n, args.seed, args.truncation, args.truncation_cutoff, labels(args.n),
            args.ema,
        )  # fmt: skip
    else:
        if args.truncation_cutoff is not None:
            raise ConfigError(
                "--truncation-cutoff needs --truncation and a run with a W space (StyleGAN2)"
            )
        images = generate(
            task, args.n, seed=args.seed, ema=args.ema, labels=labels(args.n), **noise
        )
    return images


def _cmd_translate(args: argparse.Namespace) -> int:
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Translator
    from gankit.inference.translate_files import translate_files

    out = output_dir(args.out, "--out")
    run = load_role(args.run, Translator, device=args.device, checkpoint=args.checkpoint)
    written = translate_files(
        run.model,
        args.inputs,
        out,
        direction=args.direction,
        channels=run.cfg.data.channels,
        batch_size=args.batch_size,
    )
    print(f"wrote {len(written)} images to {out} ({args.direction}, step {run.step})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gankit.inference.export import FORMATS, export_run

    out = args.out or str(Path(args.run) / f"generator{FORMATS.get(args.format, '')}")
    path, side = export_run(args.run, args.format, out, ema=args.ema)
    print(f"wrote {path} and {side}")
    return 0


def add_sample_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit sample`` and ``gankit translate`` on the ``gankit`` subparsers."""
    p = sub.add_parser(
        "sample",
        help="generate images from a trained run",
        description="Generate images from a run's newest checkpoint.",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--n", type=number(int, 1), default=64, help="number of images (default 64)")
    p.add_argument("--out", help="grid PNG to write (default RUN/samples/sample-...png)")
    p.add_argument("--seed", type=number(int, 0), default=0, help="noise seed (default 0)")
    add_ema_option(p)
    p.add_argument(
        "--individual", metavar="DIR", help="also write each image as its own PNG in DIR"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    _add_sample_selection_options(p)
    p.add_argument(
        "--latents",
        metavar="FILE",
        help="draw the codes of FILE (.pt or .npy of gankit project) instead of seeded noise",
    )
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser(
        "translate",
        help="translate images with an image-to-image run (cyclegan, pix2pix, cut)",
        description="Translate image files or folders; outputs keep the names and sizes of the inputs.",
    )
    p.add_argument("run", help="run directory of a cyclegan, pix2pix or cut run")
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="folder to write the translated images to")
    p.add_argument(
        "--direction", default="AtoB", help="AtoB or BtoA (one-sided runs: their own only)"
    )
    p.add_argument(
        "--batch-size", type=number(int, 1), default=8, help="images per batch (default 8)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--checkpoint", help="checkpoint name or file (default: the newest)")
    p.set_defaults(func=_cmd_translate)


def _add_sample_selection_options(p: argparse.ArgumentParser) -> None:
    """``gankit sample``'s options for which images to draw: ranked, banked, by class, truncated."""
    p.add_argument(
        "--rank-by-d",
        action="store_true",
        help="generate --from images and keep the --n the discriminator scores most real",
    )
    p.add_argument(
        "--top",
        dest="n",
        type=number(int, 1),
        default=argparse.SUPPRESS,
        help="with --rank-by-d: how many to keep (same as --n)",
    )
    p.add_argument(
        "--from",
        dest="from_n",
        type=number(int, 1),
        default=1024,
        help="with --rank-by-d: how many to rank (default 1024)",
    )
    p.add_argument(
        "--bank",
        metavar="FILE",
        help="also save the latent codes to FILE and numbered images for gankit arithmetic",
    )
    p.add_argument(
        "--class",
        dest="class_",
        metavar="K",
        help="conditional runs: draw this class (a class name or index); default every class in turn",
    )
    p.add_argument(
        "--noise-std",
        type=number(float, 0, lo_open=True),
        default=1.0,
        help="scale the noise by S < 1 for more typical, less varied samples (default 1)",
    )
    p.add_argument(
        "--noise-mean",
        type=number(float),
        default=0.0,
        help="shift every noise component by M (the seed notes' gen_mean; default 0)",
    )
    p.add_argument(
        "--truncation",
        type=number(float, 0),
        metavar="T",
        help="truncation trick: redraw noise components beyond +-T (e.g. 0.7; default off); "
        "for a run with a W space (StyleGAN2), psi: w = w_avg + psi (w - w_avg), in [0, 1]",
    )
    p.add_argument(
        "--truncation-cutoff",
        type=number(int, 1),
        metavar="K",
        help="W space: truncate only the first K ws (the coarse layers; default all)",
    )


def add_export_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit export`` on the ``gankit`` subparsers."""
    p = sub.add_parser(
        "export",
        help="export a run's generator: safetensors, onnx or torchscript",
        description="Write the run's generator (the EMA copy by default) to FILE and its "
        "architecture to FILE.json, loadable without gankit (see docs/api.md).",
    )
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--format", default="safetensors", help="safetensors (default), onnx or torchscript"
    )
    p.add_argument("--out", help="file to write (default RUN/generator.<ext>)")
    add_ema_option(p)
    p.set_defaults(func=_cmd_export)
