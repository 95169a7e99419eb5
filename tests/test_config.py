import pytest

from gankit.config import (
    MOVED,
    Config,
    changes,
    is_structural,
    load_recipe,
    parse_overrides,
    recipe_names,
    to_dict,
)
from gankit.errors import ConfigError
from gankit.gan.options import GanOptions
from gankit.registries import build_config, from_dict, load_config
from gankit.tasks.classifier import ClassifierOptions


def test_defaults_recipe_and_overrides_layer():
    cfg = build_config(
        "dcgan-mnist",
        ["train.steps=7", "gan.loss=hinge", "optim.D.lr=1e-3", "optim.G.betas=[0.0, 0.9]"],
    )
    assert cfg.recipe == "dcgan-mnist"
    assert cfg.train.steps == 7 and cfg.section(GanOptions).loss == "hinge"
    assert cfg.optim["D"].lr == 1e-3 and cfg.optim["G"].betas == (0.0, 0.9)
    assert cfg.data.source == "builtin:mnist" and cfg.data.image_size == 28  # from the recipe
    assert cfg.train.batch_size == 128 and cfg.nets["G"].arch == "mnist-dc"  # from the recipe
    assert cfg.section(GanOptions).d_steps == 1  # a dataclass default the recipe leaves alone


def test_default_recipe_is_dcgan_mnist():
    assert build_config(None).recipe == "cgan-mnist"  # what gankit train runs


def test_round_trip_through_dict():
    cfg = build_config("wgan-gp")
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.stpes=5", "did you mean train.steps"),
        ("trian.steps=5", "did you mean train"),
        ("train.steps=abc", "expected int"),
        ("train.steps=-3", "must be positive"),
        ("gan.loss=wgangp", "did you mean wgan-gp"),
        ("data.channels=2", "choose one of 1, 3"),
        ("data.image_size=100", "set data.image_size=28"),
        (["nets.G.arch=dcgan", "data.image_size=100"], "nearest: 96"),
        ("optim.G.betas=[0.5, 1.5]", "must be in [0, 1)"),
        ("nets.G.arch=resnet", "nets.G.arch='resnet' is not allowed: choose one of dcgan"),
        ("nets.G.ngf=8", "unknown config key 'nets.G.ngf'"),  # mnist-dc has no width option
        (["nets.G.arch=dcgan", "nets.G.ngff=8"], "did you mean nets.G.ngf"),
        ("nets.E.arch=dcgan", "task gan has no such part"),
        ("optim.C.lr=1", "its optim: G, D"),
        ("classifier.lr=1", "belongs to task classifier"),
        ("task=cyclegna", "task='cyclegna' is unknown"),
        ("model.d_norm=spectral", "use nets.D.norm"),
        ("optim_g.lr=1e-4", "use optim.G"),
        ("gan.ema=1.0", "must be in [0, 1)"),
        ("data.source=ftp://x", "data.source"),
        ("train.steps", "key.sub=value"),
        ("train=3", "is a section"),
    ],
)
def test_bad_values_fail_with_one_line_hint(override, fragment):
    with pytest.raises(ConfigError) as e:
        build_config("dcgan-mnist", override if isinstance(override, list) else [override])
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_recipe_suggests():
    with pytest.raises(ConfigError, match="did you mean dcgan-mnist"):
        load_recipe("dcgan-mnst")


def test_every_recipe_loads_and_describes_itself():
    names = recipe_names()
    assert {"dcgan-mnist", "dcgan", "wgan", "wgan-gp", "lsgan", "anime-96", "misaka-144"} <= set(
        names
    )
    for name in names:
        cfg = build_config(name)
        assert isinstance(cfg, Config)
        assert load_recipe(name)["description"]


def test_parse_overrides_nested_and_yaml_values():
    assert parse_overrides(["a.b=1", "a.c=true", "d=x"]) == {"a": {"b": 1, "c": True}, "d": "x"}


