"""Global L1 pruning: exact sparsity, smallest weights removed, permanence, the CLI step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import random_bn_model
from torch import nn

import compreps.model.compression.step as compress_module
from compreps.core.files import CompRepsError, sha256_file
from compreps.model.checkpoints import load_model, save_checkpoint
from compreps.model.compression.prune import prune_global_l1


def small_model(seed: int = 0) -> nn.Module:
    return random_bn_model(seed)


def prunable_weight_keys(model: nn.Module) -> list[str]:
    return [
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]


def cloned_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.25, 0.5, 0.7, 0.9, 0.123456])
def test_exact_sparsity(ratio):
    model = small_model()
    keys = prunable_weight_keys(model)
    total = sum(model.state_dict()[key].numel() for key in keys)
    sparsity = prune_global_l1(model, ratio)
    zeros = sum(int((model.state_dict()[key] == 0).sum()) for key in keys)
    assert zeros == round(ratio * total)
    assert sparsity == zeros / total
    assert abs(sparsity - ratio) <= 0.5 / total


def test_smallest_magnitudes_are_removed():
    model = small_model(1)
    keys = prunable_weight_keys(model)
    before = cloned_state(model)
    ratio = 0.4
    prune_global_l1(model, ratio)
    after = model.state_dict()

    original = np.concatenate([before[key].flatten().numpy() for key in keys])
    pruned = np.concatenate([after[key].flatten().numpy() for key in keys])
    removed = pruned == 0
    # independent reference: the k smallest |w| over all Conv2d+Linear weights (no ties here)
    k = round(ratio * original.size)
    expected = np.zeros(original.size, dtype=bool)
    expected[np.argsort(np.abs(original), kind="stable")[:k]] = True
    np.testing.assert_array_equal(removed, expected)
    assert np.abs(original[~removed]).min() >= np.abs(original[removed]).max()
    np.testing.assert_array_equal(pruned[~removed], original[~removed])  # survivors unchanged


def test_other_parameters_untouched_and_pruning_permanent():
    model = small_model(2)
    before = cloned_state(model)
    prune_global_l1(model, 0.6)
    after = model.state_dict()
    assert list(after) == list(before)  # no weight_orig / weight_mask, same keys in same order
    assert not any(key.endswith(("_orig", "_mask")) for key in after)
    weight_keys = set(prunable_weight_keys(model))
    for key, value in before.items():
        if key not in weight_keys:
            assert torch.equal(after[key], value), key
    for module in model.modules():
        assert not module._forward_pre_hooks, "pruning re-applies its mask through a hook"
    assert all(isinstance(p, nn.Parameter) for _, p in model.named_parameters())
    # the weight really is the pruned tensor the forward pass uses
    assert int((model.fc.weight == 0).sum()) == int((after["fc.weight"] == 0).sum())


@pytest.mark.parametrize("ratio", [0, 0.0, 1, 1.0, -0.1, 1.5, math.nan, True, "0.5", None])
def test_bad_ratio(ratio):
    with pytest.raises(CompRepsError, match="ratio"):
        prune_global_l1(small_model(), ratio)


def write_base(path, model: nn.Module, train: dict | None = None) -> None:
    meta = {
        "model_id": "base",
        "family": "base",
        "level": math.nan,
        "arch": "resnet18",
        "width": 4,
        "in_channels": 3,
        "num_classes": 10,
        "dataset": "cifar10",
        "config": {"train": train or {"epochs": 1}},
        "seed": 42,
        "epochs": 1,
        "test_accuracy": 0.1,
    }
    save_checkpoint(path, model.state_dict(), meta)


def test_cli_writes_pruned_checkpoint(tmp_path, monkeypatch, fake_data):
    data = fake_data(24)
    monkeypatch.setattr(compress_module, "load_prepared", lambda path, splits: data)
    base_path, out = tmp_path / "base.pt", tmp_path / "prune-0.05.pt"
    write_base(base_path, small_model(3))
    argv = ["prune", "--base", str(base_path), "--ratio", "0.05", "--prune-method", "global_l1"]
    argv += ["--data", "unused.json", "--eval-batch-size", "7"]
    assert compress_module.main([*argv, "--out", str(out)]) == 0

    model, meta = load_model(out, "cpu")
    assert meta["model_id"] == "prune-0.05" and meta["family"] == "prune"
    assert meta["level"] == 0.05 and meta["method"] == "global_l1"
    assert meta["parent_sha256"] == sha256_file(base_path)
    assert meta["arch"] == "resnet18" and meta["width"] == 4 and meta["seed"] == 42
    assert meta["config"]["prune"] == {"method": "global_l1", "ratio": 0.05}
    assert meta["config"]["train"] == {"epochs": 1}
    assert meta["torch_version"] == torch.__version__ and meta["wall_time_s"] > 0
    assert meta["device"].startswith("cpu") and meta["precision"] == "fp32"
    keys = prunable_weight_keys(model)
    total = sum(model.state_dict()[k].numel() for k in keys)
    zeros = sum(int((model.state_dict()[k] == 0).sum()) for k in keys)
    assert zeros == round(0.05 * total) and meta["sparsity"] == zeros / total
    images = (data.test_images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        predictions = model(images).argmax(1)
    assert meta["test_accuracy"] == pytest.approx(
        (predictions == data.test_labels).float().mean().item()
    )


def test_cli_rejects_bad_ratio_and_missing_base(tmp_path, monkeypatch, fake_data):
    monkeypatch.setattr(compress_module, "load_prepared", lambda *a, **k: fake_data(24))
    common = ["--prune-method", "global_l1", "--data", "x.json", "--eval-batch-size", "9"]
    common += ["--out", str(tmp_path / "p.pt")]
    base_path = tmp_path / "base.pt"
    write_base(base_path, small_model())
    for ratio in ("1.0", "0", "abc"):
        with pytest.raises(CompRepsError, match="ratio"):
            compress_module.main(["prune", "--base", str(base_path), "--ratio", ratio, *common])
    with pytest.raises(CompRepsError, match="does not exist"):
        compress_module.main(
            ["prune", "--base", str(tmp_path / "no.pt"), "--ratio", "0.5", *common]
        )
    assert not (tmp_path / "p.pt").exists()
