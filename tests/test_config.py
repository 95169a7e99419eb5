import pytest

from gankit.config import (
    Config,
    build_config,
    from_dict,
    load_recipe,
    parse_overrides,
    recipe_names,
    to_dict,
)
from gankit.errors import ConfigError


def test_defaults_recipe_and_overrides_layer():
    cfg = build_config(
        "dcgan-mnist",
        ["train.steps=7", "gan.loss=hinge", "optim_d.lr=1e-3", "optim_g.betas=[0.0, 0.9]"],
    )
    assert cfg.recipe == "dcgan-mnist"
    assert cfg.train.steps == 7 and cfg.gan.loss == "hinge"
    assert cfg.optim_d.lr == 1e-3 and cfg.optim_g.betas == (0.0, 0.9)
    assert cfg.data.source == "builtin:mnist" and cfg.data.image_size == 28  # from the recipe
    assert cfg.train.batch_size == 128 and cfg.model.arch == "mnist-dc"  # from the recipe
    assert cfg.gan.d_steps == 1  # a dataclass default the recipe leaves alone


def test_default_recipe_is_dcgan_mnist():
    assert build_config(None).recipe == "dcgan-mnist"


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
        (["model.arch=dcgan", "data.image_size=100"], "nearest: 96"),
        ("optim_g.betas=[0.5, 1.5]", "must be in [0, 1)"),
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
    assert build_config("dcgan-mnist", ["gan.augment=translation,cutout"]).gan.augment == [
        "translation",
        "cutout",
    ]
    assert build_config("dcgan-mnist", ["gan.augment=[flip]"]).gan.augment == ["flip"]
    with pytest.raises(ConfigError, match="choose from translation"):
        build_config("dcgan-mnist", ["gan.augment=rotate"])
