"""Loading a run for the commands builds only its networks, in fp32, on the device asked for."""

import pytest
import torch
import yaml

from gankit.cli import main
from gankit.errors import CheckpointError, ConfigError
from gankit.gan.model import GANModel
from gankit.inference.loading import load_role, load_run
from gankit.inference.roles import Classifier, Critic, Generative

from conftest import TINY


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert (
        main(["train", "dcgan-mnist", *TINY, "train.steps=2", "gan.ema=0.9", "--out", str(out)])
        == 0
    )
    return out


def test_loaded_gan_is_generative_and_critic_in_fp32_eval_mode(run):
    loaded = load_run(run)
    model = loaded.model
    assert (
        isinstance(model, GANModel) and isinstance(model, Generative) and isinstance(model, Critic)
    )
    assert not isinstance(model, Classifier)
    assert loaded.step == 2 and model.has_ema and model.nz == 8
    assert not model.G.training and all(p.dtype == torch.float32 for p in model.G.parameters())
    assert not hasattr(model, "opt_g")  # no training machinery
    images = model.sample(model.noise(3))
    assert images.shape == (3, 1, 16, 16) and images.dtype == torch.float32
    assert model.discriminate(images).shape == (3,)


def test_sample_on_cpu_a_run_trained_with_gpu_settings(run, tmp_path, capsys):
    """A run trained with fp16 autocast and compile on a GPU samples on a CPU (config faked)."""
    gpu = tmp_path / "gpu-run"
    gpu.mkdir()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["train"].update(device="cuda", autocast="fp16", compile=True, channels_last=True)
    (gpu / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (gpu / "checkpoints").mkdir()
    for p in (run / "checkpoints").iterdir():
        (gpu / "checkpoints" / p.name).write_bytes(p.read_bytes())
    assert main(["sample", str(gpu), "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    same = load_run(gpu).model.sample(torch.zeros(2, 8))
    assert torch.equal(same, load_run(run).model.sample(torch.zeros(2, 8)))


def test_roles_are_checked_before_loading(run, tmp_path):
    with pytest.raises(ConfigError, match="is a gan run: give a classifier run"):
        load_role(run, Classifier)
    with pytest.raises(CheckpointError, match="not a gankit run directory"):
        load_role(tmp_path, Generative)
