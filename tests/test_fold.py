"""Model folding: k-means on hand-made points, the BN variance formula, exact folds of duplicate
channels, k = n as the identity, equal widths with struct_l1, BN recalibration, round trip."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_structured import LEVELS, model_and_images

from compreps.core.files import CompRepsError
from compreps.model.compression.fold import fold_groups, fold_model, folded_variance, kmeans
from compreps.model.compression.structured import group_members, prepare, prune_structured, rebuild


# ----------------------------------------------------------------------------- k-means
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kmeans_groups_exact_duplicates(seed):
    points = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0], [9.0, 0.0], [5.0, 5.0]])
    labels = kmeans(points, 3, seed)
    assert labels[0] == labels[2] and labels[1] == labels[4]
    assert len({labels[0], labels[1], labels[3]}) == 3


def test_kmeans_keeps_every_cluster_non_empty():
    assert sorted(set(kmeans(np.ones((5, 3)), 3).tolist())) == [0, 1, 2]
    assert kmeans(np.random.default_rng(0).normal(size=(4, 2)), 4).tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- BN variance
def test_folded_variance_hand_worked():
    # orthogonal filters: uncorrelated outputs, Var((z1 + z2)/2) = (1 + 4) / 4
    assert folded_variance(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1.0, 4.0])) == (
        pytest.approx(1.25)
    )
    # z2 = 2 z1: Var(1.5 z1) = 2.25 Var(z1)
    assert folded_variance(torch.tensor([[1.0, 0.0], [2.0, 0.0]]), torch.tensor([1.0, 4.0])) == (
        pytest.approx(2.25)
    )
    # z2 = -z1: the mean is 0
    assert folded_variance(
        torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([1.0, 1.0])
    ) == pytest.approx(0.0, abs=1e-12)
    assert folded_variance(torch.tensor([[0.3, -2.0]]), torch.tensor([0.7])) == pytest.approx(0.7)


# ----------------------------------------------------------------------------- exact folds
def duplicate_channel(group, source: int, target: int) -> None:
    """Make channel ``target`` of a coupled group an exact copy of ``source`` everywhere."""
    with torch.no_grad():
        for role, layer, idxs, root_idxs in group_members(group):
            src, dst = idxs[root_idxs.index(source)], idxs[root_idxs.index(target)]
            if role == "out":
                layer.weight[dst] = layer.weight[src]
            elif role == "in":
                layer.weight[:, dst] = layer.weight[:, src]
            else:
                for t in (layer.weight, layer.bias, layer.running_mean, layer.running_var):
                    t[dst] = t[src]


@pytest.mark.parametrize("bn_repair", ["variance", "none"])
@pytest.mark.parametrize("root", ["layer2.0.conv1", "conv1"])  # block-internal, residual stream
def test_folding_duplicate_channels_changes_no_output(root, bn_repair):
    model, images = model_and_images()
    _, _, graph, groups, names, sizes = prepare(model, None, 16)
    g = names.index(root)
    duplicate_channel(groups[g], source=0, target=2)
    before = model(images)
    kept = list(sizes)
    kept[g] -= 1
    fold_groups(model, graph, groups, kept, bn_repair=bn_repair)
    modules = dict(model.named_modules())
    assert modules[root].out_channels == sizes[g] - 1
    torch.testing.assert_close(model(images), before, rtol=1e-5, atol=1e-5)


def test_folding_with_k_equal_n_is_the_identity():
    model, images = model_and_images()
    state = copy.deepcopy(model.state_dict())
    before = model(images)
    _, _, graph, groups, _, sizes = prepare(model, None, 16)
    fold_groups(model, graph, groups, sizes)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert torch.equal(model(images), before)


def test_fold_level_zero_is_the_identity():
    model, images = model_and_images()
    before = model(images)
    record = fold_model(model, 0.0)
    assert record["param_fraction"] == 1.0 and record["kept_channels"] == record["total_channels"]
    assert torch.equal(model(images), before)


# ----------------------------------------------------------------------------- levels
def test_fold_param_fraction_strictly_decreasing_and_equal_to_struct_l1():
    fractions = []
    for level in LEVELS:
        model, _ = model_and_images()
        pruned = copy.deepcopy(model)
        record = fold_model(model, level)
        baseline = prune_structured(pruned, level, "struct_l1")
        assert record["structure"] == baseline["structure"]  # equal kept channels per layer
        assert record["params"] == baseline["params"] and record["macs"] == baseline["macs"]
        assert model.fc.out_features == 10
        fractions.append(record["param_fraction"])
    assert all(a > b for a, b in zip(fractions, fractions[1:], strict=False)), fractions


def test_fold_round_trip_gives_identical_logits(tmp_path):
    model, images = model_and_images(width=8)
    record = fold_model(model, 0.5)
    path = tmp_path / "fold.pt"
    torch.save({"state_dict": model.state_dict(), "structure": record["structure"]}, path)
    saved = torch.load(path, weights_only=True)
    again = rebuild("resnet18", 8, 3, 10, saved["structure"])
    again.load_state_dict(saved["state_dict"], strict=True)
    assert torch.equal(again.eval()(images), model(images))


# ----------------------------------------------------------------------------- BN repair
def test_calib_repair_sets_batch_statistics():
    model, images = model_and_images(n=16)
    with pytest.raises(CompRepsError, match="calibration images"):
        fold_model(copy.deepcopy(model), 0.3, bn_repair="calib")
    record = fold_model(model, 0.3, bn_repair="calib", calib_images=images)
    assert record["bn_repair"] == "calib" and not model.training
    # one batch, cumulative average: the stem BN holds the batch mean and unbiased variance
    with torch.no_grad():
        z = model.conv1(images)
    torch.testing.assert_close(model.bn1.running_mean, z.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        model.bn1.running_var, z.transpose(0, 1).flatten(1).var(1), rtol=1e-4, atol=1e-5
    )


def test_variance_repair_writes_the_variance_of_the_merged_output():
    """Folding 4 channels into one: the merged BN gets (1/16) sum_st rho_st sigma_s sigma_t."""
    model, images = model_and_images()
    _, _, graph, groups, names, sizes = prepare(model, None, 16)
    g = names.index("layer1.0.conv1")
    conv, bn = model.layer1[0].conv1, model.layer1[0].bn1
    with torch.no_grad():
        variances = bn.running_var.clone()
        kept = list(sizes)
        kept[g] = 1  # all 4 channels into one
        filters = conv.weight.clone()
    fold_groups(model, graph, groups, kept, bn_repair="variance")
    expected = folded_variance(filters, variances)
    assert float(bn.running_var[0]) == pytest.approx(expected)
    assert expected < float(variances.mean())  # random filters: partly cancelling members
    with pytest.raises(CompRepsError, match="unknown bn_repair"):
        fold_model(model, 0.3, bn_repair="data")
