"""Capabilities are declared: each task's loaded model implements the roles the task declares,
commands refuse runs without the role they need in one line, and no capability is found by
probing attribute names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.engine.loop import train
from gankit.gan.stabilisers.minibatch import MinibatchDiscrimination, MinibatchStdDev
from gankit.inference.loading import load_run
from gankit.inference.roles import (
    ConditionalGenerative,
    DataInitialised,
    Exportable,
    FeatureDiscriminator,
    Generative,
    MappedGenerator,
    ReconstructingDiscriminator,
    SizeMultiple,
    label_classes,
)
from gankit.nets.fastgan import FastGANDiscriminator
from gankit.nets.ssgan import SsganDiscriminator
from gankit.nets.unet import UnetGenerator
from gankit.registries import TASKS, build_config

from conftest import TINY, TINY_CYCLEGAN, TINY_SSGAN, write_domains

SRC = Path(__file__).resolve().parents[1] / "src" / "gankit"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny trained runs of a GAN, a semi-supervised GAN and a CycleGAN."""
    root = tmp_path_factory.mktemp("roles")
    domains = write_domains(root / "domains")
    cyclegan = [f"data.root={domains}", *TINY_CYCLEGAN, "train.steps=1"]
    return {
        "gan": train(build_config("dcgan-mnist", [*TINY, "train.steps=2"]), root / "gan"),
        "ssgan": train(
            build_config("ssgan-mnist-100", [*TINY_SSGAN, "train.steps=2"]), root / "ssgan"
        ),
        "cyclegan": train(build_config("cyclegan-mnistm", cyclegan), root / "cyclegan"),
    }


def test_loaded_models_implement_the_roles_their_tasks_declare(runs):
    for name, run in runs.items():
        model = load_run(run).model
        for role in TASKS[name].roles:
            assert isinstance(model, role), (name, role.__name__)
    gan = load_run(runs["gan"]).model
    assert isinstance(gan, Exportable) and label_classes(gan) is None
    ssgan = load_run(runs["ssgan"]).model
    assert isinstance(ssgan, Generative) and not isinstance(ssgan, ConditionalGenerative)
    assert not isinstance(ssgan, Exportable) and label_classes(ssgan) is None
    assert not isinstance(gan, MappedGenerator)  # no W space before StyleGAN2


@pytest.mark.parametrize("name", ["ssgan", "cyclegan"])
def test_export_of_a_run_without_an_exportable_generator_is_one_line(runs, name, tmp_path, capsys):
    code = main(["export", str(runs[name]), "--format", "onnx", "--out", str(tmp_path / "g.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert f"is a {name} run: gankit export writes the generator of a GAN run" in err
    assert not (tmp_path / "g.onnx").exists()


def test_export_of_a_classifier_run_is_one_line(tmp_path, capsys):
    from gankit.config import save_config

    run = tmp_path / "clf"
    run.mkdir()
    save_config(build_config("darknet-cifar10-cpu"), run / "config.yaml")
    code = main(
        ["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "c.safetensors")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "is a classifier run: gankit export" in err


def test_export_refuses_a_virtual_batch_norm_generator_through_its_role(tmp_path, capsys):
    run = train(build_config("dcgan-mnist", [*TINY, "gan.vbn=true", "train.steps=1"]), tmp_path)
    code = main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "g.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "without virtual batch norm" in err and "\n" not in err


def test_networks_declare_their_capabilities():
    assert isinstance(FastGANDiscriminator(64, 4, 3), ReconstructingDiscriminator)
    d = SsganDiscriminator(4, 1, 10, hidden=(8,))
    assert isinstance(d, FeatureDiscriminator) and isinstance(d, DataInitialised)
    assert not isinstance(torch.nn.Linear(2, 2), FeatureDiscriminator | DataInitialised)
    unet = UnetGenerator(3, 3, 5, 4)
    assert isinstance(unet, SizeMultiple) and unet.multiple == 32
    assert not isinstance(torch.nn.Conv2d(3, 3, 1), SizeMultiple)
    assert MinibatchDiscrimination(8, 4).out_features == 12
    assert not isinstance(MinibatchStdDev(), MinibatchDiscrimination)


# Receivers whose attributes are looked up by name on purpose: parsed command-line arguments,
# options dataclasses (a field shared by some architectures' options), exceptions, torch itself,
# parameters marked frozen, and dataclass fields walked by name.
_ALLOWED = {"args", "opts", "o", "e", "error", "torch.backends", "p", "self", "obj", "cfg", "os"}
_ALLOWED_IN = {
    ("config/values.py", "tp"),  # typing introspection of a config field's type
    ("nets/init.py", "m"),  # torch's two spectral-norm APIs (weight_orig vs parametrizations)
    ("data/prep/validate.py", "img"),  # PIL: only animated formats have n_frames
}


def _receiver(node: ast.expr) -> str:
    return ast.unparse(node)


def test_no_capability_is_probed_by_attribute_name():
    """``hasattr(x, "name")`` and ``getattr(x, "name", default)`` on a network or a model are
    how capabilities used to be found; roles declare them now."""
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            probe = node.func.id == "hasattr" or (node.func.id == "getattr" and len(node.args) == 3)
            if not probe or not isinstance(node.args[1], ast.Constant):
                continue
            receiver = _receiver(node.args[0])
            where = (str(path.relative_to(SRC)), receiver)
            if receiver.split("[")[0] in _ALLOWED or receiver.startswith("cfg."):
                continue
            if where not in _ALLOWED_IN:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {ast.unparse(node)}")
    assert not found, found
