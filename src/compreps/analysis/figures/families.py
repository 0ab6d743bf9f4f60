"""The figures that compare the compression families: test accuracy against the
fraction of the base's parameters kept, one line per family, and study 004's three spaces
(hidden, logit, probability; :mod:`compreps.analysis.metrics.hierarchy`) — their deviation from the
base against
each family's level, one panel per family. A family or metric absent from the run's tables is
named in a note on the figure, never an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from compreps.analysis.figures.dumps import model_weights
from compreps.analysis.figures.style import (
    FAMILY_COLORS,
    FAMILY_MARKERS,
    LEVEL_AXES,
    drawn_families,
    empty_panel,
    model_rows,
    note_missing,
    panel_grid,
    plt,
    say,
)
from compreps.core.vocabulary import BASE, LEVEL_DESCENDING

DODGE = 0.02  # horizontal spacing of the dense families around x = 1
PARAM_FRACTION = "param_fraction"  # accuracy.csv: parameters kept, as a fraction of the base's
# The family whose parameter count keeps the dense shape but whose weights are zeroed: drawn
# again at its measured fraction of non-zero Conv2d/Linear weights (from the dumps).
SPARSE_FAMILY = "prune"
# (metric name, or prefix of the per-temperature names; legend label; colour; marker)
HIERARCHY_SPACES = (
    ("hidden_deviation", "hidden: 1 − cos(h₀, h)", "tab:cyan", "o"),
    ("logit_deviation", "logit: 1 − cos(z₀, z)", "tab:red", "s"),
    ("probability_deviation", "probability: 1 − cos(p₀, p)", "tab:olive", "^"),
)
PREFERRED_TEMPERATURE = "t1"  # the softmax at τ = 1 when the run has it


def _dense(values: pd.Series) -> bool:
    return bool(np.allclose(values.to_numpy(float), 1.0, rtol=0.0, atol=1e-9))


def nonzero_fractions(dumps: dict[str, Path], models: list[str]) -> dict[str, float]:
    """``{model id: its non-zero Conv2d/Linear weights / the base's}`` for ``models`` with a dump
    (empty without the base's dump): what unstructured pruning keeps, measured."""
    if BASE not in dumps:
        say(f"accuracy_vs_params: no dump of {BASE}, no non-zero fraction for {SPARSE_FAMILY}")
        return {}
    base = np.count_nonzero(model_weights(dumps[BASE]))
    if base == 0:
        return {}
    return {m: np.count_nonzero(model_weights(dumps[m])) / base for m in models if m in dumps}


def plot_accuracy_vs_params(accuracy: pd.DataFrame, dumps: dict[str, Path]):
    """Test accuracy against ``param_fraction`` (accuracy.csv), one line per compressed family,
    the base as a star. A family whose every model keeps the dense shape (fraction 1: coreset,
    quant, prune) is drawn as points at x = 1; pruning also as a dashed line at its measured
    non-zero weight fraction (:func:`nonzero_fractions`). ``dumps``: ``{model id: path}``."""
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    missing = []
    if PARAM_FRACTION not in accuracy.columns:
        empty_panel(
            ax, f"the accuracy table has no {PARAM_FRACTION} column\n(rerun accuracy_table)"
        )
        say(f"accuracy_vs_params: no {PARAM_FRACTION} column in the accuracy table")
        fig.tight_layout()
        return fig
    base = accuracy[accuracy["family"] == BASE]
    if len(base):
        x, y = float(base[PARAM_FRACTION].iloc[0]), float(base["accuracy"].iloc[0])
        ax.axhline(y, ls="--", lw=0.8, color="black")
        ax.plot([x], [y], "*", ms=14, color="black", label="ORG (base)", zorder=3)
    else:
        missing.append(BASE)
    drawn, absent = drawn_families(accuracy["family"])
    missing += absent
    dense = [f for f in drawn if _dense(accuracy.loc[accuracy["family"] == f, PARAM_FRACTION])]
    for family in drawn:
        rows = accuracy[accuracy["family"] == family].sort_values(PARAM_FRACTION)
        style = dict(color=FAMILY_COLORS.get(family, "gray"), marker=FAMILY_MARKERS[family])
        if family in dense:
            # side by side around x = 1, so the dense families do not hide one another
            x = rows[PARAM_FRACTION] + DODGE * (dense.index(family) - (len(dense) - 1) / 2)
            label = f"{family} (dense shape: all at 1)"
            ax.plot(x, rows["accuracy"], ls="none", alpha=0.8, label=label, **style)
        else:
            ax.plot(rows[PARAM_FRACTION], rows["accuracy"], label=family, **style)
        if family == SPARSE_FAMILY:
            kept = nonzero_fractions(dumps, list(rows["model"]))
            sparse = rows[rows["model"].isin(kept)]
            if len(sparse):
                x = sparse["model"].map(kept).to_numpy(float)
                order = np.argsort(x)
                y = sparse["accuracy"].to_numpy(float)[order]
                label = f"{family}: non-zero Conv/Linear weights"
                ax.plot(x[order], y, ls="--", mfc="none", label=label, **style)
    ax.set_xlim(0.0, 1.0 + DODGE * max(len(dense), 2))
    ax.set_xlabel("parameters kept (fraction of the base's)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy against parameters kept")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if missing:
        say(f"accuracy_vs_params: not in this run, skipped: {', '.join(missing)}")
    note_missing(fig, missing)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def space_metric_names(present: set[str]) -> dict[str, str | None]:
    """``{prefix of HIERARCHY_SPACES: metric name in the table, or None}``; the probability
    space at τ = 1 when present, else at the first temperature (in name order)."""
    names = {}
    for prefix, *_ in HIERARCHY_SPACES:
        if prefix in present:
            names[prefix] = prefix
            continue
        tempered = sorted(m for m in present if m.startswith(f"{prefix}_t"))
        preferred = f"{prefix}_{PREFERRED_TEMPERATURE}"
        names[prefix] = preferred if preferred in tempered else (tempered or [None])[0]
    return names


def _deviation_panel(ax, rows: pd.DataFrame, names: dict[str, str | None], family: str) -> None:
    not_drawn = 0
    for prefix, label, color, marker in HIERARCHY_SPACES:
        name = names[prefix]
        sel = rows[rows["metric"] == name].sort_values("level") if name else rows.iloc[:0]
        values = pd.to_numeric(sel["value"], errors="coerce").to_numpy(float)
        levels = sel["level"].to_numpy(float)
        shown = np.isfinite(values) & (values > 0)
        not_drawn += int(np.sum(np.isfinite(values) & ~shown))
        if not shown.any():
            continue
        if name != prefix:
            label = f"{label}, τ = {name.rsplit('_t', 1)[1]}"
        ax.plot(levels[shown], values[shown], marker=marker, ms=4, color=color, label=label)
        flagged = shown & sel["degenerate"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
        if flagged.any():
            ax.plot(levels[flagged], values[flagged], "x", ms=8, color="black")
    if ax.lines:
        ax.set_yscale("log")
    else:
        empty_panel(ax, f"no positive deviation of {family} to draw")
    if not_drawn:
        note = f"{not_drawn} value(s) ≤ 0 not drawn (log axis)"
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=7, color="dimgray")
    if family == "coreset":
        ax.set_xscale("log")
        levels = sorted(set(rows["level"].astype(float)))
        ax.set_xticks(levels, [f"{level:g}" for level in levels])
        ax.minorticks_off()
    if LEVEL_DESCENDING.get(family):
        ax.invert_xaxis()  # compression grows to the right in every panel


def plot_hierarchy_deviation(metrics: pd.DataFrame):
    """Study 004's hidden, logit and probability deviation (``1 − cos`` to the base, on the
    probe set) against the level, one panel per compressed family, log y; crosses mark
    degenerate values. Missing families and metrics are named in a note."""
    rows = model_rows(metrics)
    rows = rows[rows["family"] != BASE]
    names = space_metric_names(set(rows["metric"]))
    missing = [f"metric {prefix}*" for prefix, name in names.items() if name is None]
    drawn, absent = drawn_families(rows["family"])
    panels = drawn + absent  # the study's families get a panel that says they are absent
    # a grid cell no family fills is hidden
    fig, axes = panel_grid(len(panels), min(3, max(len(panels), 1)), 4.4, 3.4)
    for ax, family in zip(axes.ravel(), panels, strict=False):
        ax.set_title(family)
        ax.set_xlabel(LEVEL_AXES.get(family, "level"))
        family_rows = rows[rows["family"] == family]
        if family_rows.empty:
            missing.append(family)
            empty_panel(ax, f"no {family} models in this run")
            continue
        _deviation_panel(ax, family_rows, names, family)
    for ax in axes[:, 0]:
        ax.set_ylabel("deviation from ORG (1 − cos)")
    for ax in axes.ravel():
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)  # long level lists collide
    handles = {}
    for ax in axes.ravel():
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    if handles:
        fig.legend(
            handles.values(), handles.keys(), loc="upper center", ncol=len(handles), frameon=False
        )
    if missing:
        say(f"hierarchy_deviation: not in this run, skipped: {', '.join(missing)}")
    note_missing(fig, missing)
    fig.tight_layout(rect=(0, 0.04, 1, 0.94))
    return fig
