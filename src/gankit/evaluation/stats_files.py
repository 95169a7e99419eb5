"""Statistics files: ``mu``/``sigma`` (and ``feats``) in the ``.npz`` layout of pytorch-fid and clean-fid.

pytorch-fid (``save_fid_stats``, ``--save-stats``) and clean-fid (``make_custom_stats``) store
``np.savez_compressed(path, mu=..., sigma=...)`` with ``sigma = np.cov(features, rowvar=False)``;
clean-fid's KID statistics store the features themselves as ``feats`` (N x 2048). gankit writes
the same arrays, so either tool reads its files, and adds what makes them comparable as extra
entries, plain strings and numbers that those tools ignore: ``protocol``, ``resizer``,
``network``, ``network_sha256``, ``n``, ``ddof``, ``reference``, ``reference_sha256``,
``image_size``, ``features`` and ``gankit_version``.

Reading (``--ref stats:FILE.npz``) takes any such file, never with pickle (``allow_pickle=False``:
an ``.npz`` from elsewhere is data, not code). A file that records a protocol, resizer or
covariance convention other than the one asked for is refused in one line; a file that records
none (pytorch-fid's, clean-fid's) is taken as made with the asked-for settings, except that
clean-fid's own names (``{name}_{mode}_{split}_{res}.npz``, e.g.
``cifar10_legacy_tensorflow_train_32.npz``) say their resize, which is checked.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.errors import CheckpointError, ConfigError, DataError, first_line
from gankit.evaluation.metrics.fid import as_features, feature_stats

RECORD_TEXT_FIELDS = (
    "protocol",
    "resizer",
    "network",
    "network_sha256",
    "reference",
    "reference_sha256",
    "features",
)
"""The text fields a stats file takes from an evaluation's protocol record."""
TEXT_FIELDS = (*RECORD_TEXT_FIELDS, "gankit_version")
NUMBER_FIELDS = ("n", "ddof", "image_size")
_CLEAN_FID_MODE = re.compile(r"_(clean|legacy_tensorflow|legacy_pytorch)_")


@dataclass
class StatsFile:
    """The statistics of a reference set read from a file (ours or another tool's)."""

    path: Path
    mu: np.ndarray
    sigma: np.ndarray
    feats: np.ndarray | None
    fields: dict[str, Any] = field(default_factory=dict)
    """The protocol fields the file records (none for pytorch-fid's and clean-fid's)."""
    sha256: str = ""
    """Of the file itself."""
    notes: list[str] = field(default_factory=list)
    """What :func:`check_stats` could not check."""

    @property
    def ours(self) -> bool:
        return "protocol" in self.fields

    @property
    def n(self) -> int | None:
        if "n" in self.fields:
            return int(self.fields["n"])
        return len(self.feats) if self.feats is not None else None

    @property
    def source(self) -> str:
        """``stats:PATH`` for another tool's file; the recorded reference set for gankit's."""
        return self.fields.get("reference") or f"stats:{self.path}"

    @property
    def checksum(self) -> str:
        """The recorded images' checksum, or the file's own."""
        return self.fields.get("reference_sha256") or self.sha256


