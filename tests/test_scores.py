"""Scores of the global structured ranking: the normalisations (none / layer / group) and the
hybrid (1 - alpha) · L1 + alpha · NEXP, on hand-built two-layer examples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compreps.core.files import CompRepsError
from compreps.model.compression.scores import HybridImportance, combine
from compreps.model.compression.structured import prune_structured

# One group scored in two layers: layer A (scores 2, 4) and layer B (scores 10, 30).
LAYER_A, LAYER_B = [2.0, 4.0], [10.0, 30.0]


def test_combine_none_is_the_mean_over_layers():
    assert combine([LAYER_A, LAYER_B], "none").tolist() == [6.0, 17.0]


def test_combine_layer_divides_each_layer_by_its_mean_first():
    # A / 3 = [2/3, 4/3]; B / 20 = [1/2, 3/2]; mean over layers = [7/12, 17/12]
    result = combine([LAYER_A, LAYER_B], "layer")
    assert result.tolist() == pytest.approx([7 / 12, 17 / 12], abs=1e-15)


def test_combine_group_divides_the_group_score_by_its_mean():
    # [6, 17] / 11.5
    result = combine([LAYER_A, LAYER_B], "group")
    assert result.tolist() == pytest.approx([6 / 11.5, 17 / 11.5], abs=1e-15)


def test_combine_keeps_an_all_zero_layer_at_zero_and_rejects_unknown_options():
    assert combine([[0.0, 0.0], [1.0, 3.0]], "layer").tolist() == [0.25, 0.75]
    with pytest.raises(CompRepsError, match="normalize"):
        combine([LAYER_A], "max")
    with pytest.raises(CompRepsError, match="no layer"):
        combine([], "none")


class Fixed:
    """A stand-in importance returning fixed scores."""

    def __init__(self, values):
        self.values = torch.tensor(values, dtype=torch.float64)

    def __call__(self, group):
        return self.values


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, [1.0, 3.0, 2.0]),  # L1 alone
        (1.0, [0.4, 0.1, 0.5]),  # NEXP alone
        (0.25, [0.85, 2.275, 1.625]),  # 0.75 * L1 + 0.25 * NEXP
        (0.5, [0.7, 1.55, 1.25]),
    ],
)
def test_hybrid_score_hand_worked(alpha, expected):
    hybrid = HybridImportance(Fixed([1.0, 3.0, 2.0]), Fixed([0.4, 0.1, 0.5]), alpha)
    assert hybrid(None).tolist() == pytest.approx(expected, abs=1e-15)


def test_hybrid_alpha_bounds():
    with pytest.raises(CompRepsError, match="alpha"):
        HybridImportance(Fixed([1.0]), Fixed([1.0]), 1.5)


def two_conv_model() -> nn.Module:
    """conv a (1 -> 2 channels), conv b (2 -> 2), both 1x1: filter L1 norms a: [1, 3],
    b: [4, 30] (two groups of two channels: a's outputs, b's outputs)."""
    model = nn.Sequential(
        nn.Conv2d(1, 2, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(2, 2, 1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 2),
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, -3.0]).view(2, 1, 1, 1))
        model[2].weight.copy_(torch.tensor([[2.0, -2.0], [10.0, 20.0]]).view(2, 2, 1, 1))
    return model


@pytest.mark.parametrize(
    ("normalize", "kept"),
    [
        # raw norms 1, 3 | 4, 30: the lowest is a's channel 0 (norm 1)
        ("none", {"0": [1, 2], "2": [2, 2]}),
        # per group: a [0.5, 1.5], b [4/17, 30/17]: the lowest is b's channel 0 (4/17)
        ("group", {"0": [2, 2], "2": [1, 2]}),
        # one producer per group: per layer = per group
        ("layer", {"0": [2, 2], "2": [1, 2]}),
    ],
)
def test_l1_normalisation_changes_which_channel_goes(normalize, kept):
    model = two_conv_model()
    record = prune_structured(model, 0.25, "struct_l1", image_size=4, normalize=normalize)
    assert record["groups"] == kept
    assert record["score"] == {"normalize": normalize}
    if normalize == "none":
        assert model[0].weight.flatten().tolist() == [-3.0]  # channel 0 (norm 1) is gone
    else:
        assert model[2].weight.flatten().tolist() == [10.0, 20.0]  # b's output 0 is gone
