"""Bad input: each invalid config gives one message naming the key and the allowed values."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT, copy_workflow, run_snakemake, write_overlay

from compreps.checks import check_config
from compreps.core.config import (
    COMMAND_LINE,
    MIN_COMPRESSED_MODELS,
    ConfigSources,
    config_problems,
    read_config,
    schema_errors,
)
from compreps.core.files import CompRepsError
from compreps.core.vocabulary import CORESET_INITS


@pytest.fixture(scope="module")
def base_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    """Data roots in the config are relative to the working directory."""
    monkeypatch.chdir(ROOT)


def problems(config: dict) -> str:
    with pytest.raises(CompRepsError) as info:
        check_config(config)
    return str(info.value)


def with_value(config: dict, path: str, value) -> dict:
    changed = copy.deepcopy(config)
    node = changed
    keys = path.split("/")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


# Their data is made on the GPU machine (benchmarks/gpu/), so only the files are not checked here.
GPU_MACHINE_PRESETS = {"gpu-cifar-shaped.yaml", "gpu-fashion.yaml"}


def test_shipped_config_and_presets_are_valid(base_config):
    check_config(base_config)
    for preset in sorted((ROOT / "presets").glob("*.yaml")):
        config, sources = read_config(["config.yaml", preset])
        check_files = preset.name not in GPU_MACHINE_PRESETS
        assert config_problems(config, sources, check_files=check_files) == [], preset.name


def test_schema_layer_enum_is_the_models_module_names():
    from compreps.model.networks import layer_names

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["$defs"]["layers"]["items"]["enum"] == layer_names("resnet18")


def test_schema_coreset_init_enum_is_the_vocabulary():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    init = schema["properties"]["coreset"]["properties"]["init"]["enum"]
    assert tuple(init) == CORESET_INITS


def test_minimum_model_count_is_the_correlations_minimum():
    from compreps.analysis.statistics.rank_stats import MIN_MODELS

    assert MIN_COMPRESSED_MODELS == MIN_MODELS


def test_sources_name_the_file_that_set_each_key():
    sources = ConfigSources.from_layers(
        [
            ("config.yaml", {"train": {"epochs": 50, "lr": 0.1}, "quantize": {"bits": [8, 4]}}),
            ("presets/demo.yaml", {"train": {"epochs": 15}, "quantize": {"bits": [2]}}),
            (COMMAND_LINE, {"train": {"lr": 0.2}}),
        ]
    )
    assert sources.file_of(("train", "epochs")) == "presets/demo.yaml"
    assert sources.file_of(("train", "lr")) == COMMAND_LINE
    assert sources.file_of(("quantize", "bits", 0)) == "presets/demo.yaml"  # lists are replaced
    assert sources.file_of(("train",)) == COMMAND_LINE  # the last file that set a key below
    assert sources.file_of(("probe", "size")) == "config.yaml"  # unset: the base file


def test_mapping_over_a_value_forgets_what_was_below():
    sources = ConfigSources.from_layers(
        [("a.yaml", {"data": {"root": "x", "download": True}}), ("b.yaml", {"data": 3})]
    )
    assert sources.file_of(("data", "root")) == "b.yaml"


def test_read_config_merges_like_snakemake(tmp_path):
    (tmp_path / "a.yaml").write_text("train: {epochs: 5, lr: 0.1}\nquantize: {bits: [8, 4]}\n")
    (tmp_path / "b.yaml").write_text("train: {epochs: 7}\nquantize: {bits: [2]}\n")
    config, sources = read_config([tmp_path / "a.yaml", tmp_path / "b.yaml"], {"seed": 3})
    assert config == {"train": {"epochs": 7, "lr": 0.1}, "quantize": {"bits": [2]}, "seed": 3}
    assert sources.files == (str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"), COMMAND_LINE)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("train/epochs", 0, ["train/epochs", ">= 1"]),
        ("train/epochs", -3, ["train/epochs", ">= 1"]),
        ("prune/ratios/0", 1.5, ["prune/ratios/0", "> 0", "< 1"]),
        ("prune/ratios/0", 0, ["prune/ratios/0", "> 0", "< 1"]),
        ("quantize/bits/0", 9, ["quantize/bits/0", ">= 1", "<= 8"]),
        ("quantize/bits/0", 0, ["quantize/bits/0", ">= 1", "<= 8"]),
        ("coreset/fractions/0", 0, ["coreset/fractions/0", "> 0", "<= 1"]),
        ("coreset/fractions/0", 1.2, ["coreset/fractions/0", "> 0", "<= 1"]),
        ("data/dataset", "imagenet", ["data/dataset", "cifar10", "fashion_mnist"]),
        ("model/arch", "vgg16", ["model/arch", "resnet18"]),
        ("probe/metric_layers/0", "layer9", ["probe/metric_layers/0", "layer4.1.conv2", "fc"]),
        ("probe/trajectory_layers/1", "lyr2", ["probe/trajectory_layers/1", "layer2"]),
        ("quantize/scheme", "log2", ["quantize/scheme", "paper", "uniform", "per_channel"]),
        ("metrics/reps/weights/decay", 1.4, ["metrics/reps/weights/decay", ">= 0", "<= 1"]),
        ("metrics/reps/weights/alive", -0.1, ["metrics/reps/weights/alive", ">= 0", "<= 1"]),
        ("metrics/gtfa/beta", 1.5, ["metrics/gtfa/beta", ">= 0", "<= 1"]),
        ("metrics/gtfa/gamma", -0.2, ["metrics/gtfa/gamma", ">= 0", "<= 1"]),
    ],
)
def test_bad_value_names_key_and_allowed_values(base_config, path, value, expected):
    message = problems(with_value(base_config, path, value))
    assert "\n" not in message, message  # exactly one problem, on one line
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_reps_weights_must_sum_to_one(base_config):
    config = with_value(base_config, "metrics/reps/weights/decay", 0.5)  # 0.15+0.05+0.35+0.5
    message = problems(config)
    assert "metrics/reps/weights" in message and "sum to 1" in message and "1.05" in message


def test_unknown_key_lists_allowed_keys(base_config):
    config = copy.deepcopy(base_config)
    config["train"]["epoch"] = 3
    message = problems(config)
    assert "train" in message and "'epoch'" in message and "epochs" in message


def test_missing_base_checkpoint_file(base_config, tmp_path):
    config = with_value(base_config, "base_checkpoint", str(tmp_path / "nope.pt"))
    message = problems(config)
    assert "base_checkpoint" in message and "no such file" in message


def test_base_checkpoint_that_does_not_fit_the_model(base_config, tmp_path):
    import torch

    from compreps.model.networks import build_model

    path = tmp_path / "narrow.pt"
    torch.save(build_model("resnet18", 8, 3, 10).state_dict(), path)
    config = with_value(base_config, "base_checkpoint", str(path))  # config width is 64
    message = problems(config)
    assert "base_checkpoint" in message and "does not fit" in message and "64" in message


def test_a_base_checkpoint_is_one_seed(base_config, tmp_path):
    """An imported base is one network: several replicate seeds would all analyse it."""
    import torch

    from compreps.model.networks import build_model

    path = tmp_path / "base.pt"
    torch.save(build_model("resnet18", 64, 3, 10).state_dict(), path)
    config = with_value(base_config, "base_checkpoint", str(path))
    check_config(config)  # one seed (the default): accepted
    message = problems(with_value(config, "train/seeds", [1, 2]))
    assert message.count("\n") == 0 and "train/seeds = [1, 2]" in message
    assert "one seed" in message
    check_config(with_value(base_config, "train/seeds", [1, 2]))  # trained bases: accepted


def test_valid_config_has_no_schema_errors(base_config):
    assert schema_errors(base_config) == []


def test_snakemake_stops_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    overlay = write_overlay(workdir, "bad.yaml", {"quantize": {"bits": [4, 12]}})
    proc = run_snakemake(
        workdir, "--dry-run", "--configfile", "presets/ci.yaml", overlay, check=False
    )
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "bad.yaml: config key quantize/bits/1 = 12 is not allowed" in output
    assert "<= 8" in output
    assert "Job stats" not in output and not (workdir / "results").exists()
