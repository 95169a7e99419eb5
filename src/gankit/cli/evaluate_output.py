"""What ``gankit evaluate`` prints: the table of scores, the protocol line, and ``--compare``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gankit.evaluation.scoring import Evaluation

_READING = {
    "fid": "lower is better; 0 = same feature statistics",
    "kid": "lower is better; ~0 (can be < 0) = same distribution",
    "kid_std": "spread over subsets",
    "precision": "share of samples that look real (fidelity)",
    "recall": "share of real images the samples cover (diversity)",
    "density": "~1 for real-like samples; > 1 = crowding typical images",
    "coverage": "~0.97 for identical distributions",
    "classes_hit": "classes with confident samples",
    "kl": "KL(sample classes || real classes); 0 = same mix",
    "confident_fraction": "samples the classifier is >= 0.9 sure of",
    "memorised_fraction": "samples flagged as near-copies; look at the PNG",
    "copy_threshold": "distance below which a sample is a copy",
    "gen_nn_median": "median sample -> nearest reference distance",
    "ref_nn_median": "the same for held-out real images",
    "c_t": "<< 0 copying, ~0 fine, >> 0 under-fitting",
    "ppl": "lower is better; LPIPS/eps^2 of a small step in W",
    "is": "higher is better; Inception Score, mean over splits",
    "is_std": "spread over splits",
    "fd_inf": "FID extrapolated to N = infinity (lower is better)",
    "fid_at_n": "FID of all N samples, beside FD-inf",
}
_NOT_SHOWN = ("num_classes", "cells_used", "splits", "n", "slope")


def format_table(evaluation: Evaluation) -> str:
    """The scalar results as aligned text rows: metric, value, how to read it."""
    rows = []
    for family, values in evaluation.metrics.items():
        for key, value in values.items():
            if isinstance(value, list) or key in _NOT_SHOWN:
                continue
            if key == "classes_hit":
                shown = f"{value} / {values['num_classes']}"
            elif isinstance(value, float):
                shown = f"{value:.4g}" if math.isfinite(value) else str(value)
            else:
                shown = str(value)
            rows.append((f"{family}.{key}" if key != family else key, shown, _READING.get(key, "")))
    width = max((len(r[0]) for r in rows), default=6)
    lines = [f"  {name:<{width}}  {shown:>10}  {hint}".rstrip() for name, shown, hint in rows]
    lines += [f"  note: {note}" for note in evaluation.notes]
    return "\n".join(lines)


def describe_protocol(record: dict[str, Any]) -> str:
    """One line: the protocol, the resizer, samples vs reference images, ddof."""
    resize = f", resize {record['resizer']}" if record.get("resizer") else ""
    return (
        f"protocol: {record['protocol']}{resize}, {record['n']} samples vs {record['ref_n']} "
        f"reference images ({record['reference']}), covariance ddof {record['ddof']}"
    )


def compare_results(a: str, b: str) -> int:
    """``gankit evaluate --compare A.json B.json``: 0 and one line when comparable, else 1 and a
    line per difference (:func:`gankit.evaluation.protocols.compare_records`)."""
    from gankit.errors import CheckpointError
    from gankit.evaluation.protocols import compare_records, record_of

    results = []
    for name in (a, b):
        try:
            data = json.loads(Path(name).read_text())
        except OSError as e:
            raise CheckpointError(f"--compare: cannot read {name} ({e.strerror or e})") from None
        except ValueError:
            raise CheckpointError(f"--compare: {name} is not JSON (an evaluation result)") from None
        if not isinstance(data, dict) or "metrics" not in data:
            raise CheckpointError(f"--compare: {name} is not a gankit evaluation result")
        results.append(data)
    differences = compare_records(*results)
    if not differences:
        record = record_of(results[0])
        print(
            f"comparable: {record.get('protocol') or 'no protocol recorded'}, resize "
            f"{record.get('resizer')}, {record.get('n')} samples vs {record.get('ref_n')} "
            f"reference images, ddof {record.get('ddof')}"
        )
        return 0
    print(f"not comparable ({len(differences)} difference{'s' * (len(differences) > 1)}):")
    for line in differences:
        print(f"  {line}")
    return 1


def reference_counts(reference: Any) -> tuple[int | None, int, int | None]:
    """(reference images, held-out images, images in the source) of a reference set, a
    statistics file (its recorded count) or nothing."""
    from gankit.evaluation.stats_files import StatsFile

    if reference is None:
        return 0, 0, None
    if isinstance(reference, StatsFile):
        return reference.n, 0, None
    return len(reference.images), len(reference.heldout), reference.size
