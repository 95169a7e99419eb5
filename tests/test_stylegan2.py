"""StyleGAN2 (nets.G.arch=stylegan2): sizes against the reference classes, the layers' claims,
W space, path length, the optimizer compensation and resume."""

from __future__ import annotations

import math

import pytest
import torch

from gankit.config import OptimConfig
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.errors import ConfigError
from gankit.gan.phases import compensate
from gankit.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from gankit.nets.stylegan2.layers import fir_filter, modulated_conv2d
from gankit.registries import build_config

# NVlabs/stylegan2-ada-pytorch's Generator / Discriminator instantiated on a CPU (3 channels,
# z = w = 512; G 'skip', D 'resnet', the cifar cfg's D 'orig'): size, mapping layers, fmaps,
# classes, D architecture, G parameters, D parameters, num_ws.
REFERENCE = [
    (1024, 8, 1, 0, "resnet", 30_370_060, 29_012_513, 18),
    (1024, 2, 1, 0, "resnet", 28_794_124, 29_012_513, 18),
    (512, 8, 1, 0, "resnet", 30_276_583, 28_982_849, 16),
    (512, 2, 1, 0, "resnet", 28_700_647, 28_982_849, 16),
    (256, 8, 0.5, 0, "resnet", 24_767_458, 24_001_089, 14),
    (256, 2, 0.5, 0, "resnet", 23_191_522, 24_001_089, 14),
    (128, 2, 0.5, 0, "resnet", 22_949_277, 23_882_369, 12),
    (64, 2, 0.5, 0, "resnet", 22_243_608, 23_407_361, 10),
    (32, 2, 1, 10, "orig", 20_215_315, 23_089_664, 8),
    (32, 2, 1, 0, "orig", 19_947_539, 20_720_641, 8),
]


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("size,layers,fmaps,classes,arch,g,d,num_ws", REFERENCE)
def test_parameter_counts_equal_the_reference(size, layers, fmaps, classes, arch, g, d, num_ws):
    with torch.device("meta"):
        G = StyleGAN2Generator(512, 512, size, 3, classes, layers, int(fmaps * 32768), 512)
        D = StyleGAN2Discriminator(size, 3, classes, arch, int(fmaps * 32768), 512)
    assert (_count(G), _count(D), G.num_ws) == (g, d, num_ws)


def _tiny(size: int = 16, classes: int = 0) -> StyleGAN2Generator:
    torch.manual_seed(0)
    return StyleGAN2Generator(16, 16, size, 3, classes, 2, 512, 32)


def test_demodulation_gives_unit_variance_outputs():
    """The paper's claim (sec. 2.2): for unit-variance inputs, demodulated weights keep each
    output channel's variance at 1, whatever the styles."""
    torch.manual_seed(0)
    x = torch.randn(8, 64, 16, 16)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.rand(8, 64) * 3 + 0.1
    out = modulated_conv2d(x, weight, styles, padding=1)[:, :, 1:-1, 1:-1]
    var = out.var(dim=(0, 2, 3))
    assert var.mean().item() == pytest.approx(1.0, abs=0.05)
    assert (var - 1).abs().max().item() < 0.15


@pytest.mark.parametrize("up,demodulate", [(1, True), (2, True), (1, False)])
def test_fused_and_non_fused_modulated_convs_agree(up, demodulate):
    torch.manual_seed(1)
    x, styles = torch.randn(3, 8, 8, 8), torch.randn(3, 8)
    weight = torch.randn(6, 8, 3, 3)
    noise = torch.randn(3, 1, 8 * up, 8 * up)
    kw = dict(up=up, padding=1, f=fir_filter(), demodulate=demodulate, flip_weight=up == 1)
    fused = modulated_conv2d(x, weight, styles, noise, fused=True, **kw)
    split = modulated_conv2d(x, weight, styles, noise, fused=False, **kw)
    assert fused.shape == (3, 6, 8 * up, 8 * up)
    torch.testing.assert_close(fused, split, atol=1e-5, rtol=1e-5)


