"""The figures drawn from the dumps: Fig. 1 (weight histograms, from each dump's stored
Conv2d/Linear weights) and Fig. 2 (representation diagnostics; its eigenvalue-decay panel uses
the metrics' decomposition, :func:`compreps.analysis.metrics.spectra.centred_spectrum`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from compreps.analysis.figures.style import (
    FC_LAYER,
    FIG1_MODELS,
    FIG2_MODELS,
    LABEL_COLORS,
    empty_panel,
    layer_label,
    metric_value,
    model_rows,
    note_missing,
    pick_models,
    plt,
    say,
    trajectory_layers,
)
from compreps.analysis.metrics.spectra import centre_columns, centred_spectrum
from compreps.core.dump import read_dump, stored_layers

HIST_BINS = 256


def model_weights(dump: str | os.PathLike) -> np.ndarray:
    """Every Conv2d and Linear weight of a dump's model, concatenated (definition order)."""
    weights = read_dump(dump, layers=[], weights=True).weights
    return np.concatenate(list(weights.values()))


def covariance_spectrum(dump: str | os.PathLike, layer: str = FC_LAYER) -> np.ndarray:
    """Covariance eigenvalues (descending, divided by the largest, so the curve starts at 1 as
    the paper's Fig. 2e) of a dump's probe activations at ``layer``, from the metrics' one
    decomposition; empty when the dump lacks that layer."""
    if layer not in stored_layers(dump):
        say(f"{dump} has no /probe/layers/{layer}: no eigenvalue curve")
        return np.array([])
    features = read_dump(dump, layers=[layer]).layers[layer]
    if features.shape[0] < 2:
        return np.array([])
    eigenvalues = centred_spectrum(centre_columns(features), top_k=0).eigenvalues
    largest = eigenvalues[0] if eigenvalues.size else 0.0
    return eigenvalues / largest if largest > 0 else eigenvalues


def plot_weight_histograms(dumps: dict[str, Path]):
    """Fig. 1: weight histograms of ORG, C50, P50, Q4 on one shared range (log counts);
    ``dumps``: ``{model id: dump path}``."""
    found, missing = pick_models(dumps, FIG1_MODELS, "fig1_weight_histograms")
    weights = {label: model_weights(dumps[mid]) for label, mid in found.items()}
    fig, axes = plt.subplots(
        1, len(FIG1_MODELS), figsize=(4 * len(FIG1_MODELS), 3.2), sharex=True, squeeze=False
    )
    if weights:
        low = min(float(w.min()) for w in weights.values())
        high = max(float(w.max()) for w in weights.values())
        edges = np.linspace(low, high if high > low else low + 1.0, HIST_BINS + 1)
    for ax, (label, _, _) in zip(axes[0], FIG1_MODELS, strict=True):
        if label not in weights:
            empty_panel(ax, f"{label}: not in this run")
            continue
        values = weights[label]
        ax.hist(values, bins=edges, color=LABEL_COLORS[label], log=True)
        zero = float(np.mean(values == 0.0))
        ax.set_title(
            f"{label} ({found[label]}), {values.size:,} weights\nzeros {zero:.1%}", fontsize=9
        )
        ax.set_xlabel("weight value")
    axes[0][0].set_ylabel("count (log)")
    fig.suptitle("Weight distributions (all Conv2d + Linear weights, 256 bins)")
    note_missing(fig, missing)
    fig.tight_layout()
    return fig


def _line_over_layers(ax, metrics, found, metric, layers, transform=None) -> None:
    x = np.arange(len(layers))
    for label, model_id in found.items():
        values = np.array([metric_value(metrics, model_id, metric, layer) for layer in layers])
        if transform is not None:
            values = transform(values)
        if np.all(np.isnan(values)):
            continue
        style = "--" if label == "ORG" else "-"
        ax.plot(x, values, style, marker="o", ms=3, color=LABEL_COLORS[label], label=label)
    ax.set_xticks(x, [layer_label(layer) for layer in layers])


