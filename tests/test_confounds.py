"""Granulated Kendall, partial correlation controlling for family, leave-one-out and the
influence note, against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from compreps.analysis.statistics.confounds import (
    granulated_kendall,
    influence_note,
    leave_one_out,
    partial_correlation,
)
from compreps.analysis.statistics.correlate import correlation_table
from compreps.core.settings import CorrelationSettings


def test_granulated_kendall_by_hand():
    # family a: concordant, τ = 1; family b: y = (3, 1, 2): pairs −, −, + -> τ = −1/3;
    # family c has 2 models (< 3): left out. Mean (1 − 1/3) / 2 = 1/3.
    x = [1, 2, 3, 1, 2, 3, 1, 2]
    y = [1, 2, 3, 3, 1, 2, 5, 4]
    families = ["a"] * 3 + ["b"] * 3 + ["c"] * 2
    tau, used = granulated_kendall(x, y, families)
    assert tau == pytest.approx(1 / 3) and used == 2


def test_partial_spearman_by_hand():
    # pooled ranks x 1..6, y (4, 5, 6, 1, 3, 2); minus family means: x (−1, 0, 1, −1, 0, 1),
    # y (−1, 0, 1, −1, 1, 0): Σxy = 3, Σx² = Σy² = 4 -> r = 0.75, 3 degrees of freedom
    x = [1, 2, 3, 4, 5, 6]
    y = [10, 20, 30, 1, 3, 2]
    r, p = partial_correlation(x, y, ["a"] * 3 + ["b"] * 3, "srcc")
    assert r == pytest.approx(0.75)
    t = 0.75 * math.sqrt(3 / (1 - 0.75**2))
    assert p == pytest.approx(2 * stats.t.sf(t, 3))
    # pooled: Σd² = 9 + 9 + 9 + 9 + 4 + 16 = 56 -> ρ = 1 − 6·56 / (6·35) = −0.6
    assert stats.spearmanr(x, y).statistic == pytest.approx(-0.6)


def test_partial_correlation_removes_a_between_family_effect():
    # within each family accuracy falls as x rises; between families the opposite
    x = np.array([1, 2, 3, 11, 12, 13], float)
    y = np.array([3, 2, 1, 13, 12, 11], float)
    families = ["a"] * 3 + ["b"] * 3
    assert stats.pearsonr(x, y).statistic > 0.9
    assert partial_correlation(x, y, families, "plcc")[0] == pytest.approx(-1.0)
    assert granulated_kendall(x, y, families)[0] == pytest.approx(-1.0)
    lofo = leave_one_out(x, y, families, "plcc")
    assert lofo == {"a": pytest.approx(-1.0), "b": pytest.approx(-1.0)}


def _outlier_table():
    """Nine models whose metric falls as accuracy rises (r ≈ −0.99), and quant-1 whose metric
    is 1e6 at a middling accuracy: it alone decides Pearson."""
    models = [f"prune-0.{i}" for i in range(1, 10)] + ["quant-1"]
    value = [0.1 * i for i in range(1, 10)] + [1e6]
    accuracy = [0.9 - 0.08 * i for i in range(1, 10)] + [0.3]
    return models, np.array(value), np.array(accuracy)


def test_influence_names_the_model_that_decides_pearson():
    models, x, y = _outlier_table()
    estimate = stats.pearsonr(x, y).statistic
    without = leave_one_out(x, y, models, "plcc")
    assert without["quant-1"] == pytest.approx(-1.0)
    note = influence_note(estimate, without, "plcc")
    assert note.startswith(f"PLCC {estimate:+.3f} -> -1.000 without quant-1")
    # a coefficient no single model moves by more than 0.1 has no note
    line = np.arange(10.0)
    assert influence_note(1.0, leave_one_out(line, line, models, "plcc"), "plcc") == ""


def test_correlation_table_carries_the_influence_and_confound_columns():
    models, x, y = _outlier_table()
    families = [m.split("-")[0] for m in models]
    metrics = pd.DataFrame(
        {"model": models, "family": families, "level": 0.5, "layer": "model",
         "metric": "logits_l2", "value": x, "degenerate": False}
    )  # fmt: skip
    accuracy = pd.DataFrame(
        {"model": ["base", *models], "family": ["base", *families],
         "level": [np.nan] + [0.5] * 10, "accuracy": [0.95, *y]}
    )  # fmt: skip
    table = correlation_table(metrics, accuracy, CorrelationSettings(50, 0.95, 0))
    row = table[table["scope"] == "all"].iloc[0]
    assert "without quant-1" in row["influence"] and row["target"] == "accuracy (= -drop)"
    assert row["plcc_lomo_low"] == pytest.approx(-1.0)
    # one quant model: the partial correlation is the prune family's alone
    assert row["plcc_partial"] == pytest.approx(-1.0)
