"""``gankit import cyclegan|pix2pix|cut``: the reference's checkpoints as gankit runs.

The checkpoints are made here in the reference's layout (tests/reference_translation.py: key
names and shapes written from its network definitions, random weights), imported through the
command line, and gankit's networks are compared with a plain functional re-implementation of
the reference's forward on the same weights. Networks are small (ngf 8) so that each test takes
about a second.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import reference_translation as ref
import torch
from PIL import Image

from gankit.cli import main
from gankit.data.stream import to_unit
from gankit.evaluation.samples import to_uint8, translated_samples
from gankit.inference.loading import load_run
from gankit.registries import task_class

from conftest import metrics_rows, write_domains

NGF = 8


def import_run(tmp_path, fmt, files, *options, name="run"):
    """``gankit import FMT FILES --out tmp_path/name OPTIONS``, which must succeed."""
    out = tmp_path / name
    argv = ["import", fmt, *map(str, files), "--out", str(out), *map(str, options)]
    assert main(argv) == 0
    return out


def same_function(net, layers, state, norm, size=(32, 32), n=2, atol=1e-5):
    """gankit's ``net`` (eval mode) against the reference forward of ``layers`` on ``state``."""
    x = torch.randn(n, layers_channels(layers), *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net.eval()(x)
    theirs = ref.forward(layers, state, x, norm)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=atol, rtol=0)
    assert theirs.std() > 0.05  # not a constant output that would match anything


def layers_channels(layers):
    first = layers[0]
    if first[0] == "unet":
        return first[1][0][1]
    return next(layer for layer in layers if layer[0] == "conv")[1]


# --- the four architectures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, layers, norm, options",
    [
        ("cyclegan", ref.resnet(NGF, 9), "instance", []),
        ("cyclegan", ref.resnet(NGF, 6), "instance", ["--netG", "resnet_6blocks"]),
        ("cyclegan", ref.resnet(NGF, 6, dropout=True), "instance", ["--netG", "resnet_6blocks"]),
        ("cut", ref.resnet(NGF, 9, antialias=True, antialias_up=True), "instance", []),
        ("cut", ref.resnet(NGF, 9), "instance", ["--no-antialias", "--no-antialias-up"]),
    ],
    ids=["resnet_9blocks", "resnet_6blocks", "resnet_6blocks-dropout", "cut", "cut-no-antialias"],
)
def test_resnet_generators_compute_the_reference_function(tmp_path, fmt, layers, norm, options):
    state = ref.state_dict(layers, norm)
    pth = ref.save(tmp_path / "latest_net_G.pth", state)

    run = import_run(tmp_path, fmt, [pth], "--size", 32, *options)

    loaded = load_run(run)
    assert loaded.step == 0 and loaded.cfg.task == fmt
    net = loaded.model.nets["AtoB"]
    same_function(net, layers, state, norm)
    same_function(net, layers, state, norm, size=(20, 28), n=1)  # any multiple of 4


@pytest.mark.parametrize("arch, downs", [("unet_256", 8), ("unet_128", 7)])
def test_unet_generators_compute_the_reference_function(tmp_path, arch, downs):
    layers = ref.unet(NGF, downs)
    state = ref.state_dict(layers, "batch")
    assert "model.model.1.model.3.model.1.weight" in state  # the nested UnetSkipConnectionBlocks
    pth = ref.save(tmp_path / "latest_net_G.pth", state)
    size = 2**downs

    run = import_run(tmp_path, "pix2pix", [pth], "--netG", arch, "--size", size)

    loaded = load_run(run)
    assert loaded.cfg.nets["G"].arch == arch and loaded.cfg.nets["G"].dropout  # pix2pix's default
    same_function(loaded.model.nets["AtoB"], layers, state, "batch", size=(size, size))


@pytest.mark.parametrize(
    "fmt, channels, norm, antialias, n_layers",
    [
        ("cyclegan", 3, "instance", False, 3),
        ("cyclegan", 3, "instance", False, 2),
        ("pix2pix", 6, "batch", False, 3),
        ("cut", 3, "instance", True, 3),
    ],
    ids=["basic", "n_layers-2", "pix2pix", "cut"],
)
def test_patchgans_from_netd_files_compute_the_reference_function(
    tmp_path, fmt, channels, norm, antialias, n_layers
):
    if fmt == "pix2pix":
        g_layers, size = ref.unet(NGF, 8), 256
    else:
        g_layers, size = ref.resnet(NGF, 9, antialias=antialias, antialias_up=antialias), 32
    g = ref.save(tmp_path / "G.pth", ref.state_dict(g_layers, norm))
    d_layers = ref.patchgan(NGF, n_layers, norm, channels, antialias)
    d_state = ref.state_dict(d_layers, norm, seed=1)
    d = ref.save(tmp_path / "latest_net_D.pth", d_state)

    run = import_run(tmp_path, fmt, [g], "--netD-file", d, "--size", size)

    cfg = load_run(run).cfg
    name = "D_A" if fmt == "cyclegan" else "D"
    assert cfg.nets[name].ndf == NGF and cfg.nets[name].antialias == antialias
    assert cfg.nets[name].arch == ("basic" if n_layers == 3 else "n_layers")
    nets = task_class(fmt).build_nets(cfg)
    ckpt = torch.load(run / "checkpoints" / "step-000000.pt", weights_only=True)
    nets[name].load_state_dict(ckpt["parts"]["nets"][name])
    same_function(nets[name], d_layers, d_state, norm, size=(64, 64))
    record = json.loads((run / "imported.json").read_text())
    assert record["networks"][name]["sha256"] == hashlib.sha256(d.read_bytes()).hexdigest()


