"""Generators that leave gankit: safetensors weights + an architecture file, ONNX, TorchScript.

``gankit export RUN --format safetensors|onnx|torchscript --out FILE`` writes the run's generator
(the EMA copy by default, as ``gankit sample`` uses) in eval mode, and beside it ``FILE.json``:
the architecture (the ``nets.G`` options), image size, channels, latent size and noise kind, so
that the file can be rebuilt without gankit's run directory. The safetensors file carries the same
JSON in its metadata under ``"gankit"``; :func:`load_export` (and :func:`gankit.load`) read it back.
ONNX has a dynamic batch (input ``z``: (N, nz), output ``images``: (N, C, H, W) in [-1, 1]).

A class-conditional generator (``gan.conditional``) takes a second input, ``labels``: (N,) int64
class indices (ONNX and TorchScript: ``G(z, labels)``); the record adds ``classes`` (the class
names, in label order) and ``embed_dim`` (the label embedding joined to the noise, for gankit's
label wrapper). A generator with a W space (StyleGAN2) exports to ONNX and TorchScript with a
last input ``psi`` (shape (1,), the truncation in W; 1 = none) and its fixed noise buffers; the
record says ``w_space`` and ``num_ws``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from gankit.config import apply_values, to_dict
from gankit.errors import CheckpointError, ConfigError
from gankit.inference.roles import Exportable
from gankit.nets import build_net, entry
from gankit.outputs import output_file

FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}


class TruncatedSynthesis(torch.nn.Module):
    """A generator with a W space as one traceable graph: ``(z[, labels], psi) -> images``, with
    w = w_avg + psi·(w − w_avg) on every layer, the fixed noise buffers and split modulated convs
    (a grouped conv with a weight per sample does not export to ONNX)."""

    def __init__(self, G: torch.nn.Module) -> None:
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        *labels, psi = rest
        ws = self.G.mapping(z, labels[0] if labels else None)
        avg = self.G.w_avg
        ws = avg + psi.reshape(-1, 1, 1) * (ws - avg)
        return self.G.synthesis(ws, "const", False).clamp(-1, 1)


EXPORT_VERSION = 1


def export_run(
    run: str | Path, fmt: str, out: str | Path, *, ema: bool | None = None
) -> tuple[Path, Path]:
    """Write the generator of ``run`` as ``fmt`` to ``out`` and its architecture to ``out.json``."""
    from gankit.inference.loading import load_role
    from gankit.inference.sampling import resolve_ema

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is unknown: choose one of {', '.join(FORMATS)}")
    out = output_file(out, "--out", (FORMATS[fmt],))
    loaded = load_role(run, Exportable)
    model, cfg = loaded.model, loaded.cfg
    use_ema = resolve_ema(ema, model, run)
    net, record = model.export_generator(use_ema)
    meta = {
        "gankit_export": EXPORT_VERSION,
        "kind": "generator",
        "task": cfg.task,
        "arch": to_dict(cfg)["nets"]["G"],
        "image_size": cfg.data.image_size,
        "channels": cfg.data.channels,
        **record,
        "ema": use_ema,
        "run": str(run),
        "step": loaded.step,
    }
    z = model.noise(2, generator=torch.Generator().manual_seed(0))
    inputs: tuple[torch.Tensor, ...] = (z,)
    names, axes = ["z"], {"z": {0: "n"}, "images": {0: "n"}}
    if "classes" in record:
        inputs = (z, model.default_labels(2).cpu())
        names.append("labels")
        axes["labels"] = {0: "n"}
    if record.get("w_space") and fmt != "safetensors":  # psi as an input, 1 = no truncation
        net = TruncatedSynthesis(net).eval()
        inputs, names = (*inputs, torch.ones(1)), [*names, "psi"]
    _write(fmt, net, inputs, names, axes, out, meta)
    side = out.with_name(out.name + ".json")
    side.write_text(json.dumps(meta, indent=1) + "\n")
    return out, side


def _write(
    fmt: str, net: torch.nn.Module, inputs: tuple, names: list[str], axes: dict, out: Path,
    meta: dict,
) -> None:  # fmt: skip
    if fmt == "safetensors":
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(out), metadata={"gankit": json.dumps(meta)})
    elif fmt == "onnx":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net, inputs, str(out), input_names=names, output_names=["images"],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )  # fmt: skip
    else:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notes
            torch.jit.trace(net, inputs).save(str(out))


def read_export_meta(path: str | Path) -> dict[str, Any]:
    """The architecture record of an exported safetensors file (from its metadata)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a safetensors file ({type(e).__name__})") from None
    if "gankit" not in meta:
        raise CheckpointError(
            f"{path} has no gankit architecture record: export it with gankit export RUN"
        )
    info = json.loads(meta["gankit"])
    if info.get("gankit_export") != EXPORT_VERSION or info.get("kind") != "generator":
        raise CheckpointError(f"{path} is a gankit export of another kind or version")
    return info


def load_export(path: str | Path, device: str | torch.device = "cpu"):
    """A :class:`~gankit.inference.roles.Generative` from an exported safetensors file and its record."""
    from safetensors.torch import load_file

    from gankit.gan.model import GANModel
    from gankit.nets.conditional import ConditionalGenerator

    info = read_export_meta(path)
    arch = dict(info["arch"])
    opts = entry("generator", arch["arch"], "arch").options()
    apply_values(opts, arch, "arch.")
    classes = info.get("classes")
    size, channels = info["image_size"], info["channels"]
    if classes and entry("generator", arch["arch"]).labels:  # takes labels itself (StyleGAN2)
        G = build_net("generator", opts, size, channels, num_classes=len(classes))
    elif classes:
        opts = dataclasses.replace(opts, nz=opts.nz + info["embed_dim"])
        G = ConditionalGenerator(
            build_net("generator", opts, size, channels), len(classes), info["embed_dim"]
        )
    else:
        G = build_net("generator", opts, size, channels)
    try:
        G.load_state_dict(load_file(str(path)))
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match their record ({e})") from None
    dev = torch.device(device)
    G.to(dev).eval()
    model = GANModel(G, None, None, info["nz"], info["noise"], torch.empty(0), dev, classes=classes)
    model.fixed_z = model.noise(64, generator=torch.Generator().manual_seed(0))
    return model
