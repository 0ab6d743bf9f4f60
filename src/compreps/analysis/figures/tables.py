"""The figures drawn from the tables: accuracy against compression level and the REPS weight
sensitivity heat map (Table 2's figures: :mod:`compreps.analysis.figures.correlations`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from compreps.analysis.figures.style import (
    FAMILY_AXES,
    FAMILY_COLORS,
    FAMILY_MARKERS,
    empty_panel,
    find_model,
    id_family_level,
    plt,
)
from compreps.core import families

# Named REPS weight configurations marked on the heat map (sensitivity.named_reps_configs)
HEATMAP_MARKERS = (("weighted", "*"), ("equal", "o"))


def _panel_families(family: str, present) -> list[str]:
    """The families drawn in ``family``'s panel: the coreset panel holds every coreset method
    of the run (one line each), the others their own family."""
    if family != "coreset":
        return [family]
    return [f for f in dict.fromkeys(present) if families.coreset_method(f) is not None]


def _accuracy_line(ax, accuracy: pd.DataFrame, family: str) -> bool:
    """One family's accuracy against its level, with each accuracy's Wilson interval when the
    table has it; False when the run has no model of the family."""
    rows = accuracy[[id_family_level(m)[0] == family for m in accuracy["model"]]].copy()
    if rows.empty:
        return False
    rows["x"] = [id_family_level(m)[1] for m in rows["model"]]
    rows = rows.sort_values("x")
    colour = FAMILY_COLORS.get(family, "gray")
    label = families.coreset_method(family) or family
    ax.plot(rows["x"], rows["accuracy"], marker=FAMILY_MARKERS.get(family, "o"), color=colour,
            label=label)  # fmt: skip
    if "accuracy_low" in rows.columns:  # the 95% Wilson interval of each accuracy
        below = (rows["accuracy"] - rows["accuracy_low"]).to_numpy(float)
        above = (rows["accuracy_high"] - rows["accuracy"]).to_numpy(float)
        ax.errorbar(rows["x"], rows["accuracy"], yerr=[below, above], fmt="none",
                    ecolor=colour, capsize=2, lw=0.8)  # fmt: skip
    return True


def plot_accuracy_vs_level(accuracy: pd.DataFrame):
    """Accuracy against compression level, one panel per paper family (the coreset panel: one
    line per coreset method), with Wilson intervals; base as a dashed line."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    base_id = find_model(list(accuracy["model"]), "base", None)
    base_rows = accuracy.loc[accuracy["model"] == base_id, "accuracy"] if base_id else []
    base_acc = float(base_rows.iloc[0]) if len(base_rows) else math.nan
    present = [id_family_level(m)[0] for m in accuracy["model"]]
    for ax, family in zip(axes, FAMILY_AXES, strict=True):
        drawn = [_accuracy_line(ax, accuracy, f) for f in _panel_families(family, present)]
        if not any(drawn):
            empty_panel(ax, f"no {family} models in this run")
        if not math.isnan(base_acc):
            ax.axhline(base_acc, ls="--", color="black", lw=1, label="ORG (base)")
        if family == "coreset" and any(drawn):
            ax.set_xscale("log")
        ax.set_xlabel(FAMILY_AXES[family])
        ax.set_title("coreset (per method)" if len(drawn) > 1 else family)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test accuracy")
    fig.tight_layout()
    return fig


PLCC_FLOOR = 0.96  # the paper's claim: PLCC >= 0.96 for every weight configuration (001, 2.3)


def outline_floor(ax, image: np.ndarray, cell: float) -> None:
    """A white outline around every grid cell whose PLCC reaches 0.96 (the grid is coarse, so
    cells rather than an interpolated contour)."""
    rows, cols = np.nonzero(np.nan_to_num(image, nan=-np.inf) >= PLCC_FLOOR)
    for i_d, i_s in zip(rows, cols, strict=True):
        corner = (i_s * cell - cell / 2, i_d * cell - cell / 2)
        ax.add_patch(Rectangle(corner, cell, cell, fill=False, edgecolor="white", lw=1.5))
    ax.plot([], [], "s", mfc="none", mec="0.4", label=f"PLCC ≥ {PLCC_FLOOR} (white outline)")


def plot_sensitivity_heatmap(sensitivity: pd.DataFrame):
    """PLCC over (w_separation, w_decay): best and worst over the split of the rest between
    w_effective_rank and w_alive."""
    grid = sensitivity[sensitivity["config"] == "grid"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    if grid.empty or grid["plcc"].isna().all():
        for ax in axes:
            empty_panel(ax, "no sensitivity values (too few models?)")
        return fig
    steps = np.unique(np.round(grid["w_separation"].to_numpy(float), 9))
    step = float(np.min(np.diff(steps))) if steps.size > 1 else 1.0
    parts = round(1.0 / step)
    cell = 1.0 / parts
    keys = [
        np.round(grid["w_separation"] * parts).astype(int).rename("i_s"),
        np.round(grid["w_decay"] * parts).astype(int).rename("i_d"),
    ]
    images = {}
    for how in ("max", "min"):
        images[how] = np.full((parts + 1, parts + 1), np.nan)
        for (i_s, i_d), value in grid["plcc"].groupby(keys).agg(how).items():
            images[how][i_d, i_s] = value
    # one colour scale for both panels, spanning the values (a fixed [-1, 1] hides differences)
    low = float(np.nanmin(images["min"]))
    high = max(float(np.nanmax(images["max"])), low + 1e-3)
    for ax, (how, title) in zip(axes, (("max", "best"), ("min", "worst")), strict=True):
        mesh = ax.imshow(
            images[how],
            origin="lower",
            cmap="viridis",
            vmin=low,
            vmax=high,
            extent=(-cell / 2, 1 + cell / 2, -cell / 2, 1 + cell / 2),
        )
        for name, marker in HEATMAP_MARKERS:
            named = sensitivity[sensitivity["config"] == name]
            if len(named):
                ax.scatter(
                    named["w_separation"],
                    named["w_decay"],
                    marker=marker,
                    s=90,
                    color="red",
                    edgecolor="white",
                    label=name,
                )
        outline_floor(ax, images[how], cell)
        ax.set_title(f"{title} PLCC over w_effective_rank/w_alive split", fontsize=10)
        ax.set_xlabel("w_separation")
        ax.legend(fontsize=8, loc="upper right")
    axes[0].set_ylabel("w_decay")
    fig.colorbar(mesh, ax=axes, label="PLCC of REPS with accuracy")
    return fig