def test_cyclegan_takes_both_directions_and_one_alone(tmp_path, capsys):
    layers = ref.resnet(NGF, 9)
    a = ref.save(tmp_path / "latest_net_G_A.pth", ref.state_dict(layers, "instance", seed=1))
    b = ref.save(tmp_path / "latest_net_G_B.pth", ref.state_dict(layers, "instance", seed=2))

    both = import_run(tmp_path, "cyclegan", [a, b], "--size", 32, name="both")
    one = import_run(tmp_path, "cyclegan", [a], "--size", 32, name="one")

    model = load_run(both).model
    same_function(model.nets["AtoB"], layers, torch.load(a, weights_only=True), "instance")
    same_function(model.nets["BtoA"], layers, torch.load(b, weights_only=True), "instance")
    out = capsys.readouterr().out
    assert "G_B: new" in out and "--direction BtoA gives noise" in out
    record = json.loads((one / "imported.json").read_text())
    assert record["networks"]["G_B"]["file"] is None and record["networks"]["G_A"]["file"]


def test_cuts_antialiased_networks_have_the_references_parameter_counts():
    """Blurs are constants: CUT's default G and D count as the reference's strided ones
    (ResNet-9 at ngf 64: 11,378,179; basic PatchGAN at ndf 64: 2,764,737), and save none."""
    from gankit.nets.patchgan import NLayerDiscriminator
    from gankit.nets.resnet import ResnetGenerator

    with torch.device("meta"):
        g = ResnetGenerator(3, 3, 64, 9, antialias=True, antialias_up=True)
        d = NLayerDiscriminator(3, 64, 3, antialias=True)
    assert sum(p.numel() for p in g.parameters()) == 11_378_179
    assert sum(p.numel() for p in d.parameters()) == 2_764_737
    assert not [k for k in [*g.state_dict(), *d.state_dict()] if k.endswith("filt")]
    assert len(g.model) == 32 and type(g.model[12]).__name__ == "ResnetBlock"  # CUT's indices


# --- old files ---------------------------------------------------------------------------------


def test_old_instance_norm_statistics_are_dropped_in_the_old_file_format(tmp_path, capsys):
    layers = ref.resnet(NGF, 6)
    state = ref.state_dict(layers, "instance", old_instance_stats=True)
    assert "model.2.running_mean" in state and "model.10.conv_block.2.running_var" in state
    pth = ref.save(tmp_path / "horse2zebra.pth", state, legacy=True)  # PyTorch < 1.6's format

    run = import_run(tmp_path, "cyclegan", [pth], "--netG", "resnet_6blocks", "--size", 32)

    assert "dropped 51 instance-norm statistics" in capsys.readouterr().out  # 17 norms × 3
    same_function(load_run(run).model.nets["AtoB"], layers, state, "instance")


def test_batch_norm_without_num_batches_tracked_imports(tmp_path):
    layers = ref.unet(NGF, 7)
    state = ref.state_dict(layers, "batch")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # PyTorch 0.3
    pth = ref.save(tmp_path / "facades_label2photo.pth", state)

    run = import_run(tmp_path, "pix2pix", [pth], "--netG", "unet_128", "--size", 128)

    same_function(load_run(run).model.nets["AtoB"], layers, state, "batch", size=(128, 128))


# --- gankit translate --------------------------------------------------------------------------


