"""The figures of Table 2: every Table 2 metric against the accuracy drop (small multiples, one
colour and marker per family from the registry, a least-squares line and Table 2's PLCC with
its interval), and a forest plot of this run's coefficients beside the paper's."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from compreps.analysis.figures.style import (
    FAMILY_COLORS,
    FAMILY_MARKERS,
    empty_panel,
    model_rows,
    panel_grid,
    plt,
)
from compreps.analysis.paper import paper_value, paper_values
from compreps.core.vocabulary import comparable_scope, scope_families

NCOLS = 5


def table2_metrics(correlations: pd.DataFrame) -> list[str]:
    """The metrics of the paper's Table 2 that this run's correlation table has, in the
    paper's order."""
    frame = paper_values()
    keys = frame.loc[(frame["table"] == 2) & (frame["key"] != ""), "key"]
    present = set(correlations["metric"])
    return [key for key in dict.fromkeys(keys) if key in present]


def drop_table(metrics: pd.DataFrame, accuracy: pd.DataFrame, scope: str) -> pd.DataFrame:
    """Model-level rows of the scope's compressed models with their accuracy drop."""
    rows = model_rows(metrics)
    rows = rows[rows["family"].isin(scope_families(scope, rows["family"].unique()))]
    acc = accuracy.drop_duplicates("model").set_index("model")["accuracy"]
    base = float(acc.get("base", math.nan))
    return rows.assign(drop=base - rows["model"].map(acc)).dropna(subset=["drop", "value"])


def _scatter_panel(ax, rows: pd.DataFrame, metric: str, corr: pd.Series | None) -> None:
    for family, group in rows.groupby("family", sort=False):
        ax.scatter(
            group["value"], group["drop"], s=16, label=family,
            color=FAMILY_COLORS.get(family, "gray"), marker=FAMILY_MARKERS.get(family, "o"),
        )  # fmt: skip
    x, y = rows["value"].to_numpy(float), rows["drop"].to_numpy(float)
    if x.size >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        line = np.linspace(x.min(), x.max(), 2)
        ax.plot(line, slope * line + intercept, color="black", lw=0.8)
    title = metric
    if corr is not None and math.isfinite(corr["plcc"]):
        # Table 2 correlates with accuracy (= −drop): against the drop the sign flips
        title += (
            f"\nr = {-corr['plcc']:+.2f} [{-corr['plcc_high']:+.2f}, {-corr['plcc_low']:+.2f}]"
            f", n = {int(corr['n'])}"
        )
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)


def plot_metric_vs_accuracy(
    metrics: pd.DataFrame, accuracy: pd.DataFrame, correlations: pd.DataFrame
):
    """Each Table 2 metric against the accuracy drop over the models of the scope set beside
    the paper (:func:`~compreps.core.vocabulary.comparable_scope`), with a least-squares line
    and Pearson r against the drop (= −Table 2's PLCC) with its bootstrap interval."""
    scope = comparable_scope(correlations["scope"])
    corr = correlations[correlations["scope"] == scope].set_index("metric")
    names = table2_metrics(correlations)
    rows = drop_table(metrics, accuracy, scope)
    fig, axes = panel_grid(len(names), NCOLS, 3.0, 2.7, sharey=True)
    if not names:
        axes[0, 0].set_visible(True)
        empty_panel(axes[0, 0], "no Table 2 metric in the correlation table")
    for ax, metric in zip(axes.ravel(), names, strict=False):
        selected = rows[rows["metric"] == metric]
        _scatter_panel(ax, selected, metric, corr.loc[metric] if metric in corr.index else None)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy drop")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def plot_correlation_forest(correlations: pd.DataFrame):
    """This run's PLCC of each Table 2 metric with its bootstrap interval, its partial PLCC
    controlling for family, and the paper's PLCC (Table 2 of 000), one row per metric."""
    scope = comparable_scope(correlations["scope"])
    corr = correlations[correlations["scope"] == scope].set_index("metric")
    names = [m for m in table2_metrics(correlations) if math.isfinite(corr.loc[m, "plcc"])]
    fig, ax = plt.subplots(figsize=(7.0, 0.38 * max(len(names), 3) + 1.2))
    if not names:
        empty_panel(ax, "no Table 2 coefficient in this run")
        return fig
    y = np.arange(len(names))[::-1]
    rows = corr.loc[names]
    errors = [rows["plcc"] - rows["plcc_low"], rows["plcc_high"] - rows["plcc"]]
    ax.errorbar(
        rows["plcc"], y, xerr=np.abs(np.array(errors, float)), fmt="o", color="black",
        ms=4, capsize=2, label=f"this run ({scope} scope), bootstrap interval",
    )  # fmt: skip
    if "plcc_partial" in rows.columns:
        ax.scatter(rows["plcc_partial"], y, marker="o", facecolor="none", edgecolor="tab:blue",
                   s=36, label="this run, partial PLCC (family controlled)")  # fmt: skip
    paper = [paper_value(2, m, "plcc") for m in names]
    ax.scatter(
        [p[0][0] if p else np.nan for p in paper], y, marker="D", color="tab:red", s=24,
        label="paper (Table 2)",
    )  # fmt: skip
    ax.axvline(0.0, color="gray", lw=0.6)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("PLCC with accuracy (= −drop)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.tight_layout()
    return fig
