"""Reading stylegan2-ada-pytorch network pickles without running their code
(gankit.compat.stylegan2_pickle).

The pickles here are made in the test, in the format of NVlabs/stylegan2-ada-pytorch
(torch_utils/persistence.py, training/training_loop.py): a dict of "persistent" objects that
pickle as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``. The fake NVIDIA modules
exist in ``sys.modules`` only while pickling, so the loader could not import them if it tried, and
each ``module_src`` writes a marker file and exits if anything ever runs it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from gankit.compat.stylegan2_pickle import (
    Snapshot,
    SnapshotError,
    describe,
    load_snapshot,
)
from gankit.errors import CheckpointError, ConfigError

PROTOCOLS = sorted({2, 3, 4, pickle.HIGHEST_PROTOCOL})


# --- fake NVIDIA modules, present while pickling only ------------------------------------------


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:
    raise AssertionError("the loader called the pickle's own reconstruct function")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"


class EasyDict(dict):
    """Stands in for dnnlib.util.EasyDict."""


EasyDict.__module__ = "dnnlib.util"
EasyDict.__qualname__ = "EasyDict"


class Network:
    """Stands in for the TensorFlow-era dnnlib.tflib.network.Network."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 4, "name": self.name, "build_module_src": "raise SystemExit"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


Network.__module__ = "dnnlib.tflib.network"
Network.__qualname__ = "Network"


@contextlib.contextmanager
def fake_nvidia_modules() -> Iterator[None]:
    fakes = {
        "torch_utils": {},
        "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
        "dnnlib": {},
        "dnnlib.util": {"EasyDict": EasyDict},
        "dnnlib.tflib": {},
        "dnnlib.tflib.network": {"Network": Network},
    }
    assert not set(fakes) & set(sys.modules)
    for name, attrs in fakes.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    try:
        yield
    finally:
        for name in fakes:
            del sys.modules[name]


def payload(marker: Path) -> str:
    """A module_src that leaves ``marker`` behind (and stops the process) if it ever runs."""
    return f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n"


def is_builtin_torch_module(module: nn.Module) -> bool:
    return type(module) is not nn.Module and type(module).__module__.startswith("torch.nn.")


class Persistent:
    """Pickles as a stylegan2-ada-pytorch persistent object wrapping ``module``: its ``__dict__``
    as ``state``, its sub-modules persistent too (torch's own classes, like nn.Linear, stay plain
    torch modules)."""

    def __init__(
        self,
        module: nn.Module,
        class_name: str,
        module_src: str,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        state = dict(module.__dict__)
        state["_modules"] = OrderedDict(
            (
                name,
                child
                if child is None or is_builtin_torch_module(child)
                else Persistent(child, "Module", module_src, {}),
            )
            for name, child in module._modules.items()
        )
        if init_kwargs is not None:
            state["_init_args"] = ()
            state["_init_kwargs"] = init_kwargs
        self.meta = dict(
            type="class", version=6, module_src=module_src, class_name=class_name, state=state
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reconstruct_persistent_obj, (self.meta,))


def write_pickle(path: Path, obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    with fake_nvidia_modules(), open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


# --- tiny networks with stylegan2-ada-pytorch's parameter names ---------------------------------


def fc(in_features: int, out_features: int) -> nn.Module:
    m = nn.Module()
    m.weight = nn.Parameter(torch.randn(out_features, in_features))
    m.bias = nn.Parameter(torch.randn(out_features))
    m.activation = "lrelu"
    return m


def synthesis_layer(cin: int, cout: int, w_dim: int, res: int) -> nn.Module:
    m = nn.Module()
    m.register_buffer("resample_filter", torch.full((4, 4), 1 / 16))
    m.affine = fc(w_dim, cin)
    m.weight = nn.Parameter(torch.randn(cout, cin, 3, 3).to(memory_format=torch.channels_last))
    m.register_buffer("noise_const", torch.randn(res, res))
    m.noise_strength = nn.Parameter(torch.zeros([]))
    m.bias = nn.Parameter(torch.randn(cout))
    return m


def torgb(cin: int, img_channels: int, w_dim: int) -> nn.Module:
    m = nn.Module()
    m.affine = fc(w_dim, cin)
    m.weight = nn.Parameter(torch.randn(img_channels, cin, 1, 1))
    m.bias = nn.Parameter(torch.randn(img_channels))
    return m


def tiny_generator(z_dim=3, w_dim=4, c_dim=0, channels=2, img_channels=3, attributes=True):
    torch.manual_seed(0)
    g = nn.Module()
    mapping = nn.Module()
    if c_dim:
        mapping.embed = fc(c_dim, w_dim)
    mapping.fc0 = fc(z_dim + (w_dim if c_dim else 0), w_dim)
    mapping.fc1 = fc(w_dim, w_dim)
    mapping.register_buffer("w_avg", torch.randn(w_dim))
    synthesis = nn.Module()
    b4 = nn.Module()
    b4.const = nn.Parameter(torch.randn(channels, 4, 4))
    b4.register_buffer("resample_filter", torch.full((4, 4), 1 / 16))
    b4.conv1 = synthesis_layer(channels, channels, w_dim, 4)
    b4.torgb = torgb(channels, img_channels, w_dim)
    b8 = nn.Module()
    b8.register_buffer("resample_filter", torch.full((4, 4), 1 / 16))
    b8.register_buffer("scratch", torch.ones(2), persistent=False)  # not in state_dict()
    b8.conv0 = synthesis_layer(channels, channels, w_dim, 8)
    b8.conv1 = synthesis_layer(channels, channels, w_dim, 8)
    b8.torgb = torgb(channels, img_channels, w_dim)
    synthesis.b4, synthesis.b8 = b4, b8
    g.synthesis, g.mapping = synthesis, mapping
    # torch's own classes inside a persistent network pickle as plain torch modules
    g.extra = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 1, bias=False)])
    g.extra[0].register_buffer("h16", torch.ones(3, dtype=torch.float16))
    if attributes:
        g.z_dim, g.c_dim, g.w_dim, g.img_resolution, g.img_channels = (
            z_dim,
            c_dim,
            w_dim,
            8,
            img_channels,
        )
        g.num_ws = 6
    return g