def reference_png(layers, state, norm, image_path):
    """The reference forward on an image file, through the conversions gankit translate makes."""
    x = to_unit(
        torch.from_numpy(np.array(Image.open(image_path).convert("RGB")).transpose(2, 0, 1).copy())
    )
    return to_uint8(ref.forward(layers, state, x[None], norm))[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize(
    "fmt, layers, norm, sizes, options",
    [
        ("cyclegan", ref.resnet(NGF, 9), "instance", [(256, 256), (300, 200)], []),
        (
            "cut",
            ref.resnet(NGF, 9, antialias=True, antialias_up=True),
            "instance",
            [(300, 200)],
            [],
        ),
        ("pix2pix", ref.unet(NGF, 8), "batch", [(256, 256)], []),
    ],
    ids=["resnet", "cut", "unet_256"],
)
def test_translate_reproduces_the_reference_pixel_for_pixel(
    tmp_path, fmt, layers, norm, sizes, options
):
    state = ref.state_dict(layers, norm)
    run = import_run(tmp_path, fmt, [ref.save(tmp_path / "G.pth", state)], *options)
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for w, h in sizes:  # smooth images, so that the network's output is not noise either
        small = rng.integers(0, 256, (h // 20, w // 20, 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(
            inputs / f"{w}x{h}.png"
        )
    out = tmp_path / "out"

    assert main(["translate", str(run), str(inputs), "--out", str(out)]) == 0

    for w, h in sizes:
        got = np.array(Image.open(out / f"{w}x{h}.png"))
        assert got.shape == (h, w, 3)
        expected = reference_png(layers, state, norm, inputs / f"{w}x{h}.png")
        assert np.array_equal(got, expected), np.abs(got.astype(int) - expected).max()
        assert expected.std() > 5


# --- fine-tuning -------------------------------------------------------------------------------

TINY_TRAIN = ["train.epochs=null", "train.steps=1", "train.batch_size=2", "train.n_preview=2",
              "train.progress=false", "train.device=cpu"]  # fmt: skip


@pytest.fixture
def domains(tmp_path):
    return write_domains(tmp_path / "data", n=4, size=24)


def test_an_imported_run_fine_tunes_with_init_from(tmp_path, domains):
    layers = ref.resnet(NGF, 6)
    a = ref.save(tmp_path / "G_A.pth", ref.state_dict(layers, "instance", seed=1))
    run = import_run(tmp_path, "cyclegan", [a], "--netG", "resnet_6blocks", "--size", 24)
    tuned = tmp_path / "tuned"
    args = ["train", str(run / "config.yaml"), f"data.root={domains}", *TINY_TRAIN]

    assert main([*args, "--init-from", str(run), "--out", str(tuned)]) == 0

    rows = metrics_rows(tuned)
    assert any(r.get("event") == "init_from" and r.get("run") == str(run) for r in rows)
    assert load_run(tuned).step == 1


def test_a_mismatched_init_from_is_one_line(tmp_path, domains, capsys):
    a = ref.save(tmp_path / "G_A.pth", ref.state_dict(ref.resnet(NGF, 9), "instance"))
    run = import_run(tmp_path, "cyclegan", [a], "--size", 24)
    capsys.readouterr()
    base = ["train", str(run / "config.yaml"), f"data.root={domains}", *TINY_TRAIN]

    for change, what in [
        ("data.image_size=32 data.load_size=36", "data.image_size is 24 there and 32 here"),
        (
            "nets.G_A.arch=resnet_6blocks",
            "nets.G_A.arch is 'resnet_9blocks' there and 'resnet_6blocks' here",
        ),
        ("nets.G_B.ngf=16", "nets.G_B.ngf is 8 there and 16 here"),
    ]:
        out = tmp_path / change.split("=")[0]
        argv = [*base, *change.split(), "--init-from", str(run), "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert (
            err.count("\n") == 1 and what in err and "fine-tuning needs the same networks" in err
        ), err

    # The CUT recipe's generator is not antialiased; the reference's CUT models are.
    g = ref.save(
        tmp_path / "cut.pth",
        ref.state_dict(ref.resnet(NGF, 9, antialias=True, antialias_up=True), "instance"),
    )
    cut = import_run(tmp_path, "cut", [g], "--size", 24, name="cut")
    capsys.readouterr()
    argv = [
        "train",
        "cut",
        f"data.root={domains}",
        "data.image_size=24",
        "nets.G.ngf=8",
        *TINY_TRAIN,
    ]
    assert main([*argv, "--init-from", str(cut), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "antialias is True there and False here" in err and err.count("\n") == 1, err


def test_an_imported_run_with_its_data_resumes(tmp_path, domains):
    g = ref.save(
        tmp_path / "G.pth",
        ref.state_dict(ref.resnet(NGF, 6, antialias=True, antialias_up=True), "instance"),
    )
    run = import_run(
        tmp_path, "cut", [g], "--netG", "resnet_6blocks", "--size", 24, "--data-root", domains
    )
    assert load_run(run).cfg.data.root == str(domains)
    samples = translated_samples(run, 3)  # what gankit evaluate scores: testA, translated
    assert samples.images.shape == (3, 3, 24, 24) and samples.step == 0

    assert main(["train", "--resume", str(run), "train.steps=2", "train.progress=false"]) == 0

    assert load_run(run).step == 2
    before = torch.load(run / "checkpoints" / "step-000000.pt", weights_only=True)
    after = torch.load(run / "checkpoints" / "step-000002.pt", weights_only=True)
    assert not torch.equal(
        before["parts"]["nets"]["G"]["model.1.weight"],
        after["parts"]["nets"]["G"]["model.1.weight"],
    )


# --- refusals ----------------------------------------------------------------------------------


def _bad(tmp_path, kind):
    """(format, argv after it) of one refused import."""
    resnet = ref.state_dict(ref.resnet(NGF, 9), "instance")
    if kind == "truncated":
        data = ref.save(tmp_path / "x.pth", resnet).read_bytes()
        (tmp_path / "t.pth").write_bytes(data[: len(data) // 2])
        return "cyclegan", [tmp_path / "t.pth"]
    if kind == "pickled-module":
        torch.save({"G": torch.nn.Conv2d(3, 3, 1)}, tmp_path / "m.pth")
        return "cyclegan", [tmp_path / "m.pth"]
    if kind == "not-a-state-dict":
        torch.save({"epoch": 3, "state_dict": resnet}, tmp_path / "n.pth")
        return "pix2pix", [tmp_path / "n.pth"]
    if kind == "unet-as-resnet":
        return "cyclegan", [ref.save(tmp_path / "u.pth", ref.state_dict(ref.unet(NGF, 8), "batch"))]
    if kind == "batch-as-instance":
        state = ref.state_dict(ref.resnet(NGF, 6, norm="batch"), "batch")
        return "cyclegan", [ref.save(tmp_path / "b.pth", state)]
    if kind == "cut-as-cyclegan":
        state = ref.state_dict(ref.resnet(NGF, 9, antialias=True, antialias_up=True), "instance")
        return "cyclegan", [ref.save(tmp_path / "c.pth", state)]
    if kind == "cyclegan-as-cut":
        return "cut", [ref.save(tmp_path / "r.pth", resnet)]
    if kind == "nothing-fits":
        return "cyclegan", [
            ref.save(tmp_path / "p.pth", ref.state_dict(ref.patchgan(NGF), "instance"))
        ]
    if kind == "d-norm":
        d = ref.save(tmp_path / "d.pth", ref.state_dict(ref.patchgan(NGF, norm="batch"), "batch"))
        return "cyclegan", [ref.save(tmp_path / "r.pth", resnet), "--netD-file", d]
    if kind == "d-channels":
        d = ref.save(tmp_path / "d.pth", ref.state_dict(ref.patchgan(NGF, norm="batch"), "batch"))
        g = ref.save(tmp_path / "u.pth", ref.state_dict(ref.unet(NGF, 8), "batch"))
        return "pix2pix", [g, "--netD-file", d]
    if kind == "two-files":
        g = ref.save(tmp_path / "r.pth", resnet)
        return "cut", [g, g]
    if kind == "size":
        return "pix2pix", [
            ref.save(tmp_path / "u.pth", ref.state_dict(ref.unet(NGF, 8), "batch")),
            "--size",
            128,
        ]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("truncated", "t.pth: truncated or not a PyTorch file"),
        (
            "pickled-module",
            "not a state dict: it pickles Python objects (torch.nn.modules.conv.Conv2d)",
        ),
        ("not-a-state-dict", "not a network's state dict (a flat dict of tensors"),
        (
            "unet-as-resnet",
            "(G_A) does not fit resnet_9blocks with instance norm: model.1.weight is missing; "
            "it fits unet_256 with batch norm: add --netG unet_256 --norm batch",
        ),
        (
            "batch-as-instance",
            "model.1.bias is missing; "
            "it fits resnet_6blocks with batch norm: add --netG resnet_6blocks --norm batch",
        ),
        (
            "cut-as-cyclegan",
            "model.7.weight is missing; "
            "it fits resnet_9blocks with instance norm, antialiased (CUT's): import it with gankit import cut",
        ),
        (
            "cyclegan-as-cut",
            "antialiased (CUT's): model.8.weight is missing; "
            "it fits resnet_9blocks with instance norm: add --netG resnet_9blocks --norm instance --no-antialias --no-antialias-up",
        ),
        ("nothing-fits", "no other reference generator fits either"),
        (
            "d-norm",
            "(D_A) does not fit the basic PatchGAN with instance norm: model.2.bias is missing; "
            "it is the basic PatchGAN with batch norm",
        ),
        ("d-channels", "(D) takes 3-channel images; D here takes 6"),
        ("two-files", "gankit import cut takes one generator file"),
        ("size", "--size 128: data.image_size=128 is not supported by unet_256"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, kind, fragment):
    fmt, argv = _bad(tmp_path, kind)
    out = tmp_path / "run"

    assert main(["import", fmt, *map(str, argv), "--out", str(out)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
