"""What every figure shares: the paper's model selections and colours, model lookup, panel
helpers and atomic PNG + PDF saving (matplotlib with the Agg backend, no display)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from compreps.core import families  # noqa: E402
from compreps.core.files import atomic_write, log  # noqa: E402
from compreps.core.vocabulary import (  # noqa: E402
    BASE,
    FIGURE_FORMATS,
    MODEL_LAYER,
    PAPER_FAMILIES,
    parse_model_id,
)

# (label, family, level) of the models each paper figure shows
FIG1_MODELS = (
    ("ORG", "base", None),
    ("C50", "coreset", 0.5),
    ("P50", "prune", 0.5),
    ("Q4", "quant", 4),
)
FIG2_MODELS = (
    ("ORG", "base", None),
    ("C50", "coreset", 0.5),
    ("C10", "coreset", 0.1),
    ("P50", "prune", 0.5),
    ("P90", "prune", 0.9),
    ("Q4", "quant", 4),
    ("Q2", "quant", 2),
)
LABEL_COLORS = {
    "ORG": "black",
    "C50": "tab:blue",
    "C10": "tab:cyan",
    "P50": "tab:orange",
    "P90": "tab:red",
    "Q4": "tab:green",
    "Q2": "tab:olive",
}
# Each family's colour, marker and level label come from its registry entry
# (compreps.core.families), so a new family is drawn without touching the figures.
FAMILY_COLORS = {"base": "black", **{f.name: f.colour for f in families.REGISTRY.values()}}
FAMILY_MARKERS = {"base": "*", **{f.name: f.marker for f in families.REGISTRY.values()}}
LEVEL_AXES = {f.name: f.label for f in families.REGISTRY.values()}
FAMILY_AXES = {name: LEVEL_AXES[name] for name in PAPER_FAMILIES}


def drawn_families(present) -> tuple[list[str], list[str]]:
    """``(families to draw, families to name as missing)``: the registry's families present
    in the run, in registry order; missing are only the study's three families (a family
    the run's config did not choose is not missing)."""
    present = set(present)
    drawn = [name for name in families.REGISTRY if name in present]
    return drawn, [name for name in PAPER_FAMILIES if name not in present]


FC_LAYER = "fc"
DPI = 150
PAD_INCHES = 0.1  # matplotlib's default padding of bbox_inches="tight"


def say(message: str) -> None:
    log(f"figures: {message}")


def id_family_level(model_id: str) -> tuple[str, float]:
    """:func:`compreps.core.vocabulary.parse_model_id`, with ``("", nan)`` for a foreign id."""
    try:
        return parse_model_id(str(model_id))
    except ValueError:
        return "", math.nan


def find_model(model_ids: Iterable[str], family: str, level: float | None) -> str | None:
    """The id among ``model_ids`` of ``family`` at ``level`` (compared numerically), or None."""
    for model_id in model_ids:
        fam, lev = id_family_level(model_id)
        if fam == family and (family == BASE or math.isclose(lev, float(level))):
            return model_id
    return None


def pick_models(model_ids: Iterable[str], wanted, figure: str) -> tuple[dict[str, str], list]:
    """``{label: model id}`` of the wanted models present, and the labels missing (logged)."""
    model_ids = list(dict.fromkeys(model_ids))
    found, missing = {}, []
    for label, family, level in wanted:
        model_id = find_model(model_ids, family, level)
        if model_id is None:
            missing.append(label)
        else:
            found[label] = model_id
    if missing:
        say(f"{figure}: not in this run, skipped: {', '.join(missing)}")
    return found, missing


def note_missing(fig, missing: list[str]) -> None:
    if missing:
        fig.text(
            0.01,
            0.005,
            f"not in this run: {', '.join(missing)}",
            fontsize=8,
            color="dimgray",
            ha="left",
            va="bottom",
        )


def empty_panel(ax, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=9,
        color="dimgray",
    )


def model_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[metrics["layer"] == MODEL_LAYER]


def metric_value(metrics: pd.DataFrame, model: str, metric: str, layer: str) -> float:
    rows = metrics[
        (metrics["model"] == model) & (metrics["metric"] == metric) & (metrics["layer"] == layer)
    ]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


def trajectory_layers(metrics: pd.DataFrame, wanted: Iterable[str]) -> list[str]:
    """Layers of the trajectory panels: ``wanted`` as far as the table has them, else every
    per-layer layer in the table's order."""
    present = list(dict.fromkeys(metrics.loc[metrics["layer"] != MODEL_LAYER, "layer"]))
    layers = [layer for layer in wanted if layer in present]
    return layers or present


def layer_label(layer: str) -> str:
    if layer.startswith("layer") and layer[5:].isdigit():
        return f"L{layer[5:]}"
    return layer.upper() if layer == FC_LAYER else layer


def panel_grid(n_panels: int, ncols: int, width: float, height: float, **subplots):
    """``(fig, axes)`` of small multiples: ``ncols`` columns of ``width`` × ``height`` inches,
    as many rows as ``n_panels`` needs (at least one), the cells no panel fills hidden; ``axes``
    is the 2-D array (``subplots``: more options of ``plt.subplots``, e.g. ``sharey``)."""
    nrows = max(1, math.ceil(n_panels / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **subplots
    )
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.pdf atomically, both cropped to the figure's tight box;
    close the figure. One Agg render at :data:`DPI` gives the PNG's pixels and the box, so the
    figure is drawn twice in all (PNG, PDF) instead of twice per format."""
    fig.set_dpi(DPI)
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(PAD_INCHES)  # inches
    pixels = np.asarray(fig.canvas.buffer_rgba())
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = (int(round(v * DPI)) for v in box.extents)
    x0, x1 = max(x0, 0), min(x1, width)
    y0, y1 = max(y0, 0), min(y1, height)
    png, pdf = (out_dir / f"{name}.{ext}" for ext in FIGURE_FORMATS)
    with atomic_write(png) as tmp:
        plt.imsave(
            tmp, pixels[height - y1 : height - y0, x0:x1], format="png", dpi=DPI,
            metadata={"Software": None},
        )  # fmt: skip
    with atomic_write(pdf) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches=box, metadata={"CreationDate": None})
    plt.close(fig)
    return [png, pdf]
