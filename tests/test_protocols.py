"""Named protocols: what they fix, the record every result carries, the comparison of two results,
and the reference-feature cache that never hands one resizer's or protocol's features to another.

A small TorchScript stand-in for the Inception with 64-d features (tests/inception_fakes.py) keeps
whole evaluations to a second; the real network's agreement is in tests/test_agreement.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from inception_fakes import full_network
from PIL import Image

from gankit.cli import main
from gankit.config import DataConfig
from gankit.data.sources import load_source
from gankit.errors import ConfigError
from gankit.evaluation import protocols
from gankit.evaluation.evaluate import evaluate_source
from gankit.evaluation.metrics.features import ModuleFeatures
from gankit.evaluation.metrics.reference_cache import reference_features
from gankit.evaluation.protocols import (
    ALL,
    PROTOCOLS,
    compare_records,
    record_of,
    resolve_protocol,
)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANKIT_INCEPTION", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Path:
    # 64-d features: a FID is instant (the real network's 2048-d one takes seconds on one thread)
    return full_network(tmp_path_factory.mktemp("net") / "inception.pt", dim=64)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """``real``: 60 MNIST digits; ``fake``: 40 others, mirrored (28x28 grey PNGs)."""
    data = load_source(DataConfig(source="builtin:mnist", image_size=28), progress=False)
    root = tmp_path_factory.mktemp("digits")
    out = {}
    for name, picks, flip in (("real", range(60), False), ("fake", range(100, 140), True)):
        folder = root / name
        folder.mkdir()
        for k, i in enumerate(picks):
            img = data.images[i, 0]  # type: ignore[index]
            img = img.flip(-1) if flip else img
            Image.fromarray(img.numpy(), "L").save(folder / f"{k:03d}.png")
        out[name] = folder
    return out


def small(monkeypatch: pytest.MonkeyPatch, name: str, **changes) -> None:
    """Shrink a named protocol's sample counts so a test runs it in a second."""
    monkeypatch.setitem(PROTOCOLS, name, dataclasses.replace(PROTOCOLS[name], **changes))


# --- resolving ----------------------------------------------------------------------------------


def test_named_protocols_fix_their_settings() -> None:
    r = resolve_protocol("fid50k_full")
    assert (r.n, r.ref_n, r.resizer, r.ddof) == (50_000, ALL, "legacy-tensorflow", 0)
    assert resolve_protocol("clean-fid").resizer == "clean"
    assert resolve_protocol("studiogan").n == protocols.TRAIN
    assert resolve_protocol("fid10k", n=10_000).n == 10_000  # the same value is fine
    with pytest.raises(ConfigError, match="fixes --n to 50000, not 2000.*--protocol custom") as e:
        resolve_protocol("fid50k_full", n=2000)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="fixes --resizer to clean"):
        resolve_protocol("clean-fid", resizer="legacy-tensorflow")
    with pytest.raises(ConfigError, match="did you mean fid10k"):
        resolve_protocol("fid10")


def test_custom_takes_the_flags() -> None:
    r = resolve_protocol("custom", n=300, resizer="clean")
    assert (r.n, r.ref_n, r.resizer, r.ddof) == (300, 300, "clean", 1)
    r = resolve_protocol(default_n=2000)
    assert (r.n, r.ref_n, r.resizer) == (2000, 2000, "legacy-tensorflow")


# --- comparing ----------------------------------------------------------------------------------


def record(**changes) -> dict:
    base = {
        "protocol": "fid10k",
        "resizer": "legacy-tensorflow",
        "n": 10_000,
        "ref_n": 10_000,
        "reference": "folder:cifar10",
        "reference_sha256": "a" * 64,
        "network": "inception-2015-12-05",
        "network_sha256": "b" * 64,
        "features": "inception-2015-12-05:legacy-tensorflow-299:bbbb",
        "image_size": 32,
        "ddof": 1,
    }
    return {"metrics": {}, "protocol": {**base, **changes}}


