"""CUT and FastCUT: the PatchNCE loss, heads sized from data, one direction, exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gankit.cli import main
from gankit.engine.checkpoint import latest_checkpoint, load_checkpoint
from gankit.engine.loop import train
from gankit.errors import ConfigError
from gankit.nets.patchnce import PatchHeads, patch_nce_loss
from gankit.registries import build_config

from conftest import cut_back, write_domains

TINY = ["data.image_size=24", "nets.G.ngf=4", "nets.D.ndf=4", "train.batch_size=2", "train.n_preview=2",
        "train.progress=false", "train.device=cpu", "train.steps=4", "cut.num_patches=16"]  # fmt: skip


def test_patch_nce_is_low_for_matching_patches_and_log_p_for_unrelated_ones():
    torch.manual_seed(0)
    q = F.normalize(torch.randn(2 * 64, 32), dim=1)
    matched = patch_nce_loss(q, q.clone(), batch=2).mean()
    other = F.normalize(torch.randn(2 * 64, 32), dim=1)
    unrelated = patch_nce_loss(q, other, batch=2, tau=1.0).mean()
    assert matched < 0.5
    assert abs(unrelated - math.log(64)) < 0.1  # 1 positive among 64 near-equal logits


def test_heads_reuse_positions_for_the_paired_features():
    heads = PatchHeads([3, 5], nc=8)
    feats = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
    k, ids = heads.sample(feats, 6)
    q, ids2 = heads.sample([f * 2 for f in feats], 6, ids)
    assert [t.shape for t in k] == [(12, 8), (8, 8)]  # 6 of 16 positions, all 4 of 4
    assert all(torch.equal(a, b) for a, b in zip(ids, ids2, strict=True))
    assert torch.allclose(k[0].norm(dim=1), torch.ones(12))


@pytest.mark.parametrize("recipe", ["cut-mnistm", "fastcut-mnistm"])
def test_cut_trains_one_way_and_refuses_the_other(recipe, tmp_path):
    root = write_domains(tmp_path / "d")
    run = train(build_config(recipe, [f"data.root={root}", *TINY]), tmp_path / "run")
    state = load_checkpoint(latest_checkpoint(run))
    assert sorted(state["parts"]["nets"]) == ["D", "F", "G"]
    out = tmp_path / "out"
    assert (
        main(["translate", str(run), str(root / "testB"), "--direction", "BtoA", "--out", str(out)])
        == 0
    )
    assert main(["translate", str(run), str(root / "testA"), "--out", str(out)]) == 2  # AtoB


def test_cut_resumes_bit_exact_with_its_heads(tmp_path):
    root = write_domains(tmp_path / "d")
    args = [f"data.root={root}", *TINY, "cut.flip_equivariance=true", "cut.lr_decay_start=0.3"]
    cfg = build_config("cut-mnistm", [*args, "train.steps=6", "train.ckpt_every=3"])
    straight = train(cfg, tmp_path / "a")
    resumed = train(cfg, cut_back(straight, 3, tmp_path / "b"), resume=True)
    a = load_checkpoint(latest_checkpoint(straight))
    b = load_checkpoint(latest_checkpoint(resumed))
    assert a["step"] == b["step"] == 6
    for k in ("G", "D", "F"):
        for name, v in a["parts"]["nets"][k].items():
            assert torch.equal(v, b["parts"]["nets"][k][name]), f"nets.{k}.{name}"
    assert a["parts"]["optims"]["F"]["param_groups"][0]["lr"] < 2e-4


def test_cut_needs_a_resnet_generator():
    with pytest.raises(ConfigError, match="cut taps the ResNet generator's encoder"):
        build_config("cut-mnistm", ["nets.G.arch=unet_32"])