def conv2d_layer(cin: int, cout: int, k: int, bias: bool = True) -> nn.Module:
    m = nn.Module()
    m.register_buffer("resample_filter", torch.full((4, 4), 1 / 16))
    m.weight = nn.Parameter(torch.randn(cout, cin, k, k))
    if bias:
        m.bias = nn.Parameter(torch.randn(cout))
    else:
        m.register_parameter("bias", None)  # state_dict() skips it
    return m


def tiny_discriminator(channels=2, img_channels=3):
    torch.manual_seed(1)
    d = nn.Module()
    b8 = nn.Module()
    b8.register_buffer("resample_filter", torch.full((4, 4), 1 / 16))
    b8.fromrgb = conv2d_layer(img_channels, channels, 1)
    b8.conv0 = conv2d_layer(channels, channels, 3)
    b8.conv1 = conv2d_layer(channels, channels, 3)
    b8.skip = conv2d_layer(channels, channels, 1, bias=False)
    b4 = nn.Module()
    b4.mbstd = nn.Module()
    b4.conv = conv2d_layer(channels + 1, channels, 3)
    b4.fc = fc(channels * 16, channels)
    b4.out = fc(channels, 1)
    d.b8, d.b4 = b8, b4
    d.register_buffer("step", torch.tensor(7, dtype=torch.int64))
    return d


def generator_kwargs(z_dim=3, w_dim=4, c_dim=0) -> EasyDict:
    return EasyDict(
        z_dim=z_dim,
        w_dim=w_dim,
        mapping_kwargs=EasyDict(num_layers=2, lr_multiplier=np.float32(0.25)),
        synthesis_kwargs=EasyDict(
            channel_base=np.int64(16),
            channel_max=2,
            num_fp16_res=np.int32(1),
            conv_clamp=256,
            architecture="skip",
        ),
        c_dim=c_dim,
        img_resolution=8,
        img_channels=3,
    )


DISCRIMINATOR_KWARGS = EasyDict(
    block_kwargs=EasyDict(),
    mapping_kwargs=EasyDict(),
    epilogue_kwargs=EasyDict(mbstd_group_size=np.int64(2)),
    channel_base=16,
    channel_max=2,
    num_fp16_res=0,
    conv_clamp=None,
    c_dim=0,
    img_resolution=8,
    img_channels=3,
)

TRAINING_SET = dict(
    class_name="training.dataset.ImageFolderDataset",
    path="/data/faces.zip",
    use_labels=False,
    max_size=10,
    xflip=True,
    resolution=8,
)


