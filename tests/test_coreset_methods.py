"""The coreset methods besides random: scores, CCS, k-center, moderate, against hand-computed
values; every method's size and class balance; the recorder of the selection run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compreps.core.files import CompRepsError
from compreps.model.data import geometric, scores
from compreps.model.data.coreset import (
    METHODS,
    MethodOptions,
    read_coreset,
    select_with_values,
    write_coreset,
)
from compreps.model.data.scores import Selection
from compreps.model.data.selection import stratified_allocation
from compreps.model.data.selection_run import Dynamics

# T = 4 presentations (rows) of N = 4 examples (columns): 1 = classified correctly
TRACE = np.array(
    [
        [1, 0, 0, 1],
        [0, 0, 1, 1],
        [1, 0, 0, 1],
        [0, 0, 1, 0],
    ],
    dtype=bool,
)
# column 0: 1→0 twice; column 1: never learned (counts T = 4); column 2: 1→0 once (0→1 is
# learning, not forgetting); column 3: 1→0 once, at the end
TRACE_FORGETTING = [2, 4, 1, 1]


def test_forgetting_counts_on_a_hand_written_trace():
    assert scores.forgetting_counts(TRACE).tolist() == TRACE_FORGETTING


def test_forgetting_counts_of_one_presentation():
    assert scores.forgetting_counts(np.array([[True, False]])).tolist() == [0, 1]


def test_el2n_on_tiny_logits():
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]])
    # p = (1/2, 1/2) and (3/4, 1/4) against y = (1, 0): norms sqrt(1/2), sqrt(1/8)
    assert scores.el2n_scores(logits, [0, 0]) == pytest.approx([math.sqrt(0.5), math.sqrt(1 / 8)])
    # three equal logits, label 2: (1/3, 1/3, -2/3) -> sqrt(6) / 3
    assert scores.el2n_scores(np.zeros((1, 3)), [2]) == pytest.approx([math.sqrt(6) / 3])


# two epochs of logits for two examples (labels 0 and 2)
EPOCH_LOGITS = np.array(
    [
        [[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]],  # margins 2 - 1 = 1 and 1 - 3 = -2
        [[0.5, 1.5, 0.0], [0.0, 0.0, 4.0]],  # margins 0.5 - 1.5 = -1 and 4 - 0 = 4
    ]
)
LABELS_2 = np.array([0, 2])


def test_margins_and_aum_on_tiny_logits():
    assert scores.margins(EPOCH_LOGITS[0], LABELS_2).tolist() == [1.0, -2.0]
    assert scores.margins(EPOCH_LOGITS[1], LABELS_2).tolist() == [-1.0, 4.0]
    sums = sum(scores.margins(epoch, LABELS_2) for epoch in EPOCH_LOGITS)
    assert scores.aum_scores(sums, [2, 2]).tolist() == [0.0, 1.0]  # (1 - 1) / 2, (-2 + 4) / 2
    assert scores.hardness("aum", [0.0, 1.0]).tolist() == [-0.0, -1.0]


def test_the_device_recorder_matches_the_numpy_definitions():
    dynamics = Dynamics(4, torch.device("cpu"))
    labels = torch.zeros(4, dtype=torch.long)
    for row in TRACE:  # each presentation in its own order: the recorder indexes by example
        order = torch.tensor([3, 1, 0, 2])
        correct = torch.from_numpy(row)[order]
        logits = torch.stack([correct.float(), 1 - correct.float()], dim=1) * 2.0
        dynamics.record(order, logits, labels[order])
    table = dynamics.table()
    assert table["forgetting"].tolist() == TRACE_FORGETTING
    assert table["presentations"].tolist() == [4, 4, 4, 4]
    # margin +2 when correct, -2 when not: AUM = 2 (2 * correct - 1) averaged over the trace
    assert table["aum"].tolist() == [0.0, -2.0, 0.0, 1.0]
    dynamics = Dynamics(2, torch.device("cpu"))
    for epoch in EPOCH_LOGITS:
        dynamics.record(torch.tensor([0, 1]), torch.from_numpy(epoch), torch.from_numpy(LABELS_2))
    assert dynamics.table()["aum"].tolist() == [0.0, 1.0]


def test_hardest_keeps_the_largest_values_ties_to_the_lower_position():
    assert scores.hardest(np.array([3.0, 1.0, 3.0, 2.0, 3.0]), 2).tolist() == [0, 2]


def test_ccs_strata_and_cut_off_on_a_toy_score_vector():
    values = np.arange(20.0)  # hardness 0 .. 19
    # beta 0.2 cuts floor(4) hardest (16 .. 19); 3 strata of width 5 over [0, 15]
    kept = np.arange(16.0)
    assert scores.ccs_strata(kept, 3).tolist() == [0] * 5 + [1] * 5 + [2] * 6
    chosen = scores.ccs_select(values, 6, 0.2, 3, np.random.default_rng(0))
    assert chosen.size == 6 and chosen.max() < 16
    # budget 6 over strata of 5, 5, 6 examples: floor(6/3) = 2, floor(4/2) = 2, then 2
    assert np.bincount(np.minimum(chosen // 5, 2), minlength=3).tolist() == [2, 2, 2]


def test_ccs_covers_a_sparse_stratum_first():
    # eight easy examples and three spread-out hard ones; 2 strata over [0, 10]: [0, 5), [5, 10]
    values = np.array([0.0] * 8 + [5.0, 9.0, 10.0])
    assert scores.ccs_strata(values, 2).tolist() == [0] * 8 + [1] * 3
    chosen = scores.ccs_select(values, 6, 0.0, 2, np.random.default_rng(1))
    # the smaller stratum first: min(3, floor(6/2)) = 3, then the rest from the other: 3
    assert {8, 9, 10} <= set(chosen.tolist()) and chosen.size == 6


def test_ccs_cut_off_leaves_enough_examples():
    chosen = scores.ccs_select(np.arange(5.0), 5, 0.5, 2, np.random.default_rng(0))
    assert chosen.tolist() == [0, 1, 2, 3, 4]  # the cut shrinks to N - n = 0


@pytest.mark.parametrize("seed", range(20))
def test_ccs_always_fills_its_budget(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    values = np.round(rng.standard_exponential(n) * 3)  # many ties, a long tail
    k = int(rng.integers(1, n + 1))
    chosen = scores.ccs_select(values, k, float(rng.random() * 0.9), int(rng.integers(1, 60)), rng)
    assert chosen.size == k and np.unique(chosen).size == k


LINE = np.array([[0.0], [1.0], [2.0], [6.0], [10.0]])


def test_kcenter_greedy_on_a_hand_computed_line():
    # mean 3.8: the nearest point, 2, starts; then 10 (8 away), then 6 (4 away from {2, 10})
    positions, gaps = geometric.kcenter_greedy(LINE, 3)
    assert positions.tolist() == [2, 4, 3]
    assert gaps.tolist() == [math.inf, 8.0, 4.0]
    assert geometric.covering_radius(LINE, positions) == 2.0  # 0 lies 2 from centre 2
    assert geometric.covering_radius(LINE, positions[:2]) == 4.0  # 6 lies 4 from 2 and 10


def test_kcenter_radius_never_exceeds_random_selections():
    rng = np.random.default_rng(7)
    points = rng.normal(size=(300, 2)) * np.array([3.0, 1.0])
    positions, _ = geometric.kcenter_greedy(points, 20)
    greedy = geometric.covering_radius(points, positions)
    randoms = [
        geometric.covering_radius(points, rng.choice(300, 20, replace=False)) for _ in range(200)
    ]
    assert greedy <= min(randoms)


def test_moderate_picks_the_distances_nearest_the_median():
    # median 3: |d - 3| = 2, 1, 0, 1, 97 -> positions 1, 2, 3
    assert geometric.moderate_select(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), 3).tolist() == [1, 2, 3]
    # the class prototype is the coordinate-wise median, 1.5
    distances = geometric.centre_distances(np.array([[0.0], [1.0], [2.0], [10.0]]))
    assert distances.tolist() == [1.5, 0.5, 0.5, 8.5]


# --------------------------------------------------------------------------- every method
LABELS = np.repeat(np.arange(10), [120, 110, 100, 100, 100, 100, 100, 90, 90, 90])  # N = 1000


def synthetic_selection(seed: int = 0) -> Selection:
    rng = np.random.default_rng(seed)
    n = LABELS.size
    values = {
        "forgetting": rng.integers(0, 6, n).astype(float),
        "el2n": rng.random(n) * np.sqrt(2),
        "aum": rng.normal(size=n),
        "presentations": np.full(n, 5.0),
        "label": LABELS,
    }
    embeddings = rng.normal(size=(n, 6)) + LABELS[:, None]
    return Selection(values, embeddings)


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("fraction", "size"), [(0.8, 800), (0.1, 100), (0.0123, 12)])
def test_every_method_returns_the_rounded_size(method, fraction, size, balanced):
    options = MethodOptions(balanced, "aum", 0.1, 50)
    indices, _, values = select_with_values(
        LABELS, fraction, method, 42, synthetic_selection(), options
    )
    assert indices.size == size and np.unique(indices).size == size
    assert np.all(np.diff(indices) > 0) and indices.dtype == np.int64
    if method != "random":
        assert values.shape == (size,)
    if balanced or method in ("random", "kcenter"):  # class-stratified: random's counts
        expected = stratified_allocation(np.bincount(LABELS), size)
        assert np.bincount(LABELS[indices], minlength=10).tolist() == expected.tolist()


def test_score_methods_keep_the_hardest_of_each_class():
    selection = synthetic_selection()
    options = MethodOptions(True, None, None, None)
    for method in ("forgetting", "el2n", "aum"):
        indices, name, values = select_with_values(LABELS, 0.1, method, 0, selection, options)
        hard = scores.hardness(method, selection.scores[method])
        assert name == method and values.tolist() == selection.scores[method][indices].tolist()
        for cls in range(10):
            members = np.flatnonzero(LABELS == cls)
            kept = np.intersect1d(members, indices)
            dropped = np.setdiff1d(members, indices)
            assert hard[kept].min() >= hard[dropped].max()


def test_unbalanced_score_selection_is_global():
    selection = synthetic_selection()
    options = MethodOptions(False, None, None, None)
    indices, _, _ = select_with_values(LABELS, 0.1, "el2n", 0, selection, options)
    assert indices.tolist() == np.sort(np.argsort(-selection.scores["el2n"])[:100]).tolist()


def test_selection_csv_carries_the_method_values(tmp_path):
    options = MethodOptions(True, None, None, None)
    indices, name, values = select_with_values(
        LABELS, 0.05, "moderate", 0, synthetic_selection(), options
    )
    path = tmp_path / "coreset_moderate-0.05.csv"
    write_coreset(path, indices, LABELS, name, values)
    lines = path.read_text().splitlines()
    assert lines[0] == "index,label,centre_distance" and len(lines) == 51
    first = lines[1].split(",")
    assert int(first[0]) == indices[0] and float(first[2]) == pytest.approx(values[0])
    assert np.array_equal(read_coreset(path), indices)


def test_selection_files_round_trip(tmp_path):
    table = {
        "index": np.arange(3),
        "label": np.array([2, 0, 1]),
        "forgetting": np.array([0, 3, 1]),
        "el2n": np.array([0.25, 1.0, 0.5]),
        "aum": np.array([1.5, -0.5, 0.0]),
        "presentations": np.array([3, 3, 3]),
    }
    embeddings = np.arange(6, dtype=np.float32).reshape(3, 2)
    scores.write_selection(tmp_path / "s.csv", tmp_path / "e.npy", table, embeddings)
    selection = scores.read_selection(tmp_path / "s.csv", tmp_path / "e.npy")
    assert selection.scores["label"].tolist() == [2, 0, 1]
    assert selection.scores["el2n"].tolist() == [0.25, 1.0, 0.5]
    assert selection.embeddings.tolist() == embeddings.tolist()
    (tmp_path / "s.csv").write_text("index,label\n0,1\n")
    with pytest.raises(CompRepsError, match="rerun rule 'coreset_scores'"):
        scores.read_selection(tmp_path / "s.csv", tmp_path / "e.npy")


def test_balance_table_on_hand_counted_selections(tmp_path):
    from compreps.model.data.balance import BALANCE_COLUMNS, balance_table, selection_labels

    path = tmp_path / "coreset_el2n-0.5.csv"
    path.write_text("index,label,el2n\n0,1,0.5\n4,1,0.25\n7,1,0.125\n")
    selections = {"coreset-0.5": np.array([0, 0, 1]), "coreset_el2n-0.5": selection_labels(path)}
    table = balance_table(selections, ["cat", "dog"], [30, 10])
    assert tuple(table.columns) == BALANCE_COLUMNS
    rows = table[["model", "method", "level", "class", "count"]].values.tolist()
    assert rows == [
        ["coreset-0.5", "random", 0.5, "cat", 2],
        ["coreset-0.5", "random", 0.5, "dog", 1],
        ["coreset_el2n-0.5", "el2n", 0.5, "cat", 0],
        ["coreset_el2n-0.5", "el2n", 0.5, "dog", 3],
    ]
    assert table["share"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0, 1.0])
    assert table["train_share"].tolist() == [0.75, 0.25, 0.75, 0.25]