def write_stats(
    path: str | os.PathLike,
    features: np.ndarray | torch.Tensor,
    fields: dict[str, Any],
    *,
    ddof: int = 1,
    include_feats: bool = True,
) -> Path:
    """Write ``mu``, ``sigma`` (covariance with ``ddof``), optionally ``feats``, and ``fields``.

    ``fields`` are the protocol fields (see the module docstring; None values are left out). The
    file appears atomically (a temporary name, then a rename); ``.npz`` is appended when missing,
    as numpy would.
    """
    out = Path(path)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    f = as_features(features)
    mu, sigma = feature_stats(f, ddof)
    arrays: dict[str, np.ndarray] = {"mu": mu, "sigma": sigma}
    if include_feats:
        arrays["feats"] = f.astype(np.float32)
    extra = {**fields, "n": len(f), "ddof": ddof, "gankit_version": _version()}
    for key, value in extra.items():
        if value is None:
            continue
        if key not in TEXT_FIELDS + NUMBER_FIELDS:
            raise ConfigError(f"stats file field {key!r} is not one gankit writes")
        arrays[key] = np.asarray(value if key in NUMBER_FIELDS else str(value))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    except OSError as e:
        raise CheckpointError(f"cannot write {out}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def _version() -> str | None:
    """gankit's installed version (``from gankit import __version__`` would be an import cycle)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gankit")
    except PackageNotFoundError:
        return None


def read_stats(path: str | os.PathLike) -> StatsFile:
    """Read a statistics ``.npz`` (gankit's, pytorch-fid's or clean-fid's) without pickle."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"--ref stats:{p}: no such file (make one with gankit stats)")
    try:
        data = np.load(p, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise DataError(f"{p} is a single .npy array, not an .npz with mu and sigma")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(
            f"{p} is not a statistics .npz gankit can read without pickle ({first_line(e, 80)})"
        ) from None
    missing = [k for k in ("mu", "sigma") if k not in arrays]
    if missing:
        raise DataError(
            f"{p} has no {' or '.join(missing)} (it holds {', '.join(sorted(arrays)) or 'nothing'}): "
            "a statistics file needs mu and sigma"
        )
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    feats = arrays["feats"].astype(np.float64) if "feats" in arrays else None
    d = mu.shape[0] if mu.ndim == 1 else -1
    if (
        d < 1
        or sigma.shape != (d, d)
        or (feats is not None and (feats.ndim != 2 or feats.shape[1] != d))
    ):
        shapes = f"mu {mu.shape}, sigma {sigma.shape}" + (
            f", feats {feats.shape}" if feats is not None else ""
        )
        raise DataError(f"{p}: the statistics do not fit together ({shapes})")
    fields: dict[str, Any] = {}
    for key in TEXT_FIELDS:
        if key in arrays and arrays[key].ndim == 0:
            fields[key] = str(arrays[key])
    for key in NUMBER_FIELDS:
        if key in arrays and arrays[key].ndim == 0:
            fields[key] = int(arrays[key])
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    return StatsFile(p, mu, sigma, feats, fields, sha)


def recorded_resizer(stats: StatsFile) -> tuple[str | None, str]:
    """The resizer a file says it was made with, and where that comes from."""
    if "resizer" in stats.fields:
        return stats.fields["resizer"], "recorded in it"
    m = _CLEAN_FID_MODE.search(stats.path.name)
    if m:
        return m.group(1).replace("_", "-"), "clean-fid's file name"
    return None, ""


def check_stats(
    stats: StatsFile, *, protocol: str, resizer: str, ddof: int, dim: int | None = None
) -> list[str]:
    """Refuse (one-line ConfigError) a file made under another protocol, resizer or ddof.

    Returns notes for what cannot be checked (a file that records nothing).
    """
    where = f"--ref stats:{stats.path}"
    recorded = stats.fields.get("protocol")
    if recorded is not None and recorded != protocol:
        raise ConfigError(
            f"{where} was made under --protocol {recorded}, not {protocol}: use --protocol "
            f"{recorded}, or make statistics under {protocol} with gankit stats"
        )
    made_with, origin = recorded_resizer(stats)
    if made_with is not None and made_with != resizer:
        raise ConfigError(
            f"{where} was made with the {made_with} resize ({origin}), not {resizer}: pass "
            f"--resizer {made_with} (with --protocol custom), or use statistics made with {resizer}"
        )
    if "ddof" in stats.fields and stats.fields["ddof"] != ddof:
        raise ConfigError(
            f"{where} has a covariance with ddof {stats.fields['ddof']}, and protocol {protocol} "
            f"uses ddof {ddof}: make its statistics under {protocol} with gankit stats"
        )
    if dim is not None and len(stats.mu) != dim:
        raise DataError(
            f"{where} holds {len(stats.mu)}-d statistics, and the features are {dim}-d: "
            "they come from another network"
        )
    notes = []
    if made_with is None:
        notes.append(
            f"{stats.path.name} records no resize: taken as {resizer} (pytorch-fid's own files "
            "use legacy-pytorch with other weights)"
        )
    if not stats.ours:
        notes.append(
            f"{stats.path.name} records no covariance convention: taken as ddof 1 (np.cov)"
        )
    return notes


def fields_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The stats-file fields of a protocol record (:func:`gankit.evaluation.protocols.protocol_record`)."""
    return {k: record.get(k) for k in (*RECORD_TEXT_FIELDS, "image_size")}


# --- gankit stats ------------------------------------------------------------------------------


@dataclass
class MadeStats:
    """What :func:`make_stats` wrote."""

    path: Path
    n: int
    fields: dict[str, Any]
    feats: bool


def make_stats(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    protocol: str = "custom",
    resizer: str | None = None,
    n: int | None = None,
    inception: str | None = None,
    backend: str = "auto",
    device: str = "cpu",
    ema: bool | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    include_feats: bool = True,
    progress: bool = True,
) -> MadeStats:
    """``gankit stats``: the Inception statistics of a folder of images or of a run's samples.

    A **folder** is a reference set: its images in the fixed order and with the reference size
    that ``gankit evaluate --ref folder:PATH`` uses under ``protocol`` (every image, or the
    protocol's number of them, nothing held out; ``custom``: every image, or ``n``), at the first
    image's size, so ``--ref stats:FILE`` gives the same FID as ``--ref folder:PATH``. A **run**
    gives ``n`` samples (the protocol's number, ``custom``: ``n``, default 10,000).
    """
    from gankit.evaluation.extractors import make_extractor
    from gankit.evaluation.metrics.inception import InceptionFeatures
    from gankit.evaluation.protocols import protocol_record, resolve_protocol

    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: give a folder of images or a GAN run")
    is_run = (path / "config.yaml").is_file()
    resolved = resolve_protocol(
        protocol, n=n if is_run else None, ref_n=None if is_run else n, resizer=resizer,
        default_n=10_000,
    )  # fmt: skip
    if not is_run and (ema is not None or checkpoint):
        raise ConfigError(f"--ema and --checkpoint need a run directory; {path} has no config.yaml")
    extractor = make_extractor(
        "inception", inception=inception, device=device, backend=backend,
        resizer=resolved.resizer, progress=progress,
    )  # fmt: skip
    assert isinstance(extractor, InceptionFeatures)
    if is_run:
        images, size, origin = _run_samples(path, resolved, ema, seed, device, checkpoint)
    else:
        images, size, origin = _folder_images(path, resolved, n, progress)
    sha = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()
    record = protocol_record(
        resolved, n=len(images), ref_n=len(images), reference=origin, reference_sha256=sha,
        features=extractor.feature_id, network_sha256=extractor.network_sha256, image_size=size,
    )  # fmt: skip
    fields = fields_from_record(record)
    feats = extractor(images)
    written = write_stats(out, feats, fields, ddof=resolved.ddof, include_feats=include_feats)
    return MadeStats(written, len(images), fields, include_feats)


def _run_samples(path: Path, resolved: Any, ema, seed, device, checkpoint) -> tuple:
    """(images, size, origin) of ``gankit stats RUN``: the protocol's number of samples."""
    from gankit.evaluation.protocols import TRAIN
    from gankit.evaluation.samples import generate_samples

    if resolved.n == TRAIN:
        raise ConfigError(
            f"--protocol {resolved.name} draws as many samples as training images: evaluate the "
            "run with --ref DATA instead of making statistics of its samples"
        )
    samples = generate_samples(
        path, int(resolved.n), ema=ema, seed=seed, device=device, checkpoint=checkpoint
    )
    return samples.images, samples.data.image_size, f"{path} (samples, step {samples.step})"


def _folder_images(path: Path, resolved: Any, n: int | None, progress: bool) -> tuple:
    """(images, size, origin) of ``gankit stats FOLDER``: the reference ``--ref folder:`` takes."""
    from gankit.evaluation.protocols import ALL
    from gankit.evaluation.reference import load_reference
    from gankit.evaluation.samples import folder_config

    like = folder_config(path, 2**31 - 1)
    count = n  # custom: every image unless --n
    if resolved.protocol.named:
        count = None if resolved.ref_n == ALL else resolved.ref_n
    reference = load_reference(f"folder:{path}", like, count, progress=progress, holdout=False)
    return reference.images, like.image_size, reference.source