def snapshot_dict(marker: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
    """A network-snapshot-*.pkl dict, and the modules whose state_dict() it must give."""
    src = payload(marker)
    g, g_ema, d = tiny_generator(), tiny_generator(), tiny_discriminator()
    with torch.no_grad():
        g_ema.mapping.w_avg.add_(1)
    augment = nn.Module()
    augment.register_buffer("p", torch.tensor(0.125))
    data = dict(
        training_set_kwargs=dict(TRAINING_SET),
        G=Persistent(g, "Generator", src, generator_kwargs()),
        D=Persistent(d, "Discriminator", src, DISCRIMINATOR_KWARGS),
        G_ema=Persistent(g_ema, "Generator", src, generator_kwargs()),
        augment_pipe=Persistent(augment, "AugmentPipe", src, EasyDict(xflip=1, rotate90=1)),
    )
    return data, {"G": g, "D": d, "G_ema": g_ema, "augment_pipe": augment}


def assert_one_line(error: pytest.ExceptionInfo[SnapshotError], path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# --- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_snapshot_round_trips_the_state_dicts_without_running_module_src(tmp_path, protocol):
    marker = tmp_path / "pwned"
    data, modules = snapshot_dict(marker)
    path = write_pickle(tmp_path / "network-snapshot-000000.pkl", data, protocol)

    snap = load_snapshot(path)

    assert isinstance(snap, Snapshot)
    assert not marker.exists()
    assert not {"torch_utils", "dnnlib"} & set(sys.modules)
    assert set(snap.networks()) == {"G", "D", "G_ema", "augment_pipe"}
    for key, module in modules.items():
        net = getattr(snap, key)
        expected = module.state_dict()
        assert list(net.state) == list(expected)  # same names, same order
        for name, tensor in expected.items():
            got = net.state[name]
            assert got.dtype == tensor.dtype and got.stride() == tensor.stride(), name
            assert torch.equal(got, tensor), name
            assert not got.requires_grad
    assert snap.G.class_name == "Generator" and snap.D.class_name == "Discriminator"
    assert snap.augment_pipe.class_name == "AugmentPipe"
    assert snap.generator is snap.G_ema
    assert "synthesis.b8.scratch" not in snap.G.state
    assert "b8.skip.bias" not in snap.D.state and "b8.skip.weight" in snap.D.state
    for name in ("mapping.fc0.weight", "mapping.w_avg", "synthesis.b4.const"):
        assert name in snap.G.state
    assert "synthesis.b8.conv0.affine.weight" in snap.G.state and "b4.fc.weight" in snap.D.state
    assert torch.equal(snap.G_ema.state["mapping.w_avg"], snap.G.state["mapping.w_avg"] + 1)
    assert snap.training_set_kwargs == TRAINING_SET
    assert snap.G.attributes["img_resolution"] == 8 and snap.G.version == 6


def test_init_kwargs_come_back_as_plain_python(tmp_path):
    data, _ = snapshot_dict(tmp_path / "pwned")
    snap = load_snapshot(write_pickle(tmp_path / "snap.pkl", data))

    kwargs = snap.G_ema.init_kwargs
    assert type(kwargs) is dict and type(kwargs["synthesis_kwargs"]) is dict
    assert kwargs == {
        "z_dim": 3,
        "w_dim": 4,
        "mapping_kwargs": {"num_layers": 2, "lr_multiplier": 0.25},
        "synthesis_kwargs": {
            "channel_base": 16,
            "channel_max": 2,
            "num_fp16_res": 1,
            "conv_clamp": 256,
            "architecture": "skip",
        },
        "c_dim": 0,
        "img_resolution": 8,
        "img_channels": 3,
    }
    assert type(kwargs["synthesis_kwargs"]["channel_base"]) is int
    assert type(kwargs["mapping_kwargs"]["lr_multiplier"]) is float
    assert snap.D.init_kwargs["epilogue_kwargs"] == {"mbstd_group_size": 2}
    assert snap.augment_pipe.init_kwargs == {"xflip": 1, "rotate90": 1}
    assert snap.G.init_args == ()


def test_numpy_1_pickles_read_too(tmp_path):
    """Snapshots of 2021 name numpy.core.multiarray, NumPy 2 writes numpy._core.multiarray."""
    data, _ = snapshot_dict(tmp_path / "pwned")
    raw = (write_pickle(tmp_path / "new.pkl", data, protocol=2)).read_bytes()
    assert b"numpy._core.multiarray\nscalar\n" in raw
    old = tmp_path / "old.pkl"
    old.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))

    snap = load_snapshot(old)

    assert snap.G.init_kwargs["synthesis_kwargs"]["channel_base"] == 16


