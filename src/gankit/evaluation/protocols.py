"""Named evaluation protocols, the record that makes a score comparable, and the comparison.

A FID is only comparable with another made with the same network, the same resize, the same
number of samples, the same reference images and the same covariance convention (Parmar et al.
2022, "On Aliased Resizing and Surprising Subtleties in GAN Evaluation"). ``--protocol NAME``
fixes all of them at once:

- ``fid50k_full``: 50,000 samples of the EMA generator against every training image (no flips),
  ``legacy-tensorflow`` resize, covariance divided by N (ddof 0): stylegan2-ada-pytorch's
  ``calc_metrics.py --metrics=fid50k_full`` (Karras et al. 2020).
- ``fid10k``: 10,000 samples against 10,000 training images, ``legacy-tensorflow``, ddof 1: the
  10k-vs-10k numbers of the original TTUR code (Heusel et al. 2017) and clean-fid's
  ``legacy_tensorflow`` CIFAR-10 table.
- ``clean-fid``: 50,000 samples against every training image, ``clean``, ddof 1: clean-fid's
  ``compute_fid(..., mode="clean")`` against full-split statistics.
- ``studiogan``: as many samples as training images, against them, ``pil-bilinear`` (StudioGAN's
  "friendly" resize), ddof 1: PyTorch-StudioGAN (Kang et al. 2023), whose network is pytorch-fid's
  port of the weights (a caveat recorded with the result).
- ``custom``: ``--n``, ``--ref-n`` and ``--resizer``, ddof 1, a fifth of the reference held out
  for the memorisation tests: gankit's own choice.

Every result records :func:`protocol_record`: the protocol, resizer, samples and reference images
per side, the reference set and its checksum, the network file's checksum, the feature id and the
covariance convention; :func:`compare_records` lists, one line each, why two results are not
comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gankit.errors import ConfigError, did_you_mean
from gankit.evaluation.metrics.fid import DDOF
from gankit.evaluation.metrics.resize import DEFAULT_RESIZER, check_resizer

INCEPTION_NETWORK = "inception-2015-12-05"
ALL = "all"
"""``ref_n`` of a protocol whose reference is every training image."""
TRAIN = "train"
"""``n`` of a protocol that draws as many samples as there are training images (StudioGAN)."""


@dataclass(frozen=True)
class Protocol:
    """What a named protocol fixes; None leaves it to the command line (``custom``)."""

    name: str
    n: int | str | None
    """Samples: a number, :data:`TRAIN` (as many as training images) or None (``--n``)."""
    ref_n: int | str | None
    """Reference images: a number, :data:`ALL` (every training image) or None (``--ref-n``)."""
    resizer: str | None
    ddof: int
    ema: bool | None
    """True: the samples come from the EMA generator when the run has one."""
    metrics: tuple[str, ...]
    """The default ``--metrics`` under this protocol."""
    matches: str
    """The paper or tool whose numbers this protocol reproduces."""
    caveat: str = ""
    """What gankit cannot match exactly."""

    @property
    def named(self) -> bool:
        return self.name != "custom"

    @property
    def holdout(self) -> bool:
        """Whether the reference keeps images back for the memorisation tests (custom only)."""
        return self.ref_n != ALL


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "fid50k_full",
            50_000,
            ALL,
            "legacy-tensorflow",
            0,
            True,
            ("fid",),
            "stylegan2-ada-pytorch calc_metrics.py --metrics=fid50k_full (Karras et al. 2020): "
            "50,000 samples of G_ema against every training image, no x-flips",
            "stylegan2-ada samples with psi = 1 and random labels of a conditional run; gankit "
            "samples its runs the same way",
        ),
        Protocol(
            "fid10k",
            10_000,
            10_000,
            "legacy-tensorflow",
            1,
            None,
            ("fid",),
            "10,000 vs 10,000 with the original TF FID resize (the TTUR code of Heusel et al. "
            "2017; clean-fid's legacy_tensorflow CIFAR-10 10k table)",
        ),
        Protocol(
            "clean-fid",
            50_000,
            ALL,
            "clean",
            1,
            None,
            ("fid",),
            "clean-fid (Parmar et al. 2022) compute_fid(gen=..., dataset_split='train', "
            "mode='clean'): 50,000 samples against the statistics of the whole training split",
        ),
        Protocol(
            "studiogan",
            TRAIN,
            ALL,
            "pil-bilinear",
            1,
            None,
            ("fid",),
            "PyTorch-StudioGAN (Kang et al. 2023): as many samples as training images against "
            "the training split, 'friendly' resize (PIL bilinear) for its TF Inception",
            "StudioGAN runs pytorch-fid's port of the weights (FID differs by about 0.004-0.08 "
            "from the TF weights gankit uses) and its IS uses 1 split, not 10",
        ),
        Protocol(
            "custom",
            None,
            None,
            None,
            DDOF,
            None,
            (),
            "gankit's own choice of --n, --ref-n and --resizer: comparable with results of the "
            "same settings only",
        ),
    )
}


@dataclass(frozen=True)
class Resolved:
    """A protocol with every choice made: what an evaluation runs."""

    protocol: Protocol
    n: int | str
    """Samples, or :data:`TRAIN` until the reference's size is known."""
    ref_n: int | str
    resizer: str
    ddof: int

    @property
    def name(self) -> str:
        return self.protocol.name


