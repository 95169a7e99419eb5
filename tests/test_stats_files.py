"""Statistics files: the layout pytorch-fid and clean-fid read, gankit's protocol fields beside it,
reading other tools' files without pickle, and refusing a file made under another protocol."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from inception_fakes import full_network
from PIL import Image

from gankit.cli import main
from gankit.config import DataConfig
from gankit.data.sources import load_source
from gankit.errors import ConfigError, DataError
from gankit.evaluation.evaluate import evaluate_source
from gankit.evaluation.metrics.fid import compute_fid, fid_from_features
from gankit.evaluation.protocols import PROTOCOLS
from gankit.evaluation.stats_files import check_stats, read_stats, write_stats


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
    data = load_source(DataConfig(source="builtin:mnist", image_size=28), progress=False)
    root = tmp_path_factory.mktemp("digits")
    out = {}
    for name, picks in (("real", range(50)), ("fake", range(200, 230))):
        (root / name).mkdir()
        for k, i in enumerate(picks):
            Image.fromarray(data.images[i, 0].numpy(), "L").save(root / name / f"{k:03d}.png")  # type: ignore[index]
        out[name] = root / name
    return out


def features(n: int = 40, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# --- the file ------------------------------------------------------------------------------------


def test_layout_is_pytorch_fids_and_clean_fids(tmp_path) -> None:
    f = features()
    path = write_stats(tmp_path / "ref", f, {"protocol": "custom", "resizer": "clean"})
    assert path.name == "ref.npz"
    with np.load(path, allow_pickle=False) as data:  # what pytorch-fid and clean-fid do
        assert np.allclose(data["mu"], f.mean(0)) and np.allclose(
            data["sigma"], np.cov(f, rowvar=False)
        )
        assert data["feats"].shape == (40, 8) and data["feats"].dtype == np.float32
        assert str(data["resizer"]) == "clean" and int(data["n"]) == 40 and int(data["ddof"]) == 1
    stats = read_stats(path)
    assert stats.ours and stats.fields["protocol"] == "custom" and stats.n == 40
    small = write_stats(tmp_path / "small.npz", f, {}, ddof=0, include_feats=False)
    stats = read_stats(small)
    assert stats.feats is None and np.allclose(stats.sigma, np.cov(f, rowvar=False, ddof=0))


def test_fid_from_statistics_equals_fid_from_features() -> None:
    real, fake = features(), features(seed=1) + 0.2
    mu, sigma = real.mean(0), np.cov(real, rowvar=False)
    assert compute_fid((mu, sigma), fake)["fid"] == pytest.approx(fid_from_features(real, fake))


def test_other_tools_files_are_read_and_their_names_checked(tmp_path) -> None:
    f = features()
    theirs = tmp_path / "pytorch_fid_stats.npz"
    np.savez_compressed(theirs, mu=f.mean(0), sigma=np.cov(f, rowvar=False))
    stats = read_stats(theirs)
    assert not stats.ours and stats.feats is None and stats.n is None
    notes = check_stats(stats, protocol="custom", resizer="legacy-tensorflow", ddof=1, dim=8)
    assert len(notes) == 2 and "records no resize" in notes[0]
    assert stats.source == f"stats:{theirs}" and stats.checksum == stats.sha256

    clean_fid = tmp_path / "cifar10_legacy_tensorflow_train_32.npz"  # clean-fid's own name
    np.savez_compressed(clean_fid, mu=f.mean(0), sigma=np.cov(f, rowvar=False))
    stats = read_stats(clean_fid)
    assert check_stats(stats, protocol="fid10k", resizer="legacy-tensorflow", ddof=1, dim=8)
    with pytest.raises(ConfigError, match="legacy-tensorflow resize .clean-fid's file name.") as e:
        check_stats(stats, protocol="clean-fid", resizer="clean", ddof=1)
    assert "\n" not in str(e.value)


def test_a_file_of_another_protocol_is_refused_in_one_line(tmp_path) -> None:
    path = write_stats(
        tmp_path / "a.npz", features(), {"protocol": "fid10k", "resizer": "legacy-tensorflow"}
    )
    stats = read_stats(path)
    assert check_stats(stats, protocol="fid10k", resizer="legacy-tensorflow", ddof=1, dim=8) == []
    for asked, match in (
        (
            dict(protocol="clean-fid", resizer="clean", ddof=1),
            "made under --protocol fid10k, not clean-fid",
        ),
        (
            dict(protocol="fid10k", resizer="clean", ddof=1),
            "legacy-tensorflow resize .recorded in it.",
        ),
        (dict(protocol="fid10k", resizer="legacy-tensorflow", ddof=0), "ddof 1"),
    ):
        with pytest.raises(ConfigError, match=match) as e:
            check_stats(stats, **asked)
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="8-d statistics"):
        check_stats(stats, protocol="fid10k", resizer="legacy-tensorflow", ddof=1, dim=2048)


def test_broken_and_pickled_files_are_one_line_errors(tmp_path) -> None:
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mu=np.zeros(2), sigma=np.array([{"code": 1}], dtype=object))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mu=np.zeros(3), sigma=np.eye(2))
    nomu = tmp_path / "nomu.npz"
    np.savez(nomu, m=np.zeros(3))
    for path, match in (
        (pickled, "without pickle"),
        (junk, "without pickle"),
        (wrong, "do not fit"),
        (nomu, "no mu"),
        (tmp_path / "missing.npz", "no such file"),
    ):
        with pytest.raises(Exception, match=match) as e:
            read_stats(path)
        assert "\n" not in str(e.value), path


# --- gankit stats and --ref stats: ---------------------------------------------------------------


def test_stats_of_a_folder_stand_for_the_folder(
    folders, net, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(PROTOCOLS, "clean-fid", dataclasses.replace(PROTOCOLS["clean-fid"], n=30))
    out = tmp_path / "real.npz"
    args = ["stats", str(folders["real"]), "--out", str(out), "--inception", str(net)]
    assert main([*args, "--protocol", "clean-fid"]) == 0
    assert "wrote" in capsys.readouterr().out
    stats = read_stats(out)
    assert stats.fields["protocol"] == "clean-fid" and stats.fields["resizer"] == "clean"
    assert stats.n == 50 and stats.fields["reference"] == f"folder:{folders['real']}"

    kw = dict(protocol="clean-fid", inception=str(net))
    by_folder = evaluate_source(
        folders["fake"], f"folder:{folders['real']}", metrics="kid,fid", **kw
    )
    by_stats = evaluate_source(folders["fake"], f"stats:{out}", metrics="kid,fid", **kw)
    assert by_stats.result.metrics["fid"]["fid"] == pytest.approx(
        by_folder.result.metrics["fid"]["fid"], rel=1e-6
    )
    assert by_stats.result.metrics["kid"] == pytest.approx(
        by_folder.result.metrics["kid"], rel=1e-6
    )
    # the two results are comparable: the same reference images, network, resize and protocol
    from gankit.evaluation.protocols import compare_records

    assert compare_records({"protocol": by_folder.protocol}, {"protocol": by_stats.protocol}) == []

    # another protocol's evaluation refuses the file before any work
    with pytest.raises(ConfigError, match="made under --protocol clean-fid, not custom"):
        evaluate_source(folders["fake"], f"stats:{out}", metrics="fid", inception=str(net))
    # memorisation needs the images themselves
    lean = tmp_path / "lean.npz"
    assert main([*args[:3], str(lean), *args[4:], "--protocol", "clean-fid", "--no-feats"]) == 0
    with pytest.raises(ConfigError, match="kid needs its features"):
        evaluate_source(folders["fake"], f"stats:{lean}", metrics="kid", **kw)


def test_stats_of_a_run(tmp_path, net) -> None:
    from conftest import TINY

    run = tmp_path / "run"
    assert main(["train", "dcgan-mnist", *TINY, "train.steps=2", "--out", str(run)]) == 0
    out = tmp_path / "run.npz"
    assert main(["stats", str(run), "--out", str(out), "--n", "12", "--inception", str(net)]) == 0
    stats = read_stats(out)
    assert stats.n == 12 and stats.fields["reference"].startswith(f"{run} (samples, step 2)")
    assert stats.feats is not None and torch.isfinite(torch.from_numpy(stats.feats)).all()
    assert main(["stats", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_result_json_names_the_stats_file(folders, net, tmp_path) -> None:
    f = np.random.default_rng(0).normal(size=(30, 64))  # the 64-d stand-in network's
    theirs = tmp_path / "ffhq_clean_trainval70k_1024.npz"
    np.savez_compressed(theirs, mu=f.mean(0), sigma=np.cov(f, rowvar=False), feats=f)
    out = tmp_path / "eval"
    args = ["evaluate", str(folders["fake"]), "--ref", f"stats:{theirs}", "--metrics", "kid"]
    assert (
        main([*args, "--n", "30", "--resizer", "clean", "--inception", str(net), "--out", str(out)])
        == 0
    )
    result = json.loads((out / "evaluation.json").read_text())
    p = result["protocol"]
    assert (
        p["reference"] == f"stats:{theirs}"
        and p["ref_n"] == 30
        and len(p["reference_sha256"]) == 64
    )
    assert any("records no covariance" in note for note in result["notes"])
    assert (
        main([*args, "--n", "30", "--inception", str(net), "--out", str(out)]) == 2
    )  # clean file, TF resize


def test_custom_stats_of_a_folder_take_every_image_or_n(folders, net, tmp_path) -> None:
    from gankit.evaluation.stats_files import make_stats

    every = make_stats(folders["real"], tmp_path / "all.npz", inception=str(net), progress=False)
    assert every.n == 50 and every.fields["protocol"] == "custom"
    some = make_stats(folders["real"], tmp_path / "some", n=20, inception=str(net), progress=False)
    assert some.n == 20 and some.path.name == "some.npz"