def test_the_whole_generator_agrees_fused_and_not():
    G = _tiny().eval()
    ws = G.mapping(torch.randn(4, 16))
    torch.testing.assert_close(
        G.synthesis(ws, "const", fused=True), G.synthesis(ws, "const", fused=False), atol=1e-5,
        rtol=1e-5,
    )  # fmt: skip


def test_psi_zero_gives_the_w_avg_image_for_every_z():
    G = _tiny()
    G.train()
    G.mapping(torch.randn(64, 16))  # w_avg moves away from 0 in training
    G.eval()
    assert G.w_avg.abs().sum() > 0
    ws = G.mapping(torch.randn(5, 16), psi=0.0)
    assert torch.equal(ws, G.w_avg.expand_as(ws))
    images = G.synthesis(ws, "const")
    for img in images[1:]:
        assert torch.equal(img, images[0])
    cut = G.mapping(torch.randn(5, 16), psi=0.0, cutoff=2)
    assert torch.equal(cut[:, :2], G.w_avg.expand(5, 2, -1))
    assert not torch.equal(cut[:, 2:], G.w_avg.expand(5, G.num_ws - 2, -1))


def test_style_mixing_takes_the_second_w_exactly_from_the_cutoff_on():
    G = _tiny()
    G.train()
    G.style_mixing = 1.0
    z = torch.randn(4, 16)
    own = G.mapping(z, update_w_avg=False)
    mixed = [G.mapped(z) for _ in range(8)]
    cutoffs = set()
    for ws in mixed:
        same = [torch.equal(ws[:, k], own[:, k]) for k in range(G.num_ws)]
        k = same.index(False)  # the first layer from the second z
        assert all(same[:k]) and not any(same[k:]) and 1 <= k < G.num_ws
        assert all(torch.equal(ws[:, j], ws[:, k]) for j in range(k, G.num_ws))
        cutoffs.add(k)
    assert len(cutoffs) > 1  # the cutoff is drawn, U{1, ..., num_ws - 1}
    G.style_mixing = 0.0
    assert torch.equal(G.mapped(z), G.mapping(z, update_w_avg=False))


def test_the_w_avg_follows_the_batch_mean_in_training_only():
    G = _tiny()
    z = torch.randn(32, 16)
    G.eval()
    G.mapping(z)
    assert G.w_avg.abs().sum() == 0
    G.train()
    w = G.mapping(z, update_w_avg=False)[:, 0]
    G.mapping(z)
    torch.testing.assert_close(G.w_avg, w.mean(0) * 0.005)


