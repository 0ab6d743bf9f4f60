"""The across-seed figures (:data:`compreps.core.vocabulary.SEED_FIGURE_NAMES`): accuracy
against compression level with one mark per seed, each Table 2 metric's PLCC on every seed with
the across-seed mean ± sd, and each Table 2 metric against the accuracy drop, one mark per seed.
A family keeps its colour from the registry (:mod:`compreps.analysis.figures.style`); a seed
gets a marker shape of its own (:data:`SEED_MARKERS`, in the order of the seeds)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from compreps.analysis.figures.correlations import NCOLS, drop_table, table2_metrics
from compreps.analysis.figures.style import (
    FAMILY_COLORS,
    LEVEL_AXES,
    drawn_families,
    empty_panel,
    panel_grid,
    plt,
)
from compreps.core import families
from compreps.core.vocabulary import BASE

SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
SEED_GREY = "0.35"  # the seeds' markers in legends, where the colour is the family's


def seed_marker(index: int) -> str:
    return SEED_MARKERS[index % len(SEED_MARKERS)]


def seed_handles(seeds) -> list[Line2D]:
    """Legend entries of the seeds' markers (open, grey)."""
    return [
        Line2D(
            [],
            [],
            ls="none",
            marker=seed_marker(i),
            mfc="none",
            mec=SEED_GREY,
            label=f"seed {seed}",
        )
        for i, seed in enumerate(seeds)
    ]


def seed_scatter(ax, x, y, index: int, colour, size: float) -> None:
    """Open marks of the ``index``-th seed's shape in ``colour`` (overlapping seeds stay
    visible)."""
    ax.scatter(x, y, marker=seed_marker(index), s=size, facecolor="none", edgecolor=colour, lw=1)


def top_legend(fig, handles: list, ncol: int) -> None:
    """A legend above the panels, inside the figure (the saved PNG is cropped to it), and the
    panels laid out below it."""
    ncol = max(1, min(len(handles), ncol))
    rows = math.ceil(len(handles) / ncol)
    fig.legend(handles=handles, loc="upper center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.22 * rows + 0.1) / fig.get_figheight()))


def _grid(n_panels: int, ncols: int, width: float, height: float):
    """``(fig, flat axes)`` of ``n_panels`` (>= 1) small multiples sharing y, in at most
    ``ncols`` columns."""
    fig, axes = panel_grid(n_panels, min(ncols, n_panels), width, height, sharey=True)
    return fig, axes.ravel()


def _base_band(ax, summary: pd.DataFrame) -> None:
    """The base's across-seed mean (dashed) and its seed range (grey band)."""
    base = summary[summary["family"] == BASE]
    if base.empty or not math.isfinite(float(base["accuracy_mean"].iloc[0])):
        return
    row = base.iloc[0]
    ax.axhspan(row["accuracy_min"], row["accuracy_max"], color="0.5", alpha=0.18, lw=0)
    ax.axhline(row["accuracy_mean"], ls="--", color="black", lw=1)


def _family_panel(ax, tables: dict, summary: pd.DataFrame, family: str) -> None:
    colour = FAMILY_COLORS.get(family, "gray")
    for i, table in enumerate(tables.values()):
        rows = table[table["family"] == family]
        seed_scatter(ax, rows["level"], rows["accuracy"], i, colour, 28)
    mean = summary[summary["family"] == family].sort_values("level")
    ax.plot(mean["level"], mean["accuracy_mean"], color=colour, lw=1.5)
    _base_band(ax, summary)
    if families.coreset_method(family) is not None:
        ax.set_xscale("log")
        levels = sorted(set(mean["level"].dropna()))
        ax.set_xticks(levels, [f"{level:g}" for level in levels])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(family, fontsize=10)
    ax.set_xlabel(LEVEL_AXES.get(family, "level"), fontsize=8)
    ax.tick_params(labelsize=8)


def plot_seeds_accuracy_vs_level(tables: dict, summary: pd.DataFrame):
    """Per family, each seed's accuracy against the level (the seed's marker, the family's
    colour) and the across-seed mean (line); the base's mean dashed with its seed range."""
    present = pd.concat(tables.values())["family"]
    drawn, _ = drawn_families(present)
    fig, axes = _grid(max(len(drawn), 1), 3, 4.2, 3.3)
    if not drawn:
        empty_panel(axes[0], "no compressed model in the seeds' tables")
    for ax, family in zip(axes, drawn, strict=False):
        _family_panel(ax, tables, summary, family)
    for ax in axes[:: min(3, len(axes))]:
        ax.set_ylabel("test accuracy")
    handles = seed_handles(tables) + [
        Line2D([], [], color=SEED_GREY, lw=1.5, label="mean over seeds (family colour)"),
        Line2D([], [], color="black", ls="--", lw=1, label="base: mean over seeds"),
        plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.18, label="base: seed range"),
    ]
    top_legend(fig, handles, 6)
    return fig