def test_public_network_file_with_only_g_ema(tmp_path):
    """The public ffhq/afhq/metfaces files may hold less than a snapshot; G_ema alone is enough,
    and without constructor arguments the dimensions come from the attributes or the weights."""
    src = payload(tmp_path / "pwned")
    g = tiny_generator(c_dim=5, attributes=False)
    path = write_pickle(tmp_path / "ffhq.pkl", {"G_ema": Persistent(g, "Generator", src)})

    snap = load_snapshot(path)

    assert snap.G is None and snap.D is None and snap.training_set_kwargs is None
    assert snap.generator is snap.G_ema and snap.G_ema.init_kwargs == {}
    facts = describe(snap)
    assert set(facts) == {"G"}
    assert facts["G"] == {
        "class_name": "Generator",
        "z_dim": 3,
        "w_dim": 4,
        "c_dim": 5,
        "img_resolution": 8,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 8},
        "synthesis_kwargs": {
            "channel_base": 32768,
            "channel_max": 512,
            "architecture": "skip",
            "num_fp16_res": 0,
            "conv_clamp": None,
        },
    }


def test_describe_reads_init_kwargs_and_fills_in_defaults(tmp_path):
    data, _ = snapshot_dict(tmp_path / "pwned")
    snap = load_snapshot(write_pickle(tmp_path / "snap.pkl", data))

    facts = describe(snap)

    g = facts["G"]
    assert (g["z_dim"], g["w_dim"], g["c_dim"], g["img_resolution"], g["img_channels"]) == (
        3,
        4,
        0,
        8,
        3,
    )
    assert g["mapping_kwargs"] == {"num_layers": 2, "lr_multiplier": 0.25}
    assert g["synthesis_kwargs"] == {
        "channel_base": 16,
        "channel_max": 2,
        "architecture": "skip",
        "num_fp16_res": 1,
        "conv_clamp": 256,
    }
    d = facts["D"]
    assert d["class_name"] == "Discriminator"
    assert (d["c_dim"], d["img_resolution"], d["img_channels"]) == (0, 8, 3)
    assert d["architecture"] == "resnet"  # not given: the reference default
    assert (d["channel_base"], d["channel_max"]) == (16, 2)
    assert (d["mbstd_group_size"], d["mbstd_num_channels"]) == (2, 1)
    assert d["epilogue_kwargs"] == {"mbstd_group_size": 2}


def test_describe_of_a_discriminator_without_kwargs_uses_the_reference_defaults(tmp_path):
    src = payload(tmp_path / "pwned")
    data = {
        "G": Persistent(tiny_generator(), "Generator", src, generator_kwargs()),
        "D": Persistent(tiny_discriminator(), "Discriminator", src),
    }
    snap = load_snapshot(write_pickle(tmp_path / "snap.pkl", data))

    d = describe(snap)["D"]

    assert d["architecture"] == "resnet"
    assert (d["channel_base"], d["channel_max"]) == (32768, 512)
    assert (d["mbstd_group_size"], d["mbstd_num_channels"]) == (4, 1)
    assert (d["c_dim"], d["img_resolution"], d["img_channels"]) == (0, 8, 3)


# --- refusals ----------------------------------------------------------------------------------


class RunsACommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def test_refuses_a_pickle_that_calls_os_system(tmp_path):
    marker = tmp_path / "FILE"
    path = write_pickle(tmp_path / "evil.pkl", {"G_ema": RunsACommand(f"touch {marker}")})

    with pytest.raises(SnapshotError) as error:
        load_snapshot(path)

    message = assert_one_line(error, path)
    assert f"refuses to load {os.system.__module__}.system" in message
    assert "gankit never runs code from a pickle" in message
    assert not marker.exists()


def test_refuses_a_command_hidden_in_a_network(tmp_path):
    marker = tmp_path / "FILE"
    g = tiny_generator()
    kwargs = generator_kwargs()
    kwargs["mapping_kwargs"]["hook"] = RunsACommand(f"touch {marker}")
    data = {"G_ema": Persistent(g, "Generator", payload(tmp_path / "pwned"), kwargs)}
    path = write_pickle(tmp_path / "evil.pkl", data)

    with pytest.raises(SnapshotError, match="refuses to load") as error:
        load_snapshot(path)

    assert_one_line(error, path)
    assert not marker.exists()


