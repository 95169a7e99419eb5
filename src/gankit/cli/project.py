"""``gankit project``: find the latent codes of real images (thin glue over
:mod:`gankit.inference.projection`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gankit.cli.options import add_ema_option, number
from gankit.errors import ConfigError
from gankit.outputs import output_dir

DISTANCE_CHOICES = ("auto", "lpips", "pixel", "dfeat")
"""``--distance``: auto and :data:`gankit.inference.distances.DISTANCES` (named here so that
building the parser imports no torch)."""


def _lpips_module(args: argparse.Namespace, device: str):
    """LPIPS-VGG16 when ``--distance lpips`` (or ``auto`` with weights at hand), else None."""
    from gankit.evaluation.metrics.features import cache_dir
    from gankit.evaluation.metrics.lpips import LPIPS_FILENAME, VGG16_FILENAME, load_lpips

    if args.distance == "auto":
        cached = all((cache_dir() / f).is_file() for f in (VGG16_FILENAME, LPIPS_FILENAME))
        args.distance = "lpips" if (args.vgg and args.lpips) or cached else "auto"
    if args.distance != "lpips":
        return None
    return load_lpips(args.vgg, args.lpips, device)


def _cmd_project(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from gankit.data.images import load_image
    from gankit.inference.loading import load_role
    from gankit.inference.projection import OFFLINE_DISTANCE, Schedule, project_many
    from gankit.inference.projection_files import save_projection, target_tensor
    from gankit.inference.roles import Generative
    from gankit.inference.sampling import class_index, resolve_ema

    out = output_dir(args.out, "--out")
    stems = [Path(p).stem for p in args.images]
    if len(set(stems)) < len(stems):
        raise ConfigError("two images share a file name: project them into separate --out folders")
    run = load_role(args.run, Generative, device=args.device)
    model = run.model
    ema = resolve_ema(args.ema, model, args.run)
    label = None if args.class_ is None else class_index(model, args.class_)
    lpips = _lpips_module(args, args.device)
    distance = OFFLINE_DISTANCE if args.distance == "auto" else args.distance
    channels = run.cfg.data.channels
    for start in range(0, len(stems), args.batch_size):
        names, files = (
            stems[start : start + args.batch_size],
            args.images[start : start + args.batch_size],
        )
        targets = torch.cat([target_tensor(load_image(f, channels), run.cfg) for f in files])
        with tqdm(total=args.steps, desc=", ".join(names)[:40], unit="step", leave=False) as bar:
            found = project_many(
                model, targets, distance, Schedule(steps=args.steps), label=label, ema=ema,
                w_plus=args.w_plus, seed=args.seed, restarts=args.restarts, lpips=lpips,
                progress=lambda step, _n, _img: bar.update(step - bar.n),
            )  # fmt: skip
        for proj, path, stem in zip(found, files, names, strict=True):
            meta = {"run": str(args.run), "step": run.step, "image": str(path)}
            paths = save_projection(proj, out, stem, meta)
            cls = "" if proj.label is None else f", class {proj.label}"
            print(
                f"wrote {paths[0]} ({proj.space}{cls}, {distance} {proj.distance:.4g}) with "
                f"{', '.join(p.name for p in paths[1:])}"
            )
    return 0


def add_project_command(sub: argparse._SubParsersAction) -> None:
    """Register ``gankit project`` on the ``gankit`` subparsers."""
    p = sub.add_parser(
        "project",
        help="find the latent code that reproduces a real image (projection)",
        description="Optimise a latent so that the run's generator reproduces each image: W "
        "(or W+) for a StyleGAN2 run, as stylegan2-ada's projector, z for other GANs. Writes "
        "NAME.png, NAME-target.png, NAME.pt and NAME.npy (gankit sample --latents NAME.pt) and "
        "NAME-progress.gif into --out.",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("images", nargs="+", help="image files to project")
    p.add_argument("--out", required=True, help="folder to write the results to")
    p.add_argument(
        "--steps", type=number(int, 1), default=1000, help="optimisation steps (default 1000)"
    )
    p.add_argument(
        "--distance",
        choices=DISTANCE_CHOICES,
        default="auto",
        help="what is minimised: lpips (LPIPS-VGG16, needs its weights), pixel (MSE) or dfeat "
        "(the run's discriminator features + MSE); auto: lpips when its weights are given or "
        "cached, else pixel (the better offline one on held-out digits: docs/guides/explorer.md)",
    )
    p.add_argument("--vgg", help="torchvision's vgg16-397923af.pth, for --distance lpips")
    p.add_argument("--lpips", help="LPIPS v0.1 vgg.pth (lin weights), for --distance lpips")
    p.add_argument("--w-plus", action="store_true", help="StyleGAN2: one w per layer (W+)")
    p.add_argument("--class", dest="class_", metavar="K", help="conditional runs: this class only")
    p.add_argument("--seed", type=number(int, 0), default=0, help="seed of the starts (default 0)")
    p.add_argument(
        "--restarts",
        type=number(int, 1, 64),
        default=3,
        help="z projection: optimise the best N of 64 seeded starts together (default 3)",
    )
    p.add_argument(
        "--batch-size",
        type=number(int, 1),
        default=8,
        help="images optimised together (default 8; independent problems, one batch)",
    )
    add_ema_option(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.set_defaults(func=_cmd_project)
