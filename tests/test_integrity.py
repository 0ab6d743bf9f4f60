"""Non-finite weights and activations stop the job that meets them, naming the file and the
first tensor or layer; a compressed model's dump is compared only with its own base's."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, fake_dump

from compreps import checks
from compreps.analysis.metrics.step import check_provenance, model_metrics
from compreps.core import config as core_config
from compreps.core.dump import read_dump, write_dump
from compreps.core.files import CompRepsError
from compreps.core.settings import ProbeSettings
from compreps.model.checkpoints import HASH_KEY, content_sha256, load_checkpoint, save_checkpoint
from compreps.model.networks import build_model

PROBE = ProbeSettings(
    size=20,
    seed=0,
    metric_layers=("layer4.1.conv2", "fc"),
    trajectory_layers=(),
    hidden_layer="fc",
    batch_size=10,
)


def nan_state_dict() -> dict[str, torch.Tensor]:
    """A width-4 ResNet-18's weights with one NaN in layer2.0.conv1 and one Inf in fc."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in build_model("resnet18", 4, 3, 10).state_dict().items()}
    state["layer2.0.conv1.weight"][1, 0, 0, 0] = float("nan")
    state["fc.weight"][0, 0] = float("inf")
    return state


# --------------------------------------------------------------------------- checkpoints


def test_base_checkpoint_with_nan_weights_is_stopped_at_the_config_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "presets").mkdir()
    shutil.copy2(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copy2(ROOT / "presets/ci.yaml", tmp_path / "presets/ci.yaml")
    (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    torch.save(nan_state_dict(), tmp_path / "nan base.pt")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"base_checkpoint": "nan base.pt"}))
    config, sources = core_config.read_config(["config.yaml", "presets/ci.yaml", "bad.yaml"])
    found = core_config.config_problems(config, sources, verify_base=checks.verify_base)
    assert found == [
        "bad.yaml: config key base_checkpoint = 'nan base.pt': nan base.pt has non-finite "
        "weights (tensor layer2.0.conv1.weight holds 1 NaN and 0 Inf of 288 values): every "
        "metric would be NaN; give weights with finite values, or null to train the base"
    ]


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path):
    out = tmp_path / "prune-0.5.pt"
    with pytest.raises(CompRepsError) as info:
        save_checkpoint(out, nan_state_dict(), {"model_id": "prune-0.5"})
    assert str(info.value).startswith(
        f"{out} not written: its weights are not finite (tensor layer2.0.conv1.weight holds "
        "1 NaN and 0 Inf of 288 values)"
    )
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_checkpoint_with_non_finite_weights_is_refused_on_load(tmp_path):
    """Written without the check (its content hash is right): loading it names the tensor."""
    path = tmp_path / "quant-4.pt"
    state = nan_state_dict()
    torch.save({"state_dict": state, "meta": {HASH_KEY: content_sha256(state)}}, path)
    with pytest.raises(CompRepsError) as info:
        load_checkpoint(path)
    assert str(info.value) == (
        f"{path}: its weights are not finite (tensor layer2.0.conv1.weight holds 1 NaN and 0 "
        "Inf of 288 values); delete it and rerun rule 'quantize' from finite weights"
    )


# --------------------------------------------------------------------------- dumps


def test_a_dump_with_nan_activations_is_never_written(tmp_path):
    dump = fake_dump("prune-0.5")
    dump.layers["fc"][3, 2] = np.nan
    out = tmp_path / "prune-0.5.h5"
    with pytest.raises(CompRepsError) as info:
        write_dump(out, dump)
    assert str(info.value).startswith(
        f"{out} not written: layer fc holds 1 NaN and 0 Inf of 200 values (model prune-0.5)"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("dataset", "name"),
    [("logits", "/logits"), ("probe/layers/layer4.1.conv2", "layer layer4.1.conv2"),
     ("weights/conv1", "weight conv1")],
)  # fmt: skip
def test_no_analysis_reads_a_dump_holding_nan(write_fake_dump, tmp_path, dataset, name):
    """A dump altered after writing (HDF5 checksums recomputed): the metrics step refuses it
    and names the array, where it used to compute NaN metrics."""
    base = write_fake_dump("base")
    path = write_fake_dump("prune-0.5", folder=tmp_path / "model", seed=1)
    with h5py.File(path, "r+") as h5:
        values = h5[dataset][...]
        values.flat[1] = np.inf
        values.flat[2] = np.nan
        h5[dataset][...] = values
    with pytest.raises(CompRepsError) as info:
        read_dump(path, weights=True)
    message = str(info.value)
    assert message.startswith(f"{path}: {name} holds 1 NaN and 1 Inf of {values.size} values")
    assert message.endswith("rerun rule 'activations' once its checkpoint gives finite values")
    with pytest.raises(CompRepsError, match="holds 1 NaN and 1 Inf"):
        model_metrics("prune-0.5", base, path, None, PROBE)


# --------------------------------------------------------------------------- provenance


def test_metrics_refuses_a_dump_made_from_another_base(tmp_path):
    base = fake_dump("base", seed=3)
    own = fake_dump("prune-0.5", seed=4)
    own.attrs["parent_sha256"] = base.attrs["checkpoint_sha256"]
    foreign = fake_dump("prune-0.5", seed=5)
    foreign.attrs["parent_sha256"] = "f" * 64
    paths = {}
    for name, dump in (("base", base), ("own", own), ("foreign", foreign)):
        paths[name] = tmp_path / name / f"{dump.attrs['model']}.h5"
        paths[name].parent.mkdir()
        write_dump(paths[name], dump)
    with pytest.raises(CompRepsError) as info:
        model_metrics("prune-0.5", paths["base"], paths["foreign"], None, PROBE)
    assert str(info.value) == (
        f"{paths['foreign']} is of a model made from base checkpoint sha256 {'f' * 64}, but "
        f"{paths['base']} is the dump of checkpoint sha256 {base.attrs['checkpoint_sha256']}: "
        "a model is only compared with its own base; rerun its compression and rule "
        "'activations' from this base"
    )
    check_provenance(read_dump(paths["base"]), read_dump(paths["own"]))  # its own base: fine