def resolve_protocol(
    name: str = "custom",
    *,
    n: int | None = None,
    ref_n: int | None = None,
    resizer: str | None = None,
    default_n: int = 2000,
) -> Resolved:
    """The protocol ``name`` with the command line's ``n``, ``ref_n`` and ``resizer``.

    A named protocol fixes them: giving a different value is a one-line ConfigError (use
    ``custom`` to choose); ``custom`` takes them, with ``default_n`` samples and the reference as
    large as the samples by default.
    """
    if name not in PROTOCOLS:
        raise ConfigError(
            f"--protocol {name!r} is unknown: {did_you_mean(name, PROTOCOLS)}choose one of "
            f"{', '.join(PROTOCOLS)}"
        )
    p = PROTOCOLS[name]
    if resizer is not None:
        check_resizer(resizer)
    if not p.named:
        n_used = n if n is not None else default_n
        return Resolved(
            p, n_used, ref_n if ref_n is not None else n_used, resizer or DEFAULT_RESIZER, p.ddof
        )
    for flag, given, fixed in (
        ("--n", n, p.n),
        ("--ref-n", ref_n, p.ref_n),
        ("--resizer", resizer, p.resizer),
    ):
        if given is not None and given != fixed:
            shown = {ALL: "every training image", TRAIN: "as many as training images"}.get(
                fixed, fixed
            )  # type: ignore[arg-type]
            raise ConfigError(
                f"--protocol {name} fixes {flag} to {shown}, not {given}: use --protocol custom "
                "to choose it (the result is then not comparable with "
                f"{name} numbers)"
            )
    return Resolved(p, p.n, p.ref_n, p.resizer, p.ddof)  # type: ignore[arg-type]


# --- the record and the comparison -------------------------------------------------------------

COMPARED = (
    ("protocol", "protocol"),
    ("resizer", "resizer"),
    ("network", "feature network"),
    ("network_sha256", "network file (sha256)"),
    ("n", "samples"),
    ("ref_n", "reference images"),
    ("reference", "reference set"),
    ("reference_sha256", "reference images (sha256)"),
    ("image_size", "image size"),
    ("ddof", "covariance divisor (ddof)"),
)
"""The fields two results must share to be comparable, and how a difference is named."""


def protocol_record(
    resolved: Resolved,
    *,
    n: int,
    ref_n: int | None,
    reference: str | None,
    reference_sha256: str | None,
    features: str | None,
    network_sha256: str | None,
    image_size: int | None,
) -> dict[str, Any]:
    """The ``protocol`` section of an evaluation's JSON: everything :func:`compare_records` checks.

    ``features`` is the extractor's feature id; its network part (before the first ``:``) is the
    ``network`` compared, unless the extractor is a classifier, whose whole id is.
    """
    return {
        "protocol": resolved.name,
        "matches": resolved.protocol.matches,
        "caveat": resolved.protocol.caveat or None,
        # the resize is the Inception's: a classifier run's features bring images to its own size
        "resizer": resolved.resizer if _network(features) == INCEPTION_NETWORK else None,
        "n": n,
        "ref_n": ref_n,
        "reference": reference,
        "reference_sha256": reference_sha256,
        "network": _network(features),
        "network_sha256": network_sha256,
        "features": features,
        "image_size": image_size,
        "ddof": resolved.ddof,
    }


def _network(features: str | None) -> str | None:
    if not features:
        return None
    return features.split(":")[0] if features.startswith("inception-") else features


def record_of(result: dict[str, Any]) -> dict[str, Any]:
    """The protocol fields of an evaluation JSON, also for files written before they existed.

    Older files (gankit 0.2) have no ``protocol`` section: their resize was ``legacy-pytorch``
    (their ``features`` say ``torch-bilinear-299``), their covariance ``ddof`` 1, and they name
    no checksums, which then count as unknown.
    """
    if isinstance(result.get("protocol"), dict):
        return result["protocol"]
    features = result.get("features")
    legacy = isinstance(features, str) and "torch-bilinear-299" in features
    return {
        "protocol": None,
        "resizer": "legacy-pytorch" if legacy else None,
        "n": result.get("n"),
        "ref_n": result.get("ref_images"),
        "reference": result.get("ref"),
        "reference_sha256": None,
        "network": _network(features),
        "network_sha256": None,
        "features": features,
        "image_size": result.get("image_size"),
        "ddof": 1 if features else None,
    }


def compare_records(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """One line per reason why the results ``a`` and ``b`` are not comparable (none: they are).

    Takes whole evaluation JSONs (or their ``protocol`` sections). A field that one of them does
    not record is a reason too: nothing says it matches.
    """
    ra, rb = record_of(a), record_of(b)
    lines = []
    for key, label in COMPARED:
        va, vb = ra.get(key), rb.get(key)
        if va is None and vb is None:
            if key in ("reference_sha256", "network_sha256"):
                lines.append(f"{label}: recorded by neither result")
            continue
        if va is None or vb is None:
            lines.append(f"{label}: {_shown(va)} vs {_shown(vb)} (not recorded by one result)")
        elif va != vb:
            lines.append(f"{label}: {_shown(va)} vs {_shown(vb)}")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    return str(value)
