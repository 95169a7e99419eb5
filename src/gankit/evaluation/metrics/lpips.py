"""LPIPS v0.1 'vgg': the learned perceptual distance that perceptual path length measures with.

Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"
(richzhang/PerceptualSimilarity, ``lpips/pretrained_networks.py`` and ``lpips/lpips.py``),
written anew here. For images x0, x1 in [-1, 1] (N, 3, H, W):

1. shift and scale each channel: ``(x - shift) / scale`` with shift (-.030, -.088, -.188) and
   scale (.458, .448, .450) (the ScalingLayer: ImageNet's statistics in [-1, 1] units);
2. VGG16's convolutional features (torchvision ``vgg16().features``, ImageNet weights) after
   relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 (indices 3, 8, 15, 22, 29);
3. each unit-normalised over channels, ``f / (sqrt(sum_c f**2) + 1e-10)``;
4. the squared difference, weighted per channel by the non-negative 1×1 'lin' weights (lin0..lin4,
   a 1×1 conv C→1 without bias), averaged over space, summed over the five layers.

The weights come from two files, both read only with ``torch.load(path, map_location='cpu',
weights_only=True)`` (plain tensors, never code): torchvision's VGG16 state dict
(:data:`VGG16_URL`; only its ``features.*`` keys are used) and the LPIPS v0.1 'vgg' lin weights
(:data:`LPIPS_URL`, keys ``lin{k}.model.1.weight``). :func:`load_lpips` takes explicit paths
(``gankit evaluate --vgg PATH --lpips PATH``) or finds them in the cache folder
(:func:`~gankit.evaluation.metrics.features.cache_dir`), downloading them there once, checksum
verified, as the FID Inception is.

NVIDIA's PPL (stylegan2-ada-pytorch ``metrics/perceptual_path_length.py``) runs a TorchScript port
of this same LPIPS-VGG16 (``vgg16.pt``). gankit does not load that file, because a TorchScript file
carries code; its values are the same metric computed from the original LPIPS weights and may
differ slightly from the reference's numbers.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.errors import CheckpointError, DataError, first_line
from gankit.evaluation.metrics import inception  # its download_file (tests replace it there)
from gankit.evaluation.metrics.features import cache_dir

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_FILENAME = "vgg16-397923af.pth"
VGG16_SHA256 = "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"  # 553,433,881 B
LPIPS_URL = (
    "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"
)
LPIPS_FILENAME = "lpips-v0.1-vgg.pth"
LPIPS_SHA256 = "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"  # 7,289 B

VGG16_TAPS = (3, 8, 15, 22, 29)
"""relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's ``vgg16().features``."""
VGG16_CHANNELS = (64, 128, 256, 512, 512)
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
_HINT = f"give --vgg PATH (torchvision's {VGG16_FILENAME}) and --lpips PATH (LPIPS v0.1 vgg.pth)"


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3 (indices 0-29, the same numbering, so
    its state dict's ``features.*`` keys load as they are)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16_LAYOUT:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
            cin = int(v)
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """``lpips(x0, x1)``: the LPIPS distance of each pair of images in [-1, 1], shape (N,).

    ``features`` is a sequence of layers (VGG16's, or a small stand-in in tests), ``taps`` the
    indices of the layers whose outputs are compared and ``lin`` one non-negative weight per channel
    of each tap (any shape with that many elements).
    """

    def __init__(self, features: nn.Sequential, taps: Sequence[int], lin: Sequence[Tensor]) -> None:
        super().__init__()
        if len(lin) != len(taps) or not taps or max(taps) >= len(features):
            raise ValueError(f"LPIPS: {len(lin)} lin weights for taps {tuple(taps)}")
        self.features = features
        self.taps = tuple(sorted(taps))
        for k, w in enumerate(lin):
            self.register_buffer(f"lin{k}", w.detach().float().reshape(1, -1, 1, 1))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        self.min_size = 2 ** sum(i < self.taps[-1] for i in pools)
        """The smallest height and width whose deepest tap is at least 1×1."""
        self.requires_grad_(False).eval()

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        if min(x0.shape[-2:]) < self.min_size:
            raise DataError(
                f"LPIPS needs images of at least {self.min_size}×{self.min_size} (its deepest "
                f"layer is 1/{self.min_size} of the size), got {x0.shape[-2]}×{x0.shape[-1]}"
            )
        x = (torch.cat([x0, x1]) - self.shift) / self.scale
        total = x.new_zeros(len(x0))
        for k, f in enumerate(self._tapped(x)):
            f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
            f0, f1 = f.chunk(2)
            lin = getattr(self, f"lin{k}")
            total = total + ((f0 - f1).square() * lin).sum(1).mean((1, 2))
        return total

    def _tapped(self, x: Tensor) -> list[Tensor]:
        """The outputs of the tapped layers (the layers after the last tap are not run)."""
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
                if len(out) == len(self.taps):
                    break
        return out


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, Tensor]:
    """A state dict of plain tensors, read with ``weights_only=True``; CheckpointError if not."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable torch state dict ({first_line(e, 80)}): give {what}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a state dict: give {what}"
        )
    return state


def vgg16_from_state_dict(
    state: dict[str, Tensor], origin: str = "the VGG16 file"
) -> nn.Sequential:
    """:func:`vgg16_features` holding the ``features.*`` tensors of torchvision's VGG16 state dict
    (the classifier's keys are ignored). The layers are built on ``meta`` and take the given
    tensors as they are, so no random initialisation is spent on them."""
    with torch.device("meta"):
        net = vgg16_features()
    wanted = {f"features.{k}": v for k, v in net.state_dict().items()}
    missing = [k for k in wanted if k not in state]
    if missing:
        raise CheckpointError(
            f"{origin} has no {missing[0]}: it is not torchvision's VGG16 state dict ({VGG16_FILENAME})"
        )
    for key, want in wanted.items():
        if tuple(state[key].shape) != tuple(want.shape):
            raise CheckpointError(
                f"{origin}: {key} has shape {tuple(state[key].shape)}, VGG16 has "
                f"{tuple(want.shape)}: give torchvision's {VGG16_FILENAME}"
            )
    net.load_state_dict({k[len("features.") :]: state[k].float() for k in wanted}, assign=True)
    return net


def lin_from_state_dict(
    state: dict[str, Tensor],
    origin: str = "the LPIPS file",
    channels: Sequence[int] = VGG16_CHANNELS,
) -> list[Tensor]:
    """The lin weights ``lin{k}.model.1.weight`` (1, C_k, 1, 1) of an LPIPS v0.1 state dict."""
    out = []
    for k, c in enumerate(channels):
        key = f"lin{k}.model.1.weight"
        w = state.get(key)
        if w is None or tuple(w.shape) != (1, c, 1, 1):
            found = "no such key" if w is None else f"shape {tuple(w.shape)}"
            raise CheckpointError(
                f"{origin}: {key} of shape (1, {c}, 1, 1) expected, {found}: give LPIPS v0.1 vgg.pth"
            )
        out.append(w.float())
    return out


def find_weights(
    path: str | os.PathLike | None, option: str, filename: str, url: str, sha256: str
) -> Path:
    """An explicit ``path`` (given as ``option``), else ``cache_dir() / filename``, downloaded there
    (checksum verified) when missing; a one-line CheckpointError naming ``--vgg`` and ``--lpips``
    when offline."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise CheckpointError(f"{option} {p} is not a file: {_HINT}")
        return p
    cached = cache_dir() / filename
    if cached.is_file():
        return cached
    try:
        return inception.download_file(url, cached, sha256)
    except CheckpointError:
        raise CheckpointError(
            f"cannot download {url}: {_HINT}, or put the files at {cache_dir()}/"
            f"{VGG16_FILENAME} and {cache_dir()}/{LPIPS_FILENAME}"
        ) from None


def load_lpips(
    vgg: str | os.PathLike | None = None,
    lpips: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> LPIPS:
    """LPIPS-VGG16 v0.1 from torchvision's VGG16 weights (``vgg``) and the lin weights
    (``lpips``); each found or downloaded by :func:`find_weights`."""
    vgg_path = find_weights(vgg, "--vgg", VGG16_FILENAME, VGG16_URL, VGG16_SHA256)
    lin_path = find_weights(lpips, "--lpips", LPIPS_FILENAME, LPIPS_URL, LPIPS_SHA256)
    features = vgg16_from_state_dict(
        read_state_dict(vgg_path, f"torchvision's {VGG16_FILENAME} (--vgg)"), str(vgg_path)
    )
    lin = lin_from_state_dict(
        read_state_dict(lin_path, "LPIPS v0.1 vgg.pth (--lpips)"), str(lin_path)
    )
    return LPIPS(features, VGG16_TAPS, lin).to(device)
