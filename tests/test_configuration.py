import argparse
from dataclasses import dataclass, field

import pytest

from ddpm.configuration import (
    add_field_flags,
    add_override_arguments,
    diff,
    field_flag_values,
    from_dict,
    merge,
    overrides_from_args,
    replace_from_flags,
    to_dict,
)
from ddpm.errors import UserError
from ddpm.pipelines import ExperimentConfig, load_experiment_config
from ddpm.pipelines.experiment import bundled_configs
from ddpm.validation import require_number


@dataclass
class Inner:
    size: int = field(default=3, metadata={"help": "a size"})
    mult: tuple[int, ...] = (1, 2)
    on: bool = False


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    rate: float = 0.5


def test_round_trip_and_types():
    c = from_dict(Outer, {"inner": {"size": 5, "mult": [2, 4], "on": True}, "rate": 1})
    assert c.inner.mult == (2, 4) and c.rate == 1.0 and isinstance(c.rate, float)
    assert from_dict(Outer, to_dict(c)) == c


@pytest.mark.parametrize(
    "data, message",
    [
        ({"inner": {"sise": 5}}, "did you mean 'size'"),
        ({"ratee": 1.0}, "inner.*rate|did you mean 'rate'"),
        ({"inner": {"size": 2.5}}, "expects an integer"),
        ({"inner": {"on": "maybe"}}, "true or false"),
        ({"inner": 3}, "must be a table"),
        ({"rate": "fast"}, "expects float"),
    ],
)
def test_bad_values_are_named(data, message):
    with pytest.raises(UserError, match=message):
        from_dict(Outer, data)


def test_command_line_overrides():
    parser = argparse.ArgumentParser()
    add_override_arguments(parser, Outer)
    args = parser.parse_args(["--inner.mult", "1,2,3", "--inner.on", "yes", "--rate", "0.25"])
    overrides = overrides_from_args(args)
    assert overrides == {"inner": {"mult": "1,2,3", "on": "yes"}, "rate": "0.25"}
    c = from_dict(Outer, merge({"inner": {"size": 9}}, overrides))
    assert c == Outer(inner=Inner(size=9, mult=(1, 2, 3), on=True), rate=0.25)
    assert "a size (default: 3)" in parser.format_help()


def test_diff_names_changed_keys():
    assert diff({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5}, "d": 3}) == ["a.c"]


def test_bundled_configs_all_load():
    names = bundled_configs()
    assert {"digits-tiny", "fashion-mnist", "fashion-mnist-demo"} <= set(names)
    for name in names:
        assert isinstance(load_experiment_config(name), ExperimentConfig)


def test_bundled_image_to_image_configs_are_consistent():
    """Every task configuration feeds the network the channels its task makes, and only cascade SR
    stages are augmented; the cascade's base makes the SR stage's input size; latent models see
    latents f = 2^k times smaller than their data and do not clamp x̂_0."""
    from ddpm.data import condition_channels

    for name in bundled_configs():
        c = load_experiment_config(name)
        assert c.model.cond_channels == condition_channels(c.data.task, c.model.in_channels), name
        assert (c.data.cond_augment > 0) == c.model.aug_level, name
        if c.train.objective == "autoencoder":
            assert c.autoencoder.image_size == c.data.image_size, name
        elif c.latent.autoencoder:  # the U-Net sees latents, f = 2^k times smaller than the data
            factor = c.data.image_size // c.model.image_size
            assert factor > 1 and factor & (factor - 1) == 0 and not c.sample.clip_x0, name
        else:
            assert c.data.image_size // c.data.downsample == c.model.image_size, name
    base = load_experiment_config("fashion-mnist-base16")
    sr = load_experiment_config("fashion-mnist-cascade-sr")
    assert base.model.image_size * int(sr.data.task[-1]) == sr.model.image_size


def test_section_validation_becomes_a_user_error():
    with pytest.raises(UserError, match="zero_terminal_snr"):
        load_experiment_config({"diffusion": {"zero_terminal_snr": True}})
    with pytest.raises(UserError, match="unknown sample.sampler 'magic'; choose one of ancestral, "):
        load_experiment_config({"sample": {"sampler": "magic"}})


def test_out_of_range_values_name_their_key():
    with pytest.raises(UserError, match=r"^train\.lr must be a finite number > 0, got nan$"):
        load_experiment_config({"train": {"lr": "nan"}})
    with pytest.raises(UserError, match=r"^diffusion\.cosine_s must be a finite number ≥ 0, got -1\.0$"):
        load_experiment_config({"diffusion": {"cosine_s": -1}})
    with pytest.raises(UserError, match=r"^model\.head_channels must divide"):
        load_experiment_config({"model": {"base_channels": 24, "head_channels": 32}})


@dataclass
class Knobs:
    mode: str = field(default="a", metadata={"help": "the mode", "choices": ("a", "b")})
    rate: float = field(default=0.5, metadata={"help": "a rate"})
    on_off: bool = field(default=True, metadata={"help": "a switch", "flag": "switch"})

    def __post_init__(self):
        require_number("rate", self.rate, 0, 1)


def test_field_flags_come_from_the_dataclass():
    parser = argparse.ArgumentParser()
    add_field_flags(parser, Knobs, "knobs", " (default: kept)")
    text = parser.format_help()
    assert "the mode (default: kept)" in text and "--no-switch" in text and "--rate FLOAT" in text
    assert field_flag_values(parser.parse_args([])) == {}
    args = parser.parse_args(["--mode", "b", "--no-switch"])
    assert replace_from_flags(Knobs(), args) == Knobs(mode="b", rate=0.5, on_off=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])
    with pytest.raises(UserError, match=r"^--rate must be a finite number in \[0, 1\], got nan$"):
        replace_from_flags(Knobs(), parser.parse_args(["--rate", "nan"]))
