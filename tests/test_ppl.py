"""Perceptual path length (``gankit evaluate RUN --metrics ppl``) and its LPIPS, with no downloads.

LPIPS against a hand computation on a tiny stand-in feature network; the weight files in their
real key formats (torchvision's VGG16, LPIPS v0.1 lin); the PPL formula on a generator linear in
w, where d = ||A (w1 - w0)||² for every ε; the percentile filter; a tiny StyleGAN2 run end to end
through the CLI with random weight files of the real shapes; and the one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_stylegan2 import TINY_SG2
from torch import nn

from gankit.cli import main
from gankit.engine.loop import train
from gankit.errors import CheckpointError, DataError
from gankit.evaluation.metrics import inception
from gankit.evaluation.metrics import lpips as lp
from gankit.evaluation.metrics.ppl import filtered_mean, lpips_input, path_distances
from gankit.registries import build_config

from conftest import TINY, write_random_images


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder and no network: every download fails as it would offline."""
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))

    def no_network(url, dest, *args, **kwargs):
        raise CheckpointError(f"cannot download {url} (offline in tests)")

    monkeypatch.setattr(inception, "download_file", no_network)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> SimpleNamespace:
    """Random weight files with the real keys and shapes: VGG16's ``features.*`` (14.7 M values,
    He-scaled so that 13 convolutions neither vanish nor overflow) and LPIPS v0.1's lin weights."""
    root = tmp_path_factory.mktemp("weights")
    gen = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = {f"features.{k}": v.shape for k, v in lp.vgg16_features().state_dict().items()}
    vgg = {}
    for key, shape in shapes.items():
        if key.endswith("weight"):
            vgg[key] = torch.randn(shape, generator=gen) * (2 / (shape[1] * 9)) ** 0.5
        else:
            vgg[key] = torch.zeros(shape)
    lin = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen)
        for k, c in enumerate(lp.VGG16_CHANNELS)
    }
    torch.save(vgg, root / "vgg16.pth")
    torch.save(lin, root / "vgg.pth")
    return SimpleNamespace(vgg=root / "vgg16.pth", lin=root / "vgg.pth", lin_state=lin)


@pytest.fixture(scope="module")
def sg2_run(tmp_path_factory) -> Path:
    """A tiny StyleGAN2 after one step, at 16×16 (VGG16's relu5_3 needs at least 16 pixels)."""
    path = tmp_path_factory.mktemp("sg2") / "run"
    cfg = build_config("dcgan-mnist32", [*TINY_SG2, "data.image_size=16", "train.steps=1"])
    train(cfg, path)
    return path


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dcgan") / "run"
    train(build_config("dcgan-mnist", [*TINY, "train.steps=1"]), path)
    return path


# --- LPIPS ------------------------------------------------------------------------------------


def _stand_in() -> tuple[nn.Sequential, tuple[int, int], list[torch.Tensor]]:
    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Conv2d(4, 5, 3, padding=1)
    )
    return features, (1, 3), [torch.rand(4), torch.rand(5)]


