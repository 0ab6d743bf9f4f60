"""Structured pruning (struct_l1, NEXP) on the dependency graph: hand-worked scores and ranking,
the right channels removed, levels reached or refused, cost counts, the checkpoint round trip."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from conftest import random_bn_model
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.compression.scores import nexp_scores
from compreps.model.compression.structured import (
    NexpImportance,
    check_level,
    global_ranking,
    prepare,
    prune_structured,
    rebuild,
    structure_of,
)
from compreps.model.cost import count_params_macs
from compreps.model.networks import build_model

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TOTAL_CHANNELS_W4 = 180  # width 4: streams 4+8+16+32, block-internal 2*(4+8+16+32)


def model_and_images(width: int = 4, seed: int = 0, n: int = 12):
    model = random_bn_model(seed, width, mean=0.5).eval()
    return model, torch.randn(n, 3, 16, 16)


# ----------------------------------------------------------------------------- NEXP score
def test_nexp_score_hand_worked():
    # channel 0: samples 10, 11, 00 -> Hamming 1, 1, 2 over 3 pairs -> 4/3, per position 2/3
    # channel 1: every sample 11 -> 0
    binary = torch.tensor([[[1, 0], [1, 1]], [[1, 1], [1, 1]], [[0, 0], [1, 1]]])
    scores = nexp_scores(binary)
    assert scores.tolist() == pytest.approx([2 / 3, 0.0])


def test_nexp_one_pass_equals_pairwise_brute_force():
    gen = torch.Generator().manual_seed(3)
    binary = (torch.rand(7, 5, 11, generator=gen) > 0.4).int()
    n, channels, positions = binary.shape
    brute = []
    for c in range(channels):
        pairs = list(itertools.combinations(range(n), 2))
        total = sum(int((binary[i, c] != binary[j, c]).sum()) for i, j in pairs)
        brute.append(total / len(pairs) / positions)
    assert nexp_scores(binary).tolist() == pytest.approx(brute)


def test_nexp_rejects_non_binary_and_single_sample():
    with pytest.raises(ValueError, match="binary"):
        nexp_scores(torch.tensor([[[0.5, 1.0]], [[0.0, 1.0]]]))
    with pytest.raises(ValueError, match="2 samples"):
        nexp_scores(torch.ones(1, 3, 4))


# ----------------------------------------------------------------------------- ranking
def test_global_ranking_hand_worked():
    scores = [torch.tensor([0.1, 0.9, 0.5]), torch.tensor([0.2, 0.3])]
    # 0.4 of 5 channels = 2: the two lowest scores network-wide, one in each group
    assert global_ranking(scores, 0.4) == [[0], [0]]
    # 0.8 of 5 = 4, but each group keeps >= 1 channel: 0.3 and 0.9 are skipped -> only 3 go
    removed = global_ranking(scores, 0.8)
    assert removed == [[0, 2], [0]]
    with pytest.raises(CompRepsError, match="removed 3 of 5"):
        check_level(0.8, sum(map(len, removed)), 5, "struct_l1")


def test_global_ranking_round_to_keeps_multiples():
    scores = [torch.arange(16.0), torch.arange(8.0) + 0.5]
    removed = global_ranking(scores, 0.4, round_to=4)
    kept = [16 - len(removed[0]), 8 - len(removed[1])]
    assert all(k % 4 == 0 for k in kept)
    assert removed[0] == list(range(16 - kept[0]))  # the lowest scores of the group go


# ----------------------------------------------------------------------------- pruning
def test_struct_l1_removes_the_smallest_filter():
    model, _ = model_and_images()
    with torch.no_grad():
        model.layer1[0].conv1.weight[2] *= 1e-3
    original = model.layer1[0].conv1.weight.detach().clone()
    record = prune_structured(model, 1 / TOTAL_CHANNELS_W4, "struct_l1")
    assert record["kept_channels"] == TOTAL_CHANNELS_W4 - 1
    assert record["groups"]["layer1.0.conv1"] == [3, 4]
    assert torch.equal(model.layer1[0].conv1.weight, original[[0, 1, 3]])
    assert model.layer1[0].conv2.in_channels == 3 and model.layer1[0].bn1.num_features == 3


def test_nexp_removes_a_dead_channel_first():
    model, _ = model_and_images()
    images = torch.randn(32, 3, 32, 32)
    with torch.no_grad():  # channel 1 after layer2.0.bn1 never fires: NEXP 0
        model.layer2[0].bn1.bias[1] = -1e4
    original = model.layer2[0].conv1.weight.detach().clone()
    # this random init has one dead channel of its own (in layer3.0), so two channels go
    record = prune_structured(model, 2 / TOTAL_CHANNELS_W4, "nexp", images)
    assert record["groups"]["layer2.0.conv1"] == [7, 8]
    assert record["groups"]["layer3.0.conv1"] == [15, 16]
    keep = [0] + list(range(2, 8))
    assert torch.equal(model.layer2[0].conv1.weight, original[keep])


def test_residual_stream_pruned_in_every_coupled_layer():
    model, _ = model_and_images()
    with torch.no_grad():  # stream channel 3 of stage 1 tiny in every producer
        for conv in (model.conv1, model.layer1[0].conv2, model.layer1[1].conv2):
            conv.weight[3] *= 1e-4
    prune_structured(model, 1 / TOTAL_CHANNELS_W4, "struct_l1")
    assert model.bn1.num_features == 3
    for block in model.layer1:
        assert block.conv1.in_channels == 3 and block.bn2.num_features == 3
    assert model.layer2[0].conv1.in_channels == model.layer2[0].downsample[0].in_channels == 3
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("method", ["struct_l1", "nexp"])
def test_param_fraction_strictly_decreasing_and_levels_reached(method):
    fractions = []
    for level in LEVELS:
        model, images = model_and_images()
        record = prune_structured(model, level, method, images)
        assert abs(record["achieved_level"] - level) <= 1 / TOTAL_CHANNELS_W4
        assert model.fc.out_features == 10
        assert record["params"] == sum(p.numel() for p in model.parameters())
        fractions.append(record["param_fraction"])
    assert all(a > b for a, b in zip(fractions, fractions[1:], strict=False)), fractions
    assert fractions[0] < 1.0


def test_unreachable_level_fails_loudly():
    model, _ = model_and_images()
    before = structure_of(model)
    # width 4: every group of 4 or 8 channels rounded to multiples of 16 keeps all of them
    with pytest.raises(CompRepsError, match="away from the level"):
        prune_structured(model, 0.5, "struct_l1", round_to=16)
    assert structure_of(model) == before  # refused before any surgery


def test_bad_arguments():
    model, _ = model_and_images()
    with pytest.raises(CompRepsError, match="calibration images"):
        prune_structured(model, 0.3, "nexp", None)
    with pytest.raises(CompRepsError, match="unknown pruning method"):
        prune_structured(model, 0.3, "random")
    with pytest.raises(CompRepsError, match=r"\[0, 1\)"):
        prune_structured(model, 1.0, "struct_l1")


def test_nexp_scores_bound_to_the_model_object():
    model, images = model_and_images()
    importance = NexpImportance(model, images)
    other = copy.deepcopy(model)
    groups = prepare(other, None, 16)[3]
    with pytest.raises(CompRepsError, match="another model object"):
        importance(groups[0])


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("method", ["struct_l1", "nexp"])
def test_checkpoint_round_trip_gives_identical_logits(tmp_path, method):
    model, images = model_and_images(width=8)
    record = prune_structured(model, 0.5, method, images)
    path = tmp_path / "pruned.pt"
    torch.save({"state_dict": model.state_dict(), "structure": record["structure"]}, path)
    saved = torch.load(path, weights_only=True)
    with pytest.raises(RuntimeError):  # why the structure is stored
        build_model("resnet18", 8, 3, 10).load_state_dict(saved["state_dict"])
    again = rebuild("resnet18", 8, 3, 10, saved["structure"])
    again.load_state_dict(saved["state_dict"], strict=True)
    again.eval()
    assert torch.equal(again(images), model(images))


def test_rebuild_rejects_a_structure_of_another_model():
    model, _ = model_and_images(width=8)
    wider = structure_of(model)
    with pytest.raises(CompRepsError, match="at conv1"):
        rebuild("resnet18", 4, 3, 10, wider)
    del wider["fc"]
    with pytest.raises(CompRepsError, match="layer names differ"):
        rebuild("resnet18", 8, 3, 10, wider)


# ----------------------------------------------------------------------------- cost
def test_count_params_macs_hand_worked():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),  # 108 params; 4*8*8 outputs x 27 = 6912 MACs
        nn.BatchNorm2d(4),  # 8 params, no MACs counted
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),  # 4*2*9+4 = 76; 4*4*4 x 18 = 1152
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),  # 10 params, 8 MACs
    )
    model.train()
    assert count_params_macs(model, (3, 8, 8)) == (108 + 8 + 76 + 10, 6912 + 1152 + 8)
    assert model.training  # mode restored