class EvilStorage:
    """Pickles like a tensor storage whose bytes hold a pickle that runs a command."""

    def __init__(self, command: str) -> None:
        self.inner = pickle.dumps(RunsACommand(command), protocol=2)

    def __reduce__(self) -> tuple[Any, ...]:
        return (torch.storage._load_from_bytes, (self.inner,))


def test_refuses_a_command_hidden_in_a_tensor_storage(tmp_path):
    marker = tmp_path / "FILE"
    g = tiny_generator()
    state_with_evil = Persistent(g, "Generator", payload(tmp_path / "pwned"), {})
    state_with_evil.meta["state"]["_buffers"]["evil"] = EvilStorage(f"touch {marker}")
    path = write_pickle(tmp_path / "evil.pkl", {"G_ema": state_with_evil})

    with pytest.raises(SnapshotError, match="torch.load.weights_only=True. cannot read") as error:
        load_snapshot(path)

    assert_one_line(error, path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, what",
    [
        ([1, 2, 3], "holds a list"),
        ({"state_dict": {"w": torch.zeros(1)}}, "dict without G_ema or G"),
        ({"G": torch.zeros(2)}, "its G is a Tensor, not a stylegan2-ada-pytorch"),
    ],
)
def test_refuses_pickles_of_other_things(tmp_path, obj, what):
    path = write_pickle(tmp_path / "other.pkl", obj)

    with pytest.raises(SnapshotError, match=what) as error:
        load_snapshot(path)

    assert_one_line(error, path)


def test_refuses_a_truncated_file_in_one_line(tmp_path):
    data, _ = snapshot_dict(tmp_path / "pwned")
    whole = write_pickle(tmp_path / "whole.pkl", data).read_bytes()
    for n in (0, 1, len(whole) // 3, len(whole) - 1):
        path = tmp_path / f"cut{n}.pkl"
        path.write_bytes(whole[:n])
        with pytest.raises(SnapshotError, match="truncated or damaged") as error:
            load_snapshot(path)
        assert_one_line(error, path)
    assert not (tmp_path / "pwned").exists()


def test_refuses_missing_files_and_torch_save_archives(tmp_path):
    with pytest.raises(SnapshotError, match="no such file"):
        load_snapshot(tmp_path / "nothing.pkl")
    archive = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, archive)
    with pytest.raises(SnapshotError, match="zip archive") as error:
        load_snapshot(archive)
    assert_one_line(error, archive)


def test_refuses_a_tensorflow_era_pickle(tmp_path):
    tf = (Network("G"), Network("D"), Network("Gs"))
    path = write_pickle(tmp_path / "stylegan2-ffhq-config-f.pkl", tf)

    with pytest.raises(SnapshotError) as error:
        load_snapshot(path)

    message = assert_one_line(error, path)
    assert "a TensorFlow StyleGAN/StyleGAN2 pickle" in message
    assert "convert it with stylegan2-ada-pytorch's legacy.py first" in message


def test_refuses_stylegan3_networks(tmp_path):
    marker = tmp_path / "pwned"
    sg3_src = "class SynthesisInput(torch.nn.Module): pass\n" + payload(marker)
    by_source = {"G_ema": Persistent(tiny_generator(), "Generator", sg3_src, {})}
    g = tiny_generator()
    g.synthesis.input = fc(4, 4)  # stylegan3's synthesis.input.affine.weight, ...
    g.synthesis.input.affine = fc(4, 4)
    by_keys = {"G_ema": Persistent(g, "Generator", payload(marker), {})}
    for name, data in (("by_source", by_source), ("by_keys", by_keys)):
        path = write_pickle(tmp_path / f"{name}.pkl", data)
        with pytest.raises(SnapshotError) as error:
            load_snapshot(path)
        message = assert_one_line(error, path)
        assert message.endswith("a StyleGAN3 network: gankit reads StyleGAN2(-ADA) networks only")
    assert not marker.exists()


def test_snapshot_error_is_a_config_and_a_checkpoint_error():
    assert issubclass(SnapshotError, ConfigError) and issubclass(SnapshotError, CheckpointError)
