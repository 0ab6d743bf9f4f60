"""The family figures: accuracy against parameters kept and the hierarchy deviation panels,
from hand-made tables and dumps (drawn data read back from the matplotlib artists)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import fake_dump

from compreps.analysis.figures import families as ff
from compreps.analysis.figures.style import plt, save_figure
from compreps.core.dump import write_dump
from compreps.core.vocabulary import ACCURACY_TABLE_COLUMNS, METRIC_COLUMNS

# (model, family, level, accuracy, param_fraction): every registered family
ACCURACY_ROWS = [
    ("base", "base", math.nan, 0.90, 1.0),
    ("coreset-0.5", "coreset", 0.5, 0.80, 1.0),
    ("prune-0.5", "prune", 0.5, 0.88, 1.0),
    ("prune-0.9", "prune", 0.9, 0.60, 1.0),
    ("quant-4", "quant", 4, 0.85, 1.0),
    ("struct_l1-0.5", "struct_l1", 0.5, 0.40, 0.25),
    ("struct_l1-0.1", "struct_l1", 0.1, 0.85, 0.81),
    ("nexp-0.3", "nexp", 0.3, 0.70, 0.49),
    ("fold-0.3", "fold", 0.3, 0.75, 0.49),
]


def accuracy_table(families=None):
    rows = [r for r in ACCURACY_ROWS if families is None or r[1] in families]
    columns = list(ACCURACY_TABLE_COLUMNS[:6])  # the figure needs no counts or intervals
    return pd.DataFrame([(*r, 1000) for r in rows], columns=columns)


def line(ax, label):
    (found,) = [artist for artist in ax.lines if artist.get_label() == label]
    return found.get_xdata().astype(float), found.get_ydata().astype(float)


def note_text(fig):
    return " ".join(text.get_text() for text in fig.texts)


@pytest.fixture
def pruned_dumps(tmp_path):
    """Dumps of base (no zero weight), prune-0.5 (half the weights zeroed) and prune-0.9
    (every weight but one in ten zeroed): non-zero fractions 0.5 and 0.1 by construction."""
    paths = {}
    for model, keep_every in (("base", 1), ("prune-0.5", 2), ("prune-0.9", 10)):
        dump = fake_dump(model, seed=3)
        for name, weights in dump.weights.items():
            weights = weights + np.where(weights >= 0, 1.0, -1.0)  # no zero by chance
            mask = np.arange(weights.size) % keep_every == 0
            dump.weights[name] = np.where(mask, weights, 0.0).astype(np.float32)
        paths[model] = tmp_path / f"{model}.h5"
        write_dump(paths[model], dump)
    return paths


def test_nonzero_fractions_are_measured_from_the_dumps(pruned_dumps):
    sizes = [w.size for w in fake_dump("base").weights.values()]
    # ceil per module: index 0 of every module is kept
    expected = {
        m: sum(math.ceil(s / k) for s in sizes) / sum(sizes)
        for m, k in (("prune-0.5", 2), ("prune-0.9", 10))
    }
    got = ff.nonzero_fractions(pruned_dumps, ["prune-0.5", "prune-0.9", "prune-0.7"])
    assert got == pytest.approx(expected)  # prune-0.7 has no dump: left out
    assert got["prune-0.5"] == pytest.approx(0.5, abs=0.01)
    assert got["prune-0.9"] == pytest.approx(0.1, abs=0.01)
    assert ff.nonzero_fractions({"prune-0.5": pruned_dumps["prune-0.5"]}, ["prune-0.5"]) == {}


def test_accuracy_vs_params_draws_each_family(pruned_dumps):
    fig = ff.plot_accuracy_vs_params(accuracy_table(), pruned_dumps)
    (ax,) = fig.axes
    x, y = line(ax, "struct_l1")  # sorted by parameters kept
    np.testing.assert_allclose(x, [0.25, 0.81])
    np.testing.assert_allclose(y, [0.40, 0.85])
    np.testing.assert_allclose(line(ax, "nexp"), [[0.49], [0.70]])
    np.testing.assert_allclose(line(ax, "fold"), [[0.49], [0.75]])
    # dense families: points at 1, no connecting line
    # dense families side by side around x = 1 (coreset, prune, quant: −0.02, 0, +0.02)
    x, y = line(ax, "prune (dense shape: all at 1)")
    np.testing.assert_allclose(x, [1.0, 1.0])
    assert sorted(y) == [0.60, 0.88]
    x, y = line(ax, "coreset (dense shape: all at 1)")
    assert x.tolist() == pytest.approx([0.98]) and y.tolist() == [0.80]
    assert line(ax, "quant (dense shape: all at 1)")[0].tolist() == pytest.approx([1.02])
    assert [a for a in ax.lines if "dense" in a.get_label()][0].get_linestyle() == "None"
    np.testing.assert_allclose(line(ax, "ORG (base)"), [[1.0], [0.90]])
    # pruning again at its non-zero weight fraction, ascending
    x, y = line(ax, "prune: non-zero Conv/Linear weights")
    np.testing.assert_allclose(x, [0.1, 0.5], atol=0.01)
    np.testing.assert_allclose(y, [0.60, 0.88])
    assert "not in this run" not in note_text(fig)
    plt.close(fig)


def test_accuracy_vs_params_notes_missing_families_and_column(tmp_path, capsys):
    fig = ff.plot_accuracy_vs_params(accuracy_table({"base", "prune", "struct_l1"}), {})
    # only the study's three families are missing when absent; nexp and fold were not chosen
    assert note_text(fig) == "not in this run: coreset, quant"
    labels = [a.get_label() for a in fig.axes[0].lines]
    assert "prune: non-zero Conv/Linear weights" not in labels  # no dumps: not drawn
    assert "no dump of base" in capsys.readouterr().err
    written = save_figure(fig, tmp_path, "accuracy_vs_params")
    assert [p.name for p in written] == ["accuracy_vs_params.png", "accuracy_vs_params.pdf"]
    assert written[0].read_bytes().startswith(b"\x89PNG")

    old = accuracy_table().drop(columns=["param_fraction", "macs"])
    fig = ff.plot_accuracy_vs_params(old, {})
    (ax,) = fig.axes
    assert not ax.lines
    assert "no param_fraction column" in ax.texts[0].get_text()
    plt.close(fig)


def hierarchy_metrics(models, metrics, value=lambda family, level, i: 10.0 ** -(3 - i)):
    rows = []
    for model, family, level in models:
        for i, metric in enumerate(metrics):
            rows.append((model, family, level, "model", metric, value(family, level, i), False))
        rows.append((model, family, level, "fc", metrics[0], 99.0, False))  # per layer: ignored
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


SPACES = ["hidden_deviation", "logit_deviation", "probability_deviation_t1"]
MODELS = [
    ("base", "base", math.nan),
    ("quant-8", "quant", 8.0),
    ("quant-4", "quant", 4.0),
    ("struct_l1-0.3", "struct_l1", 0.3),
    ("struct_l1-0.1", "struct_l1", 0.1),
    ("fold-0.2", "fold", 0.2),
]


def test_space_metric_names_prefer_tau_one():
    present = {"hidden_deviation", "probability_deviation_t0.5", "probability_deviation_t1"}
    assert ff.space_metric_names(present) == {
        "hidden_deviation": "hidden_deviation",
        "logit_deviation": None,
        "probability_deviation": "probability_deviation_t1",
    }
    only = ff.space_metric_names({"probability_deviation_t2", "probability_deviation_t0.5"})
    assert only["probability_deviation"] == "probability_deviation_t0.5"


def test_hierarchy_deviation_panels(tmp_path):
    # value = level * 10^(i-3) for space i: hand-known per panel, sorted by level
    metrics = hierarchy_metrics(
        MODELS, [*SPACES, "probability_deviation_t0.5"], lambda f, lev, i: lev * 10.0 ** (i - 3)
    )
    fig = ff.plot_hierarchy_deviation(metrics)
    panels = {ax.get_title(): ax for ax in fig.axes}
    struct = panels["struct_l1"]
    x, y = line(struct, "hidden: 1 − cos(h₀, h)")
    np.testing.assert_allclose(x, [0.1, 0.3])
    np.testing.assert_allclose(y, [1e-4, 3e-4])
    np.testing.assert_allclose(line(struct, "logit: 1 − cos(z₀, z)")[1], [1e-3, 3e-3])
    np.testing.assert_allclose(line(struct, "probability: 1 − cos(p₀, p), τ = 1")[1], [1e-2, 3e-2])
    assert struct.get_yscale() == "log"
    assert struct.get_xlabel() == "fraction of channels removed (L1)"
    quant = panels["quant"]
    np.testing.assert_allclose(line(quant, "hidden: 1 − cos(h₀, h)")[0], [4.0, 8.0])
    assert quant.xaxis_inverted() and not struct.xaxis_inverted()  # fewer bits to the right
    # the study's families get a panel saying they are absent; a family the run did not
    # choose (nexp) gets none
    for family in ("coreset", "prune"):
        assert not panels[family].lines
        assert panels[family].texts[0].get_text() == f"no {family} models in this run"
    assert "nexp" not in panels
    assert "not in this run: coreset, prune" in note_text(fig)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "hidden: 1 − cos(h₀, h)",
        "logit: 1 − cos(z₀, z)",
        "probability: 1 − cos(p₀, p), τ = 1",
    ]
    written = save_figure(fig, tmp_path, "hierarchy_deviation")
    assert all(p.stat().st_size > 1000 for p in written)


def test_hierarchy_deviation_missing_metrics_zero_and_degenerate():
    models = [m for m in MODELS if m[1] in ("base", "quant")]
    metrics = hierarchy_metrics(
        models, ["hidden_deviation", "probability_deviation_t0.5"], lambda f, lev, i: lev - 4.0
    )
    metrics.loc[(metrics["model"] == "quant-8") & (metrics["layer"] == "model"), "degenerate"] = (
        True
    )
    fig = ff.plot_hierarchy_deviation(metrics)
    quant = {ax.get_title(): ax for ax in fig.axes}["quant"]
    # quant-4 has value 0: not drawn on the log axis, and said so
    x, y = line(quant, "hidden: 1 − cos(h₀, h)")
    assert x.tolist() == [8.0] and y.tolist() == [4.0]
    x, _ = line(quant, "probability: 1 − cos(p₀, p), τ = 0.5")
    assert x.tolist() == [8.0]
    crosses = [a for a in quant.lines if a.get_marker() == "x"]
    assert [c.get_xdata().tolist() for c in crosses] == [[8.0], [8.0]]  # quant-8 is degenerate
    assert "2 value(s) ≤ 0 not drawn (log axis)" in [t.get_text() for t in quant.texts]
    assert note_text(fig).startswith("not in this run: metric logit_deviation*, coreset")
    plt.close(fig)


def test_hierarchy_deviation_without_any_hierarchy_metric():
    metrics = hierarchy_metrics(MODELS, ["reps_weighted"])
    fig = ff.plot_hierarchy_deviation(metrics)
    assert not any(ax.lines for ax in fig.axes)
    assert not fig.legends
    assert note_text(fig).startswith(
        "not in this run: metric hidden_deviation*, metric logit_deviation*, "
        "metric probability_deviation*, coreset"
    )
    plt.close(fig)