def _hand_lpips(features, taps, lin, x0, x1):
    """The original's steps one image at a time, the lin layers as 1×1 convolutions."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    total = torch.zeros(len(x0))
    for i in range(len(x0)):
        h0, h1 = (x0[i : i + 1] - shift) / scale, (x1[i : i + 1] - shift) / scale
        for j, layer in enumerate(features):
            h0, h1 = layer(h0), layer(h1)
            if j in taps:
                n0 = h0 / (torch.linalg.vector_norm(h0, dim=1, keepdim=True) + 1e-10)
                n1 = h1 / (torch.linalg.vector_norm(h1, dim=1, keepdim=True) + 1e-10)
                w = lin[taps.index(j)].view(1, -1, 1, 1)
                total[i] += F.conv2d((n0 - n1) ** 2, w).mean()
    return total


@torch.no_grad()
def test_lpips_equals_the_hand_computation_is_zero_on_itself_and_symmetric():
    features, taps, lin = _stand_in()
    dist = lp.LPIPS(features, taps, lin)
    x0, x1 = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    d = dist(x0, x1)
    assert d.shape == (3,) and (d > 0).all()
    torch.testing.assert_close(d, _hand_lpips(features, taps, lin, x0, x1), rtol=1e-5, atol=1e-7)
    assert (dist(x0, x0) == 0).all()
    torch.testing.assert_close(dist(x1, x0), d, rtol=1e-6, atol=0)
    assert dist.min_size == 2  # one pooling before the deepest tap
    with pytest.raises(DataError, match="at least 2×2"):
        dist(x0[:, :, :1, :1], x1[:, :, :1, :1])


def test_lin_weights_load_from_a_v01_state_dict(weights, tmp_path):
    lin = lp.lin_from_state_dict(lp.read_state_dict(weights.lin, "vgg.pth"))
    for k, w in enumerate(lin):
        assert torch.equal(w, weights.lin_state[f"lin{k}.model.1.weight"])
    wrong = {k.replace("model.1", "model.0"): v for k, v in weights.lin_state.items()}
    with pytest.raises(CheckpointError, match=r"lin0\.model\.1\.weight of shape \(1, 64, 1, 1\)"):
        lp.lin_from_state_dict(wrong)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable torch state dict"):
        lp.read_state_dict(tmp_path / "junk.pth", "vgg.pth")


def test_a_torchvision_vgg16_state_dict_loads_into_the_vgg_part():
    with torch.device("meta"):  # the right keys and shapes, no memory
        ref = lp.vgg16_features()
        state = {f"features.{k}": v for k, v in ref.state_dict().items()}
        state["classifier.0.weight"] = torch.empty(4096, 25088)  # torchvision's head: ignored
    net = lp.vgg16_from_state_dict(state)
    assert len(net) == 30 and isinstance(net[29], nn.ReLU)  # relu5_3 last
    assert net[28].weight.shape == (512, 512, 3, 3) and net[0].weight.shape == (64, 3, 3, 3)
    assert net[28].weight.device.type == "meta"  # the given tensors (values: the next test)
    dist = lp.LPIPS(net, lp.VGG16_TAPS, [torch.ones(c) for c in lp.VGG16_CHANNELS])
    assert dist.min_size == 16
    del state["features.28.bias"]
    with pytest.raises(CheckpointError, match=r"has no features\.28\.bias"):
        lp.vgg16_from_state_dict(state)


@torch.no_grad()
def test_load_lpips_from_files_and_from_the_cache(weights, offline):
    dist = lp.load_lpips(weights.vgg, weights.lin)
    state = torch.load(weights.vgg, weights_only=True)
    assert torch.equal(dist.features[10].weight, state["features.10.weight"])
    x0, x1 = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    assert (dist(x0, x0) == 0).all() and (dist(x0, x1) > 0).all()
    offline.mkdir(parents=True)
    (offline / lp.VGG16_FILENAME).symlink_to(weights.vgg)
    (offline / lp.LPIPS_FILENAME).symlink_to(weights.lin)
    torch.testing.assert_close(lp.load_lpips()(x0, x1), dist(x0, x1))


def test_offline_without_the_files_names_both_options():
    with pytest.raises(CheckpointError) as e:
        lp.load_lpips()
    message = str(e.value)
    assert "--vgg PATH" in message and "--lpips PATH" in message and "\n" not in message


# --- the PPL formula --------------------------------------------------------------------------


class Log(list):
    """Shared by the generator and its deep copy."""

    def __deepcopy__(self, memo):
        return self


class LinearG(nn.Module):
    """w = z W (+ class), image = A · (all ws) + noise, in float64: d = ||A (w1 - w0)||² for any ε."""

    def __init__(self, z_dim=3, w_dim=4, num_ws=2, size=4) -> None:
        super().__init__()
        self.num_ws, self.size, self.log = num_ws, size, Log()
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("W", torch.randn(z_dim, w_dim, dtype=torch.float64))
        self.register_buffer("A", torch.randn(3 * size * size, num_ws * w_dim, dtype=torch.float64))
        self.layer = nn.Module()
        self.layer.register_buffer("noise_const", torch.zeros(size, size))

    def mapping(self, z, c=None, psi=1, cutoff=None, update_w_avg=True):
        assert psi == 1 and cutoff is None and not update_w_avg
        w = z.double() @ self.W + (0 if c is None else c.double()[:, None])
        self.log.append(("w", w, c))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="random", fused=None):
        assert noise_mode == "const"
        noise = self.layer.noise_const.clone()
        self.log.append(("noise", noise))
        return (ws.flatten(1) @ self.A.T).view(-1, 3, self.size, self.size) + noise


def _l2(a, b):
    return (a - b).square().flatten(1).sum(1)


def test_ppl_of_a_linear_generator_is_the_hand_value_for_every_epsilon():
    torch.manual_seed(0)
    G = LinearG()
    for eps in (1e-4, 1e-2):
        G.log.clear()
        d = path_distances(G, _l2, 5, z_dim=3, epsilon=eps, batch_size=2, progress=False)
        ws = torch.cat([entry[1] for entry in G.log if entry[0] == "w"])
        pairs = [w.chunk(2) for w in (ws[:4], ws[4:8], ws[8:])]  # batches of 2, 2, 1 pairs
        step = torch.cat([w1 - w0 for w0, w1 in pairs]).repeat(1, G.num_ws)
        hand = (step @ G.A.T).square().sum(1)
        torch.testing.assert_close(d, hand, rtol=1e-7, atol=0)
        assert filtered_mean(d) == pytest.approx(hand.mean().item(), rel=1e-7)  # 5: none dropped
    noises = [entry[1] for entry in G.log if entry[0] == "noise"]
    assert len(noises) == 3 and not torch.equal(noises[0], noises[1])  # re-drawn each batch
    assert noises[0].std() > 0.5 and (G.layer.noise_const == 0).all()  # only on the copy


def test_ppl_is_seeded_and_a_pair_shares_its_class():
    G = LinearG()
    a = path_distances(G, _l2, 4, z_dim=3, num_classes=3, seed=1, progress=False)
    b = path_distances(G, _l2, 4, z_dim=3, num_classes=3, seed=1, progress=False)
    c = path_distances(G, _l2, 4, z_dim=3, num_classes=3, seed=2, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    classes = G.log[0][2]
    assert torch.equal(classes[:4], classes[4:]) and set(classes.tolist()) <= {0, 1, 2}


def test_the_percentile_filter_drops_the_extremes():
    values = np.random.default_rng(0).permutation(np.arange(201.0) ** 2)
    # 201 values: the 1st percentile ('lower') is the 3rd smallest, the 99th ('higher') the 3rd
    # largest; both are kept, the two below and the two above are dropped.
    assert filtered_mean(values) == pytest.approx(np.mean(np.arange(2.0, 199.0) ** 2))
    spikes = np.r_[np.ones(300), 1e9, 1e9, 0.0, 0.0]
    assert filtered_mean(spikes) == 1.0


def test_lpips_input_downsamples_by_area_and_repeats_grey():
    big = torch.rand(2, 1, 512, 512)
    small = lpips_input(big)
    assert small.shape == (2, 3, 256, 256)
    torch.testing.assert_close(small[:, :1], big.view(2, 1, 256, 2, 256, 2).mean((3, 5)))
    same = torch.rand(1, 3, 256, 256)
    assert lpips_input(same) is same


# --- gankit evaluate --------------------------------------------------------------------------


def test_evaluate_ppl_of_a_stylegan2_run(sg2_run, weights, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", str(sg2_run), "--metrics", "ppl", "--n", "6", "--out", str(out)]
    args += ["--vgg", str(weights.vgg), "--lpips", str(weights.lin)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "perceptual path length of 6 pairs" in printed and "ppl" in printed
    (saved,) = out.glob("evaluation-step-*.json")
    record = json.loads(saved.read_text())
    ppl = record["metrics"]["ppl"]["ppl"]
    assert np.isfinite(ppl) and ppl > 0
    assert record["n"] == 6 and record["ref"] is None and record["ref_images"] == 0
    assert main(args) == 0  # seeded: the same value again
    assert json.loads(saved.read_text())["metrics"]["ppl"]["ppl"] == ppl


def test_evaluate_ppl_of_a_conditional_stylegan2_run(weights, tmp_path):
    run = tmp_path / "run"
    overrides = [*TINY_SG2, "gan.conditional=projection", "data.image_size=16", "train.steps=1"]
    train(build_config("cgan-mnist", overrides), run)
    args = ["evaluate", str(run), "--metrics", "ppl", "--n", "4"]
    assert main([*args, "--vgg", str(weights.vgg), "--lpips", str(weights.lin)]) == 0
    (saved,) = (run / "eval").glob("evaluation-step-*.json")
    assert json.loads(saved.read_text())["metrics"]["ppl"]["ppl"] > 0


def test_ppl_errors_are_one_line(sg2_run, dcgan_run, tmp_path, capsys):
    folder = tmp_path / "images"
    write_random_images(folder, n=2, size=16)
    cases = {
        "no W space": ([dcgan_run], "--metrics ppl needs a generator with a W space"),
        "a folder": ([folder], "--metrics ppl needs a GAN run with a W space (StyleGAN2)"),
        "offline": ([sg2_run], "--vgg PATH"),
        "no such file": ([sg2_run, "--lpips", tmp_path / "nope.pth"], "--lpips "),
        "fid without --ref": ([sg2_run, "--metrics", "fid"], "--metrics fid needs --ref"),
    }
    for name, (args, fragment) in cases.items():
        argv = ["evaluate", *map(str, args)]
        argv += [] if "--metrics" in args else ["--metrics", "ppl"]
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, (name, err)
        assert fragment in err, (name, err)