def _separation_vs_agreement(ax, metrics: pd.DataFrame, found: dict) -> None:
    """Panel (d): FC class separation against prediction agreement, every model as a grey dot,
    the seven named models in their legend colours; the title gives Pearson r over all."""
    rows = pd.concat(
        [
            model_rows(metrics).query("metric == 'prediction_agreement'"),
            metrics[(metrics["layer"] == FC_LAYER) & (metrics["metric"] == "class_separation")],
        ]
    )
    table = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    ax.set_title("(d) separation vs prediction agreement")
    if not {"class_separation", "prediction_agreement"} <= set(table.columns):
        empty_panel(ax, "class_separation / prediction_agreement\nnot in the metrics table")
        return
    table = table.dropna()
    x, y = table["prediction_agreement"], table["class_separation"]
    ax.scatter(x, y, s=12, color="lightgray", label="other models")
    for label, model_id in found.items():
        if model_id in table.index:
            point = (x[model_id], y[model_id])
            ax.scatter(*point, s=40, color=LABEL_COLORS[label], zorder=3)
            ax.annotate(label, point, fontsize=7, xytext=(3, 3), textcoords="offset points")
    if len(table) >= 3 and x.std() > 0 and y.std() > 0:
        ax.set_title(
            f"(d) separation vs prediction agreement\nr = {x.corr(y):.2f} ({len(x)} models)"
        )
    ax.set_xlabel("prediction agreement with ORG")
    ax.set_ylabel("class separation at FC")


def _eigenvalue_decay(ax, found: dict, dumps: dict[str, Path]) -> None:
    """Panel (e): the FC covariance spectrum of each named model, divided by its largest."""
    for label, model_id in found.items():
        if model_id not in dumps:
            say(f"fig2_representations: no dump of {model_id}, no eigenvalue curve for {label}")
            continue
        spectrum = covariance_spectrum(dumps[model_id])
        spectrum = spectrum[spectrum > 0]
        if spectrum.size:
            x = np.arange(1, spectrum.size + 1)
            ax.loglog(x, spectrum, marker=".", color=LABEL_COLORS[label], label=label)
    ax.set_title("(e) eigenvalue decay at FC")
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue / largest")


def plot_representations(metrics: pd.DataFrame, dumps: dict[str, Path], layers: list[str]):
    """Fig. 2: eight panels of representation diagnostics for the paper's seven models
    (trajectories over ``layers``; eigenvalue decay from ``dumps``, ``{model id: path}``)."""
    found, missing = pick_models(metrics["model"], FIG2_MODELS, "fig2_representations")
    layers = trajectory_layers(metrics, layers)
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    ax = axes.ravel()
    labels = list(found)
    ranks = [metric_value(metrics, found[lbl], "effective_rank", FC_LAYER) for lbl in labels]
    ax[0].bar(labels, ranks, color=[LABEL_COLORS[lbl] for lbl in labels])
    ax[0].set_title("(a) effective rank at FC")
    ax[0].set_ylabel("effective rank (eq. 9 of 000)")
    _line_over_layers(ax[1], metrics, found, "alive_fraction", layers, lambda v: 1.0 - v)
    ax[1].set_title("(b) dead-unit fraction per layer")
    ax[1].set_ylabel("fraction of dead units")
    _line_over_layers(ax[2], metrics, found, "class_separation", layers)
    ax[2].set_title("(c) class separation per layer")
    ax[2].set_ylabel("class separation r_s = d_inter / d_intra")
    _separation_vs_agreement(ax[3], metrics, found)
    _eigenvalue_decay(ax[4], found, dumps)
    for panel, (metric, title) in zip(
        ax[5:],
        (("reps_weighted", "(f) REPS"), ("gtfa", "(g) GTFA"), ("cka_linear", "(h) linear CKA")),
        strict=True,
    ):
        _line_over_layers(panel, metrics, found, metric, layers)
        panel.set_title(f"{title} trajectory")
        panel.set_ylabel("similarity to ORG")
    handles, names = ax[1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False)
    note_missing(fig, missing)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