def test_compare_names_each_difference_in_one_line() -> None:
    assert compare_records(record(), record()) == []
    lines = compare_records(record(), record(resizer="clean", n=5000, ddof=0))
    assert lines == [
        "resizer: legacy-tensorflow vs clean",
        "samples: 10000 vs 5000",
        "covariance divisor (ddof): 1 vs 0",
    ]
    (line,) = compare_records(record(), record(reference_sha256="c" * 64))
    assert line.startswith("reference images (sha256): aaaaaaaaaaaa… vs cccccccccccc…")


def test_results_from_before_protocols_are_legacy_pytorch() -> None:
    old = {"metrics": {}, "n": 2000, "ref": "builtin:mnist", "ref_images": 2000, "image_size": 28}
    old["features"] = "inception-2015-12-05:torch-bilinear-299"
    assert record_of(old)["resizer"] == "legacy-pytorch"
    lines = compare_records(old, record())
    assert any(line.startswith("protocol: unknown vs fid10k") for line in lines)
    assert "resizer: legacy-pytorch vs legacy-tensorflow" in lines


# --- evaluations record their protocol ----------------------------------------------------------


def test_result_json_carries_the_protocol(folders, net, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", str(folders["fake"]), "--ref", f"folder:{folders['real']}", "--n", "40"]
    args += ["--metrics", "kid", "--inception", str(net), "--out", str(out)]
    assert main([*args, "--resizer", "clean"]) == 0
    printed = capsys.readouterr().out
    assert "protocol: custom, resize clean, 40 samples vs" in printed
    p = json.loads((out / "evaluation.json").read_text())["protocol"]
    assert p["protocol"] == "custom" and p["resizer"] == "clean" and p["ddof"] == 1
    assert p["n"] == 40 and p["ref_n"] == 40  # --ref-n defaults to --n (12 of 60 held out)
    assert p["reference"] == f"folder:{folders['real']}" and len(p["reference_sha256"]) == 64
    assert p["network"] == "inception-2015-12-05" and len(p["network_sha256"]) == 64
    assert p["features"] == f"inception-2015-12-05:clean-299:{p['network_sha256'][:16]}"

    # --compare: against itself, then against the default resize
    assert (
        main(["evaluate", "--compare", str(out / "evaluation.json"), str(out / "evaluation.json")])
        == 0
    )
    assert capsys.readouterr().out.startswith("comparable: custom, resize clean")
    other = tmp_path / "eval2"
    assert main([*args[:-1], str(other)]) == 0
    capsys.readouterr()
    assert (
        main(
            ["evaluate", "--compare", str(out / "evaluation.json"), str(other / "evaluation.json")]
        )
        == 1
    )
    assert capsys.readouterr().out.splitlines() == [
        "not comparable (1 difference):",
        "  resizer: clean vs legacy-tensorflow",
    ]


def test_a_named_protocol_end_to_end(folders, net, monkeypatch) -> None:
    small(monkeypatch, "fid50k_full", n=30, metrics=("kid",))
    done = evaluate_source(
        folders["fake"], f"folder:{folders['real']}", protocol="fid50k_full", inception=str(net)
    )
    p = done.protocol
    assert p["protocol"] == "fid50k_full" and p["resizer"] == "legacy-tensorflow" and p["ddof"] == 0
    assert p["n"] == 30 and p["ref_n"] == 60  # every reference image: nothing held out
    assert list(done.result.metrics) == ["kid"]  # the protocol's metrics by default
    assert len(done.reference.heldout) == 0
    with pytest.raises(ConfigError, match="held-out"):
        evaluate_source(
            folders["fake"], f"folder:{folders['real']}", protocol="fid50k_full",
            inception=str(net), metrics="fid,memorisation",
        )  # fmt: skip
    with pytest.raises(ConfigError, match="defined on the FID Inception"):
        evaluate_source(
            folders["fake"], "builtin:mnist", protocol="fid10k", features="classifier:x"
        )


def test_studiogan_draws_as_many_samples_as_training_images(folders, net) -> None:
    done = evaluate_source(
        folders["real"],
        f"folder:{folders['fake']}",
        protocol="studiogan",
        inception=str(net),
        metrics="kid",
    )
    assert done.protocol["n"] == done.protocol["ref_n"] == 40  # the 60 images cut to the 40 reals
    assert done.protocol["resizer"] == "pil-bilinear"
    assert any("pytorch-fid's port" in note for note in done.result.notes)


# --- the cache ------------------------------------------------------------------------------------


def test_reference_cache_is_keyed_by_resizer_and_protocol(folders, net, isolated_cache) -> None:
    ref = f"folder:{folders['real']}"
    kw = dict(n=20, metrics="kid", inception=str(net))
    a = evaluate_source(folders["fake"], ref, **kw)
    b = evaluate_source(folders["fake"], ref, resizer="clean", **kw)
    assert a.result.metrics["kid"] != b.result.metrics["kid"]
    cached = sorted((isolated_cache / "features").glob("*.json"))
    keys = [json.loads(p.read_text()) for p in cached]
    assert len(keys) == 2 and {k["feature_id"].split(":")[1] for k in keys} == {
        "legacy-tensorflow-299",
        "clean-299",
    }
    # Read back under the same resizer: the same FID, and no new file.
    assert evaluate_source(folders["fake"], ref, **kw).result.metrics == a.result.metrics
    assert len(list((isolated_cache / "features").glob("*.json"))) == 2


def test_features_of_one_protocol_are_never_read_under_another(isolated_cache) -> None:
    torch.manual_seed(0)
    extractor = ModuleFeatures(
        torch.nn.Linear(4, 3), lambda x: x.float().flatten(1), progress=False
    )
    images = torch.randint(0, 256, (6, 1, 2, 2), dtype=torch.uint8)
    calls: list[str] = []

    def load(tag: str):
        return lambda: calls.append(tag) or images

    for protocol in ("custom", "fid10k", "custom", "clean-fid", "fid10k"):
        reference_features(extractor, "toy", 6, load(protocol), protocol=protocol)
    assert calls == ["custom", "fid10k", "clean-fid"]  # each protocol computed once, its own


def test_cli_constants_match_the_library() -> None:
    from gankit.cli import evaluate as cli_evaluate
    from gankit.evaluation.metrics.resize import RESIZERS

    assert tuple(PROTOCOLS) == cli_evaluate.PROTOCOLS
    assert cli_evaluate.RESIZERS == RESIZERS


def test_the_report_says_what_a_result_is_comparable_with(folders, net, tmp_path) -> None:
    from gankit.evaluation.report import build_report

    from conftest import TINY

    run = tmp_path / "run"
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=2", "--out", str(run)]) == 0
    args = ["evaluate", str(run), "--ref", f"folder:{folders['real']}", "--n", "20"]
    assert main([*args, "--metrics", "kid", "--inception", str(net)]) == 0
    html = build_report(run).read_text()
    assert "Comparable only with results of the same protocol (custom), resize" in html
    assert "(legacy-tensorflow), 20 samples vs 20 reference images" in html


def test_cli_with_a_named_protocol_scores_its_metrics(folders, net, tmp_path, monkeypatch) -> None:
    small(monkeypatch, "fid10k", n=30, ref_n=40)
    out = tmp_path / "eval"
    args = ["evaluate", str(folders["fake"]), "--ref", f"folder:{folders['real']}"]
    assert main([*args, "--protocol", "fid10k", "--inception", str(net), "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert list(result["metrics"]) == ["fid"] and result["protocol"]["protocol"] == "fid10k"
    assert result["protocol"]["n"] == 30 and result["protocol"]["ref_n"] == 40
    assert main([*args, "--protocol", "fid10k", "--n", "20", "--inception", str(net)]) == 2