def test_list_fields_from_yaml_or_comma_string():
    assert build_config("dcgan-mnist", ["gan.augment=translation,cutout"]).section(
        GanOptions
    ).augment == [
        "translation",
        "cutout",
    ]
    assert build_config("dcgan-mnist", ["gan.augment=[flip]"]).section(GanOptions).augment == [
        "flip"
    ]
    with pytest.raises(ConfigError, match="choose from color, translation"):
        build_config("dcgan-mnist", ["gan.augment=rotate"])


def test_every_moved_key_fails_with_its_new_name():
    for old, new in MOVED.items():
        with pytest.raises(ConfigError) as e:
            build_config("dcgan-mnist", [f"{old}=1"] if "." in old else [f"{old}.lr=1"])
        assert f"use {new}" in str(e.value) and "\n" not in str(e.value)


def test_task_sections_read_typed_and_round_trip_through_yaml(tmp_path):
    from gankit.config import save_config

    cfg = build_config("darknet-cifar10-cpu")
    assert cfg.section(ClassifierOptions) is cfg.options["classifier"]
    assert cfg.nets["net"].num_blocks == (1, 1, 2, 1)
    assert "gan" not in to_dict(cfg) and list(to_dict(cfg))[:7] == [
        "recipe", "description", "task", "seed", "data", "nets", "classifier"
    ]  # fmt: skip
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    with pytest.raises(ConfigError, match="a classifier run's config has no GanOptions section"):
        cfg.section(GanOptions)
    with pytest.raises(AttributeError):  # no untyped attribute access to a task section
        _ = cfg.classifier


def test_broken_run_config_is_one_line(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("task: gan\ntrain: {steps: [}\n")
    with pytest.raises(ConfigError, match="is not valid YAML") as e:
        load_config(bad)
    assert "\n" not in str(e.value)


def test_changes_and_structural_keys():
    a = to_dict(build_config("dcgan-mnist"))
    b = to_dict(build_config("dcgan-mnist", ["optim.G.lr=1e-5", "nets.G.nz=10"]))
    assert changes(a, b) == [("nets.G.nz", 96, 10), ("optim.G.lr", 1e-3, 1e-5)]
    assert is_structural("nets.G.nz") and is_structural("optim.D.name")
    assert not is_structural("optim.G.lr") and not is_structural("train.steps")
    assert is_structural("gan.noise", ["gan.noise"])


def test_another_arch_on_the_command_line_starts_from_its_defaults():
    cfg = build_config("darknet-cifar10", ["nets.net.arch=mnistnet", "nets.net.nf=8"])
    assert cfg.nets["net"].arch == "mnistnet" and cfg.nets["net"].nf == 8
    with pytest.raises(ConfigError, match="unknown config key 'nets.net.num_blocks'"):
        build_config("darknet-cifar10", ["nets.net.arch=mnistnet", "nets.net.num_blocks=[1]"])


def test_yes_and_no_reach_literal_choices():
    """YAML reads `yes`/`no` as booleans; data.in_memory=yes must still mean "yes"."""
    assert build_config("dcgan-mnist", ["data.in_memory=yes"]).data.in_memory == "yes"
    assert build_config("dcgan-mnist", ["data.in_memory=no"]).data.in_memory == "no"
    with pytest.raises(ConfigError, match="choose one of auto, yes, no"):
        build_config("dcgan-mnist", ["data.in_memory=maybe"])


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["nets=dcgan"], "nets is a section of named networks: set their keys, e.g. nets.G.arch"),
        (["train.steps=5", "train.steps.x=1"], "train.steps was given a value (train.steps=5)"),
        (["train.steps.x=1", "train.steps=5"], "train.steps is a section that other overrides"),
        (["train=5"], "train is a section: set its keys, e.g. train.steps=..."),
        (["gan=hinge"], "gan is a section: set its keys, e.g. gan.loss=..."),
        (["nets.G=dcgan"], "nets.G is a section: set its keys, e.g. nets.G.arch=..."),
    ],
)
def test_a_value_where_a_section_belongs_is_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as e:
        build_config("dcgan-mnist", overrides)
    assert fragment in str(e.value) and "\n" not in str(e.value)
