"""Table 2's figures: each metric against the accuracy drop (small multiples with a fitted line
and r) and the forest plot of this run's coefficients beside the paper's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compreps.analysis.figures import correlations as fc
from compreps.analysis.figures.style import plt
from compreps.core.vocabulary import CORRELATION_COLUMNS

MODELS = [("coreset-0.5", "coreset", 0.5), ("prune-0.5", "prune", 0.5), ("quant-4", "quant", 4)]
DROPS = {"coreset-0.5": 0.10, "prune-0.5": 0.20, "quant-4": 0.40}


def tables():
    # gtfa = 1 − drop: a least-squares slope of −1 against the drop
    metrics = pd.DataFrame(
        [(m, f, lv, "model", "gtfa", 1 - DROPS[m], False) for m, f, lv in MODELS]
        + [(m, f, lv, "model", "s_e", 0.5, False) for m, f, lv in MODELS],
        columns=["model", "family", "level", "layer", "metric", "value", "degenerate"],
    )
    accuracy = pd.DataFrame(
        [("base", "base", np.nan, 0.9)] + [(m, f, lv, 0.9 - DROPS[m]) for m, f, lv in MODELS],
        columns=["model", "family", "level", "accuracy"],
    )
    rows = []
    for metric, r in (("gtfa", 0.8), ("s_e", np.nan), ("cka_linear", 0.5)):
        row = dict.fromkeys(CORRELATION_COLUMNS, np.nan)
        row.update(metric=metric, scope="all", n=3, plcc=r, plcc_low=0.2, plcc_high=0.9)
        row.update(plcc_partial=0.7)
        rows.append(row)
    return metrics, accuracy, pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def test_metric_vs_drop_panels_line_and_flipped_r():
    metrics, accuracy, corr = tables()
    fig = fc.plot_metric_vs_accuracy(metrics, accuracy, corr)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    # Table 2 metrics of the run in the paper's order; cka_linear is not a Table 2 metric
    assert [ax.get_title().split("\n")[0] for ax in visible] == ["gtfa", "s_e"]
    gtfa = visible[0]
    # against the drop the sign of Table 2's PLCC (with accuracy) flips, interval too
    assert gtfa.get_title().split("\n")[1] == "r = -0.80 [-0.90, -0.20], n = 3"
    (line,) = gtfa.lines
    x, y = line.get_xdata(), line.get_ydata()
    assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(-1.0)
    colours = [tuple(c.get_facecolor()[0][:3]) for c in gtfa.collections]
    assert len(colours) == 3 and len(set(colours)) == 3  # one colour per family
    assert visible[1].get_title() == "s_e"  # undefined coefficient: no r
    plt.close(fig)


def test_forest_plot_rows_and_paper_values():
    _, _, corr = tables()
    fig = fc.plot_correlation_forest(corr)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gtfa"]
    paper = [c for c in ax.collections if c.get_label() == "paper (Table 2)"][0]
    assert paper.get_offsets()[0][0] == pytest.approx(0.8059)  # 000, Table 2, row 'GTFA'
    partial = [c for c in ax.collections if "partial" in c.get_label()][0]
    assert partial.get_offsets()[0][0] == pytest.approx(0.7)
    plt.close(fig)
