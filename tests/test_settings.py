"""Settings: config -> typed sections, and config -> CLI flags -> the same settings."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path

import pytest
import yaml

from compreps.core import settings as S
from compreps.core.files import CompRepsError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_settings_from_config_types_and_values(config):
    settings = S.settings_from_config(config)
    assert settings.model.width == 64 and settings.train.lr == 0.1
    assert settings.train.weight_decay == 5e-4 and isinstance(settings.train.weight_decay, float)
    assert settings.quantize.bits == (8, 7, 6, 5, 4, 3, 2, 1)
    assert settings.metrics.reps.weights.as_tuple() == (0.15, 0.05, 0.35, 0.45)
    compared = ("layer4.1.conv2", "fc", "layer1", "layer2", "layer3", "layer4")
    assert settings.probe.compared_layers == compared
    assert settings.probe.layers == (*compared, "avgpool")  # the hidden layer is dumped too
    assert settings.metrics.gtfa.output_samples == "probe"
    assert settings.metrics.hierarchy.temperatures == (1.0, 0.5)
    assert settings.base_checkpoint is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.model.width = 8


def test_no_dataclass_field_has_a_default():
    for cls in (*S.SECTIONS, S.RepsWeights, S.RepsSettings, S.GtfaSettings, S.Settings):
        for field in dataclasses.fields(cls):
            assert field.default is dataclasses.MISSING, (cls.__name__, field.name)
            assert field.default_factory is dataclasses.MISSING, (cls.__name__, field.name)


def test_missing_unknown_and_mistyped_keys_are_errors(config):
    broken = {**config, "model": {"arch": "resnet18"}}
    with pytest.raises(CompRepsError, match=r"model: missing key\(s\) width"):
        S.settings_from_config(broken)
    broken = {**config, "sensitivity": {"grid_step": 0.1, "extra": 1}}
    with pytest.raises(CompRepsError, match=r"unknown key\(s\) extra"):
        S.settings_from_config(broken)
    broken = {**config, "model": {"arch": "resnet18", "width": "64"}}
    with pytest.raises(CompRepsError, match="model.width must be int"):
        S.settings_from_config(broken)


@pytest.mark.parametrize("section", S.SECTIONS, ids=lambda cls: cls.SECTION)
def test_config_arguments_parse_back_to_the_same_settings(config, section):
    parser = argparse.ArgumentParser()
    S.add_arguments(parser, section)
    args = parser.parse_args(shlex.split(S.config_arguments(config, section.SECTION)))
    expected = getattr(S.settings_from_config(config), section.SECTION)
    assert S.from_arguments(section, args) == expected


def test_flags_are_required_and_named_after_the_config_path(config):
    parser = argparse.ArgumentParser()
    S.add_arguments(parser, S.MetricsSettings)
    text = S.config_arguments(config, "metrics")
    assert text.startswith(
        "--metrics-reps-weights-effective-rank 0.15 --metrics-reps-weights-alive"
    )
    assert "--metrics-gtfa-top-k 20" in text
    with pytest.raises(SystemExit):
        parser.parse_args(shlex.split(text.replace("--metrics-gtfa-top-k 20", "")))
    assert S.config_arguments(config, "data").endswith("--data-download true")
