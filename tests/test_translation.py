"""What the translation tasks share: pools, padding to any size, the reference's loss scale,
domain errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gankit.errors import ConfigError, DataError
from gankit.nets import NETS, build_net
from gankit.registries import build_config
from gankit.tasks.cyclegan import CycleGanOptions
from gankit.tasks.image_to_image import (
    ImagePool,
    ReferenceLoss,
    TranslatorModel,
    crop_back,
    domain_streams,
    pad_to,
)

from conftest import write_domains, write_random_images


def test_pool_returns_new_images_until_full_then_mixes_history():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2), torch.device("cpu"))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 4
    seen = set()
    for k in range(20):
        new = torch.full((1, 1, 2, 2), 10.0 + k)
        seen.add(float(pool.query(new)[0, 0, 0, 0]))
    assert any(v < 10 for v in seen) and any(v >= 10 for v in seen)  # both branches taken
    assert int(pool.count) == 4
    empty = ImagePool(0, (1, 2, 2), torch.device("cpu"))
    assert empty.query(first) is first


@pytest.mark.parametrize("multiple", [4, 32, 256])
def test_pad_then_crop_gives_back_the_input(multiple):
    x = torch.randn(2, 3, 30, 45)
    padded, pad = pad_to(x, multiple)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert torch.equal(crop_back(padded, pad), x)


@pytest.mark.parametrize(
    "arch, size",
    [("resnet_9blocks", None), ("resnet_6blocks", None), ("unet_256", None), ("unet_128", None)],
)
def test_every_generator_keeps_any_input_size(arch, size):
    """256×256, 300×200 and 894×1300 come out at exactly their own size (issue 21)."""
    opts = NETS["translator"][arch].options(arch=arch, ngf=2)
    net = build_net("translator", opts, 256, 3)
    model = TranslatorModel({"AtoB": net}, "cyclegan", torch.device("cpu"), 3)
    for h, w in ((256, 256), (300, 200), (894, 1300)):
        assert model.translate(torch.rand(1, 3, h, w) * 2 - 1).shape == (1, 3, h, w)


def test_one_sided_model_refuses_the_other_direction():
    net = build_net(
        "translator",
        NETS["translator"]["resnet_6blocks"].options(arch="resnet_6blocks", ngf=2),
        16,
        3,
    )
    model = TranslatorModel({"BtoA": net}, "cut", torch.device("cpu"), 3)
    with pytest.raises(ConfigError, match="one-sided: it translates BtoA only, not AtoB"):
        model.translate(torch.zeros(1, 3, 16, 16), "AtoB")


def test_reference_loss_scale():
    real, fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    ls = ReferenceLoss("lsgan")
    assert torch.allclose(ls.g(fake), F.mse_loss(fake, torch.ones_like(fake)))
    want = 0.5 * (
        F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
    )
    assert torch.allclose(ls.d(real, fake), want)
    bce = F.binary_cross_entropy_with_logits
    v = ReferenceLoss("non-saturating")
    assert torch.allclose(v.g(fake), bce(fake, torch.ones_like(fake)))
    want = 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    assert torch.allclose(v.d(real, fake), want)


def test_domains_default_to_the_reference_layout_and_errors_name_the_domain(tmp_path):
    root = write_domains(tmp_path / "d")
    cfg = build_config("cyclegan-mnistm", [f"data.root={root}"])
    specs = domain_streams(cfg, cfg.section(CycleGanOptions), "cyclegan")
    assert specs["A"].data.source == f"folder:{root / 'trainA'}"
    assert specs["B"].data.source == f"folder:{root / 'trainB'}"
    with pytest.raises(ConfigError, match="set data.root=DIR with DIR/trainA"):
        domain_streams(build_config("cyclegan-mnistm"), cfg.section(CycleGanOptions), "cyclegan")
    (root / "trainB").rename(root / "other")
    with pytest.raises(DataError, match="domain B folder .*trainB does not exist"):
        domain_streams(cfg, cfg.section(CycleGanOptions), "cyclegan")
    (root / "trainB").mkdir()
    with pytest.raises(DataError, match="domain B folder .*trainB holds no images"):
        domain_streams(cfg, cfg.section(CycleGanOptions), "cyclegan")
    write_random_images(tmp_path / "elsewhere", n=2)
    cfg = build_config(
        "cyclegan-mnistm",
        [
            f"cyclegan.source_A=folder:{tmp_path / 'elsewhere'}",
            f"cyclegan.source_B=folder:{root / 'other'}",
        ],
    )
    assert domain_streams(cfg, cfg.section(CycleGanOptions), "cyclegan")["A"].data.source.endswith(
        "elsewhere"
    )