class _LinearG(torch.nn.Module):
    """img = Σ_l,d ws[n,l,d]·A[l,d,:]: the path-length gradient is A·y, known by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.A = torch.randn(3, 4, 1 * 2 * 2)

    def forward(self, z, c=None, return_ws=False):
        ws = z.unsqueeze(1).repeat(1, 3, 1).requires_grad_(True)
        img = torch.einsum("nld,ldp->np", ws, self.A).reshape(-1, 1, 2, 2)
        return img, ws


def test_the_path_length_penalty_equals_a_hand_computation():
    from gankit.gan.game import PhaseBatch
    from gankit.gan.penalties import PathLength

    G, z = _LinearG(), torch.randn(3, 4)

    class Game:
        class rt:  # noqa: N801 (a stand-in namespace)
            @staticmethod
            def rank_rows(draw, n):
                return draw(n)

        def noise(self, n):
            return z[:n]

    Game.G = G
    batch = PhaseBatch(torch.zeros(6, 1, 2, 2), None, torch.zeros(6, 1, 2, 2), None, 0, True)
    pen = PathLength(2.0, every=4)
    torch.manual_seed(3)
    value = pen(Game(), batch)
    torch.manual_seed(3)
    y = torch.randn(3, 4) / math.sqrt(4)  # half the batch; y / sqrt(H·W)
    grads = torch.einsum("ldp,np->nld", G.A, y)  # d Σ img·y / d ws
    lengths = grads.square().sum(2).mean(1).sqrt()
    mean = 0.01 * lengths.mean()
    assert value.item() == pytest.approx((lengths - mean).square().mean().item(), rel=1e-5)
    assert pen.pl_mean.item() == pytest.approx(mean.item(), rel=1e-6)
    assert pen.net == "G" and pen.draws_own


def test_lazy_regularisation_compensates_as_the_reference():
    g = compensate(OptimConfig(name="adam", lr=0.002, betas=(0.0, 0.99)), 4, "optim.G")
    d = compensate(OptimConfig(name="adam", lr=0.0025, betas=(0.0, 0.99)), 16, "optim.D")
    assert g.lr == pytest.approx(0.0016) and g.betas[1] == pytest.approx(0.991992, abs=1e-6)
    assert d.lr == pytest.approx(0.00235294, abs=1e-8)
    assert d.betas[1] == pytest.approx(0.990586, abs=1e-6)


TINY_SG2 = [
    "nets.G.arch=stylegan2",
    "nets.D.arch=stylegan2",
    "gan.noise=normal",
    "data.image_size=8",
    "nets.G.nz=8",
    "nets.G.w_dim=8",
    "nets.G.mapping_layers=2",
    "nets.G.fmaps=0.0039",  # channel_base 127: 8 channels at 8x8, channel_max 16 at 4x4
    "nets.G.channel_max=16",
    "nets.D.fmaps=0.0039",
    "nets.D.channel_max=16",
    "train.batch_size=4",
    "train.n_preview=4",
    "train.progress=false",
    "data.limit=64",
    "train.device=cpu",
    "gan.conditional=none",
    "gan.ema=0",
    "gan.label_smoothing=0",
    "optim.G.betas=[0,0.99]",
    "optim.D.betas=[0,0.99]",
    "optim.G.lr=0.002",
    "optim.D.lr=0.0025",
]
STYLEGAN2_GAME = [
    "gan.lazy_reg=separate",
    "gan.r1=1",
    "gan.reg_every=4",
    "gan.penalties=path-length:2:2",
    "gan.style_mixing=0.9",
    "gan.ema_kimg=0.01",
    "gan.ema_rampup=0.05",
    "gan.ada=adaptive",
    "gan.ada_kimg=0.01",
    "gan.ada_interval=2",
]


def _cfg(*extra: str):
    return build_config("dcgan-mnist32", [*TINY_SG2, *STYLEGAN2_GAME, *extra])


def test_the_stylegan2_game_compensates_both_optimizers():
    from gankit.engine.runtime import Runtime
    from gankit.tasks.gan import GANTask

    cfg = _cfg()
    task = GANTask(cfg, Runtime(torch.device("cpu")), {})
    assert [p.name for p in task.phases.generator] == ["G", "Greg"]
    assert [p.name for p in task.phases.critic] == ["D", "Dreg"]
    assert task.opt_g.param_groups[0]["lr"] == pytest.approx(0.002 * 2 / 3)
    assert task.opt_d.param_groups[0]["lr"] == pytest.approx(0.0025 * 4 / 5)
    assert task.G.style_mixing == 0.9


def test_a_resumed_stylegan2_run_is_bit_exact_with_its_state(tmp_path):
    straight = train(_cfg("train.steps=6"), tmp_path / "a")
    first = train(_cfg("train.steps=3"), tmp_path / "b")
    resumed = train(_cfg("train.steps=6"), first, resume=True)
    sa = load_checkpoint(latest_checkpoint(straight))["parts"]
    sb = load_checkpoint(latest_checkpoint(resumed))["parts"]
    for net in ("G", "D"):
        for k, v in sa["nets"][net].items():
            assert torch.equal(v, sb["nets"][net][k]), f"{net}.{k} differs after resume"
    for k, v in sa["ema"]["G"].items():
        assert torch.equal(v, sb["ema"]["G"][k]), f"EMA {k} differs after resume"
    for k, v in sa["buffers"].items():
        assert torch.equal(v, sb["buffers"][k]), f"buffer {k} differs after resume"
    assert float(sa["buffers"]["pl_mean"]) > 0
    assert sa["nets"]["G"]["mapping.w_avg"].abs().sum() > 0
    assert "ada_p" in sa["buffers"] or any("ada" in k for k in sa["buffers"])


def test_w_space_options_refuse_a_generator_without_one():
    from gankit.engine.runtime import Runtime
    from gankit.tasks.gan import GANTask

    from conftest import TINY

    for extra in ("gan.style_mixing=0.5", "gan.penalties=path-length:2:4"):
        cfg = build_config("dcgan-mnist", [*TINY, extra])
        with pytest.raises(ConfigError, match="needs a generator with a W space"):
            GANTask(cfg, Runtime(torch.device("cpu")), {})
    with pytest.raises(ConfigError, match="choose one of gan.ema"):
        build_config("dcgan-mnist", [*TINY, "gan.ema=0.9", "gan.ema_kimg=1"])
    with pytest.raises(ConfigError, match="power-of-two data.image_size"):
        build_config("dcgan-mnist", [*TINY_SG2, "data.image_size=24"])


def test_a_conditional_stylegan2_draws_the_class_asked(tmp_path):
    cfg = build_config("cgan-mnist", [*TINY_SG2, "gan.conditional=projection", "train.steps=2"])
    run = train(cfg, tmp_path / "c")
    from gankit.inference.loading import load_role
    from gankit.inference.roles import Generative

    model = load_role(run, Generative).model
    z = torch.randn(3, 8)
    a = model.sample(z, torch.tensor([0, 1, 2]))
    b = model.sample(z, torch.tensor([3, 1, 2]))
    assert not torch.equal(a[0], b[0]) and torch.equal(a[1:], b[1:])
    from gankit.gan.model import build_gan_nets
    from gankit.gan.options import GanOptions

    for over, match in (
        (["gan.conditional=concat"], "use gan.conditional=projection"),
        (["gan.conditional=projection", "nets.D.arch=dcgan"], "use nets.D.arch=stylegan2"),
    ):
        base = [o for o in TINY_SG2 if "nets.D.arch=dcgan" not in over or "nets.D." not in o]
        bad = build_config("cgan-mnist", [*base, *over])
        bad.section(GanOptions).classes = ("0", "1")
        with pytest.raises(ConfigError, match=match):
            build_gan_nets(bad)


def test_freeze_d_counts_layers_as_the_reference():
    """stylegan2-ada's --freezed N: D's layers from the input in construction order (fromrgb,
    conv0, conv1, skip, then the next block); the epilogue is never counted first."""
    from gankit.tasks.base import freeze_first_layers

    D = StyleGAN2Discriminator(16, 3, 0, "resnet", 256, 16)
    frozen = freeze_first_layers(D, 6)
    assert frozen == ["b16.fromrgb", "b16.conv0", "b16.conv1", "b16.skip", "b8.conv0", "b8.conv1"]
    assert not D.b16.conv1.weight.requires_grad and D.b8.skip.weight.requires_grad


@pytest.fixture(scope="module")
def sg2_run(tmp_path_factory):
    """A tiny StyleGAN2 run of 3 steps whose w_avg has moved."""
    return train(_cfg("train.steps=3"), tmp_path_factory.mktemp("sg2") / "run")


def test_sample_truncates_in_w_and_style_mix_writes_the_grid(sg2_run, tmp_path, capsys):
    from PIL import Image

    from gankit.cli.main import main
    from gankit.inference.loading import load_run
    from gankit.inference.wspace import generate_w, style_mix

    model = load_run(sg2_run).model
    avg = generate_w(model, 3, seed=1, psi=0.0)
    assert torch.equal(avg[0], avg[1]) and torch.equal(avg[1], avg[2])
    assert not torch.equal(*generate_w(model, 2, seed=1, psi=1.0))
    assert (
        main(
            [
                "sample",
                str(sg2_run),
                "--n",
                "4",
                "--truncation",
                "0",
                "--out",
                str(tmp_path / "a.png"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "sample",
                str(sg2_run),
                "--n",
                "4",
                "--truncation",
                "0.5",
                "--truncation-cutoff",
                "2",
                "--out",
                str(tmp_path / "b.png"),
            ]
        )
        == 0
    )
    images, width = style_mix(model, [1, 2], [3, 4, 5], "0-1")
    assert width == 4 and images.shape[0] == 3 * 4
    assert torch.equal(images[0], torch.ones_like(images[0]))  # the blank corner
    out = tmp_path / "mix.png"
    assert (
        main(
            [
                "style-mix",
                str(sg2_run),
                "--rows",
                "1,2",
                "--cols",
                "3-5",
                "--layers",
                "0-1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out).size[0] > Image.open(out).size[1]  # 4 columns, 3 rows
    for argv, match in (
        (
            ["style-mix", str(sg2_run), "--rows", "1", "--cols", "2", "--layers", "0-99"],
            "must lie within 0-",
        ),
        (
            ["sample", str(sg2_run), "--truncation", "0.5", "--noise-std", "0.5"],
            "leave out --noise-std",
        ),
        (
            ["sample", str(sg2_run), "--truncation", "0.5", "--truncation-cutoff", "99"],
            "must be in 1..",
        ),
    ):
        assert main([*argv, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1


def test_w_space_commands_refuse_a_run_without_one(tmp_path, capsys):
    from gankit.cli.main import main

    from conftest import TINY

    run = train(build_config("dcgan-mnist", [*TINY, "train.steps=1"]), tmp_path / "dc")
    assert (
        main(
            ["style-mix", str(run), "--rows", "1", "--cols", "2", "--out", str(tmp_path / "m.png")]
        )
        == 2
    )
    assert "needs a generator with a W space" in capsys.readouterr().err
    assert (
        main(["sample", str(run), "--truncation-cutoff", "2", "--out", str(tmp_path / "s.png")])
        == 2
    )
    assert "--truncation-cutoff needs --truncation" in capsys.readouterr().err


def test_exports_carry_truncation_as_an_input(sg2_run, tmp_path):
    import onnxruntime as ort

    from gankit.inference.export import export_run, load_export
    from gankit.inference.loading import load_run

    model = load_run(sg2_run).model
    z = torch.randn(3, 8)
    want = model.sample(z)
    onnx, meta = export_run(sg2_run, "onnx", tmp_path / "g.onnx")
    assert json_load(meta)["w_space"] is True
    sess = ort.InferenceSession(str(onnx))
    got = sess.run(None, {"z": z.numpy(), "psi": torch.ones(1).numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-4, rtol=1e-4)
    avg = sess.run(None, {"z": z.numpy(), "psi": torch.zeros(1).numpy()})[0]
    assert abs(avg[0] - avg[2]).max() < 1e-5  # psi = 0: the w_avg image for every z
    ts, _ = export_run(sg2_run, "torchscript", tmp_path / "g.pt")
    traced = torch.jit.load(str(ts))
    torch.testing.assert_close(traced(z, torch.ones(1)), want, atol=1e-5, rtol=1e-5)
    st, _ = export_run(sg2_run, "safetensors", tmp_path / "g.safetensors")
    torch.testing.assert_close(load_export(st).sample(z), want)


def json_load(path):
    import json

    return json.loads(path.read_text())


def test_walks_and_arithmetic_happen_in_w(sg2_run):
    from gankit.inference.latent import arithmetic_grid, interpolate
    from gankit.inference.loading import load_run
    from gankit.inference.sampling import seeded_noise
    from gankit.inference.wspace import synthesize, w_codes

    model = load_run(sg2_run).model
    images = interpolate(model, rows=2, steps=3, seed=5)
    ws = w_codes(model, seeded_noise(model, 4, 5))
    ends = synthesize(model, ws)
    torch.testing.assert_close(images[0], ends[0])  # row 0 starts at code 0 ...
    torch.testing.assert_close(images[2], ends[2])  # ... and ends at code 2
    torch.testing.assert_close(images[1], synthesize(model, (ws[:1] + ws[2:3]) / 2)[0])
    z = seeded_noise(model, 6, 0)
    grid, width = arithmetic_grid(model, z, [(1, [0, 1]), (-1, [2]), (1, [3])], variants=2)
    wz = w_codes(model, z)
    want = synthesize(model, (wz[[0, 1]].mean(0) - wz[2] + wz[3]).unsqueeze(0))[0]
    torch.testing.assert_close(grid[-1], want)  # the last tile: the result, computed in W
    assert width == 3
