"""The GAN task's game from its options: penalties, the pipeline in front of D, the phases.

Everything here reads ``gan.*`` once, at the start, and hands :mod:`gankit.gan` plain objects;
the step driver (:meth:`GANTask.step`) never looks at an option again.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gankit.config import Config
from gankit.engine.runtime import Runtime
from gankit.errors import ConfigError
from gankit.gan.ada import AdaController
from gankit.gan.options import GanOptions, parse_penalties
from gankit.gan.penalties import PENALTIES, PathLength, Penalty
from gankit.gan.phases import DMain, GMain, Phase, Regularise
from gankit.gan.pipeline import Ada, DiffAugment, InstanceNoise, Pipeline, Transform
from gankit.gan.stabilisers.matching import last_layer
from gankit.inference.roles import MappedGenerator, ReconstructingDiscriminator
from gankit.nets.conditional import LabelDiscriminator


def build_penalties(gan: GanOptions, defaults: dict[str, float]) -> list[Penalty]:
    """The penalties ``gan`` switches on, in the order their terms are added: R1, R2 (every
    ``gan.reg_every`` steps, weight γ/2), the gradient penalty, weight clipping, then those
    listed in ``gan.penalties``. A loss's defaults (``wgan``: clip 0.01, ``wgan-gp``: GP 10)
    apply where the option is unset."""
    gp = gan.gp_weight if gan.gp_weight is not None else defaults.get("gp", 0.0)
    clip = gan.clip if gan.clip is not None else defaults.get("clip", 0.0)
    wanted = [
        ("r1", gan.r1 / 2, gan.reg_every),
        ("r2", gan.r2 / 2, gan.reg_every),
        ("gp", gp, 1),
        ("clip", clip, 1),
        *parse_penalties(gan.penalties),
    ]
    return [PENALTIES[name](weight, every) for name, weight, every in wanted if weight]


def build_pipeline(cfg: Config, rt: Runtime) -> Pipeline:
    """D's input transforms that ``gan.*`` switches on, in the order of ``gan.d_input``."""
    gan = cfg.section(GanOptions)
    built: dict[str, Transform] = {}
    if gan.ada != "off":
        controller = AdaController(
            gan.ada_target,
            gan.ada_interval,
            gan.ada_kimg,
            gan.ada_p,
            adaptive=gan.ada == "adaptive",
        )
        built["ada"] = Ada(controller, rt.mean_over_ranks, gan.ada_ops, gan.ada_antialias)
    if gan.augment:
        built["diffaugment"] = DiffAugment(gan.augment)
    if gan.instance_noise > 0:
        built["noise"] = InstanceNoise(gan.instance_noise, cfg.train.steps, rt.rank_rows)
    missing = [name for name in built if name not in gan.d_input]
    if missing:
        raise ConfigError(
            f"gan.d_input={','.join(gan.d_input)} leaves out {missing[0]}, which the options "
            f"switch on: add it (gan.d_input={','.join([*gan.d_input, missing[0]])})"
        )
    return Pipeline([built[name] for name in gan.d_input if name in built])


@dataclass
class GanPhases:
    """The phases of a configuration, by the network that moves after them."""

    critic: list[Phase]
    generator: list[Phase]
    penalties: list[Penalty]
    d_interval: int
    """The interval whose optimizer compensation D needs (1 = none)."""
    g_interval: int = 1
    """The same for G (a separate ``Greg`` phase: the path length every 4)."""


def build_phases(gan: GanOptions, D: nn.Module, penalties: list[Penalty]) -> GanPhases:
    """D main (with its fused penalties), D reg (``gan.lazy_reg=separate``), G main, G reg."""
    separate = gan.lazy_reg == "separate"
    lazy = {
        net: [p for p in penalties if p.net == net and separate and p.every > 1] for net in "DG"
    }
    fused = {net: [p for p in penalties if p.net == net and p not in lazy[net]] for net in "DG"}
    base = D.base if isinstance(D, LabelDiscriminator) else D
    main_d = DMain(
        fused["D"],
        gan.label_smoothing,
        gan.aux_weight,
        reconstructs=isinstance(D, ReconstructingDiscriminator),
        watch_grads=gan.watch_grads,
    )
    main_g = GMain(last_layer(base) if gan.feature_matching else None, gan.aux_weight, fused["G"])
    regs = {net: [Regularise(net, lazy[net])] if lazy[net] else [] for net in "DG"}
    d_interval = regs["D"][0].every if regs["D"] else 1
    g_interval = regs["G"][0].every if regs["G"] else 1
    return GanPhases([main_d, *regs["D"]], [main_g, *regs["G"]], penalties, d_interval, g_interval)


def check_mapped(G: nn.Module, gan: GanOptions, penalties: list[Penalty], arch: str) -> None:
    """Style mixing and the path-length penalty need a generator with a W space."""
    if isinstance(G, MappedGenerator):
        return
    wants = [name for name, on in (
        ("gan.style_mixing", gan.style_mixing > 0),
        ("gan.penalties=path-length", any(isinstance(p, PathLength) for p in penalties)),
    ) if on]  # fmt: skip
    if wants:
        raise ConfigError(
            f"{wants[0]} needs a generator with a W space: use nets.G.arch=stylegan2 "
            f"(not {arch}) or drop {wants[0].split('=')[0]}"
        )