def plot_correlation_spread(values: pd.DataFrame, seeds, scope: str):
    """Left: each Table 2 metric's PLCC (``scope``) on every seed (the seed's marker) and the
    across-seed mean ± sd (black); right: each seed's PLCC minus that mean, on its own scale,
    so that the seed-to-seed spread is visible."""
    plcc = values[(values["scope"] == scope) & (values["quantity"] == "plcc")]
    names = [
        m for m in table2_metrics(plcc) if plcc.loc[plcc["metric"] == m, "value"].notna().any()
    ]
    fig, (left, right) = plt.subplots(
        1,
        2,
        figsize=(10.0, 0.4 * max(len(names), 3) + 1.4),
        sharey=True,
        gridspec_kw={"width_ratios": (3, 2)},
    )
    if not names:
        empty_panel(left, "no Table 2 coefficient on any seed")
        return fig
    y = np.arange(len(names))[::-1]
    table = plcc.pivot_table(index="metric", columns="seed", values="value", dropna=False)
    table = table.reindex(index=names, columns=list(seeds))
    mean, sd = table.mean(axis=1), table.std(axis=1, ddof=1)
    offsets = np.linspace(-0.22, 0.22, len(table.columns)) if len(table.columns) > 1 else [0.0]
    for i, (seed, dy) in enumerate(zip(table.columns, offsets, strict=True)):
        kwargs = {"marker": seed_marker(i), "s": 26, "color": f"C{i}", "label": f"seed {seed}"}
        left.scatter(table[seed], y + dy, **kwargs)
        right.scatter(table[seed] - mean, y + dy, **kwargs)
    left.errorbar(
        mean,
        y,
        xerr=sd.fillna(0.0),
        fmt="|",
        color="black",
        ms=14,
        capsize=3,
        label="mean ± sd over seeds",
    )
    for ax in (left, right):
        ax.axvline(0.0, color="gray", lw=0.6)
        ax.grid(axis="x", lw=0.3, alpha=0.5)
    left.set_yticks(y, names, fontsize=8)
    left.set_xlabel(f"PLCC with accuracy (= −drop), scope {scope}")
    right.set_xlabel("seed's PLCC − mean over seeds")
    if len(table.columns) < 2:
        right.text(0.5, 0.02, "one seed: no seed-to-seed spread", transform=right.transAxes,
                   ha="center", va="bottom", fontsize=8, color="dimgray")  # fmt: skip
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.8, -0.12), ncol=4)
    fig.tight_layout()
    return fig


def _drop_panel(ax, rows_by_seed: dict, metric: str, title: str) -> None:
    for i, rows in enumerate(rows_by_seed.values()):
        rows = rows[rows["metric"] == metric]
        for family, group in rows.groupby("family", sort=False):
            colour = FAMILY_COLORS.get(family, "gray")
            seed_scatter(ax, group["value"], group["drop"], i, colour, 18)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)


def plot_seeds_metric_vs_accuracy(metrics: dict, accuracy: dict, values: pd.DataFrame, scope):
    """Each Table 2 metric (model level) against the accuracy drop over the ``scope``'s
    models, one mark per model and seed (the seed's marker, the family's colour); the title
    gives r against the drop (= −PLCC) as mean ± sd over the seeds."""
    plcc = values[(values["scope"] == scope) & (values["quantity"] == "plcc")]
    names = table2_metrics(plcc)
    rows = {seed: drop_table(metrics[seed], accuracy[seed], scope) for seed in metrics}
    fig, axes = _grid(max(len(names), 1), NCOLS, 3.0, 2.7)
    if not names:
        empty_panel(axes[0], "no Table 2 metric in the correlation tables")
    for ax, metric in zip(axes, names, strict=False):
        r = -plcc.loc[plcc["metric"] == metric, "value"].dropna()
        sd = f" ± {r.std(ddof=1):.2f}" if len(r) > 1 else ""
        title = f"{metric}\nr = {r.mean():+.2f}{sd} ({len(r)} seeds)" if len(r) else metric
        _drop_panel(ax, rows, metric, title)
    for ax in axes[:: min(NCOLS, len(axes))]:
        ax.set_ylabel("accuracy drop")
    present = pd.concat(rows.values())["family"] if rows else []
    handles = [
        Line2D([], [], ls="none", marker="s", color=FAMILY_COLORS.get(f, "gray"), label=f)
        for f in dict.fromkeys(present)
    ] + seed_handles(metrics)
    top_legend(fig, handles, 8)
    return fig
