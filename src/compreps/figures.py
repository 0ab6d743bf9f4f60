"""The paper's figures and this run's summary plots (``figures`` step), each as PNG and PDF.

- ``fig1_weight_histograms``: all Conv2d and Linear weights of ORG (base), C50, P50 and Q4,
  256 bins on one shared range, log counts (Fig. 1).
- ``fig2_representations``: eight panels for ORG, C50, C10, P50, P90, Q4, Q2 (Fig. 2):
  effective rank at FC, dead-unit fraction (1 - alive fraction) and class separation per
  trajectory layer, class separation vs prediction agreement, the eigenvalue decay of the FC
  activations' covariance (from the HDF5 probe dumps), and REPS, GTFA and linear-CKA
  trajectories over the trajectory layers.
- ``accuracy_vs_level``: accuracy per compression level, one panel per family, base as a line.
- ``metric_vs_accuracy``: REPS (weighted), GTFA, prediction agreement and weight similarity
  against accuracy, coloured by family (degenerate values as crosses, left out of the PLCC).
- ``sensitivity_heatmap``: PLCC of the recombined REPS over the simplex grid, shown over
  (w_separation, w_decay): the best and the worst PLCC over every split of the remaining weight
  between w_effective_rank and w_alive.

Models are found by family and numeric level (``coreset-0.5`` matches 0.5 and "0.50"); a model
missing from the run is skipped, named in the figure and logged, never an error.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from compreps.correlate import as_bool, point_estimates, read_table  # noqa: E402
from compreps.files import CompRepsError, atomic_write, load_checkpoint  # noqa: E402

FIGURE_NAMES = (
    "fig1_weight_histograms",
    "fig2_representations",
    "accuracy_vs_level",
    "metric_vs_accuracy",
    "sensitivity_heatmap",
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
FAMILY_COLORS = {
    "base": "black",
    "coreset": "tab:blue",
    "prune": "tab:orange",
    "quant": "tab:green",
}
FAMILY_AXES = {"coreset": "coreset fraction", "prune": "pruning ratio", "quant": "bits"}
DEFAULT_TRAJECTORY = ("layer1", "layer2", "layer3", "layer4", "fc")
FC_LAYER = "fc"
SCATTER_METRICS = (
    ("reps_weighted", "REPS (weighted)"),
    ("gtfa", "GTFA"),
    ("prediction_agreement", "prediction agreement"),
    ("weight_similarity", "weight similarity"),
)
HIST_BINS = 256


def log(message: str) -> None:
    print(f"figures: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- model lookup
def parse_id(model_id: str) -> tuple[str, float]:
    """``"coreset-0.50" -> ("coreset", 0.5)``, ``"base" -> ("base", nan)``; unknown -> ("", nan)."""
    if model_id == "base":
        return "base", math.nan
    family, _, level = str(model_id).partition("-")
    try:
        return family, float(level)
    except ValueError:
        return "", math.nan


def find_model(model_ids: Iterable[str], family: str, level: float | None) -> str | None:
    """The id among ``model_ids`` of ``family`` at ``level`` (compared numerically), or None."""
    for model_id in model_ids:
        fam, lev = parse_id(model_id)
        if fam == family and (family == "base" or math.isclose(lev, float(level))):
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
        log(f"{figure}: not in this run, skipped: {', '.join(missing)}")
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


# --------------------------------------------------------------------------- data access
def model_weights(checkpoint: Path) -> np.ndarray:
    """All Conv2d (4-D) and Linear (2-D) weight tensors of a checkpoint, concatenated."""
    state_dict, _ = load_checkpoint(checkpoint)
    parts = [
        tensor.detach().float().reshape(-1).numpy()
        for name, tensor in state_dict.items()
        if name.endswith(".weight")
        and hasattr(tensor, "ndim")
        and tensor.ndim in (2, 4)
        and tensor.is_floating_point()
    ]
    if not parts:
        raise CompRepsError(f"checkpoint {checkpoint} holds no Conv2d/Linear weights")
    return np.concatenate(parts)


def covariance_spectrum(activations: Path, layer: str = FC_LAYER) -> np.ndarray:
    """Eigenvalues (descending, normalised to sum 1) of the covariance of ``/probe/layers/<layer>``
    in an activation file; empty when the file lacks that layer."""
    import h5py

    try:
        with h5py.File(activations, "r") as handle:
            if f"probe/layers/{layer}" not in handle:
                log(f"{activations} has no /probe/layers/{layer}: no eigenvalue curve")
                return np.array([])
            features = np.asarray(handle[f"probe/layers/{layer}"][...], dtype=np.float64)
    except OSError as err:
        raise CompRepsError(
            f"{activations} is truncated or corrupt ({err}); delete it and rerun the workflow "
            "(rule 'activations' rebuilds it)"
        ) from err
    features = features.reshape(features.shape[0], -1)
    if features.shape[0] < 2:
        return np.array([])
    eigenvalues = np.linalg.eigvalsh(
        np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])
    )[::-1]
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    total = eigenvalues.sum()
    return eigenvalues / total if total > 0 else eigenvalues


def model_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[metrics["layer"] == "model"]


def metric_value(metrics: pd.DataFrame, model: str, metric: str, layer: str) -> float:
    rows = metrics[
        (metrics["model"] == model) & (metrics["metric"] == metric) & (metrics["layer"] == layer)
    ]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


def trajectory_layers(metrics: pd.DataFrame, wanted: Iterable[str] | None = None) -> list[str]:
    """Layers of the trajectory panels: ``wanted`` (or L1-L4, FC) as far as the table has them,
    else every per-layer layer in the table's order."""
    present = list(dict.fromkeys(metrics.loc[metrics["layer"] != "model", "layer"]))
    layers = [layer for layer in (wanted or DEFAULT_TRAJECTORY) if layer in present]
    return layers or present


def layer_label(layer: str) -> str:
    if layer.startswith("layer") and layer[5:].isdigit():
        return f"L{layer[5:]}"
    return layer.upper() if layer == FC_LAYER else layer


# --------------------------------------------------------------------------- saving
def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.pdf atomically; close the figure."""
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{name}.{ext}"
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


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


# --------------------------------------------------------------------------- figures
def plot_weight_histograms(checkpoints_dir: Path):
    """Fig. 1: weight histograms of ORG, C50, P50, Q4 on one shared range (log counts)."""
    ids = sorted(p.stem for p in Path(checkpoints_dir).glob("*.pt"))
    found, missing = pick_models(ids, FIG1_MODELS, "fig1_weight_histograms")
    weights = {
        label: model_weights(Path(checkpoints_dir) / f"{mid}.pt") for label, mid in found.items()
    }
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


def plot_representations(
    metrics: pd.DataFrame, activations_dir: Path, layers: list[str] | None = None
):
    """Fig. 2: eight panels of representation diagnostics for the paper's seven models."""
    found, missing = pick_models(metrics["model"], FIG2_MODELS, "fig2_representations")
    layers = trajectory_layers(metrics, layers)
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    ax = axes.ravel()

    labels = list(found)
    ranks = [metric_value(metrics, found[lbl], "effective_rank", FC_LAYER) for lbl in labels]
    ax[0].bar(labels, ranks, color=[LABEL_COLORS[lbl] for lbl in labels])
    ax[0].set_title("(a) effective rank at FC")

    _line_over_layers(ax[1], metrics, found, "alive_fraction", layers, lambda v: 1.0 - v)
    ax[1].set_title("(b) dead-unit fraction per layer")
    _line_over_layers(ax[2], metrics, found, "class_separation", layers)
    ax[2].set_title("(c) class separation per layer")

    rows = model_rows(metrics)
    table = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    if {"class_separation", "prediction_agreement"} <= set(table.columns):
        for model_id, row in table.iterrows():
            family = parse_id(model_id)[0]
            ax[3].scatter(
                row["prediction_agreement"],
                row["class_separation"],
                s=18,
                color=FAMILY_COLORS.get(family, "gray"),
                marker="*" if family == "base" else "o",
            )
        for label, model_id in found.items():
            if model_id in table.index:
                ax[3].annotate(
                    label,
                    (
                        table.loc[model_id, "prediction_agreement"],
                        table.loc[model_id, "class_separation"],
                    ),
                    fontsize=7,
                )
        ax[3].set_xlabel("prediction agreement with ORG")
        ax[3].set_ylabel("class separation (model level)")
    else:
        empty_panel(ax[3], "class_separation / prediction_agreement\nnot in the metrics table")
    ax[3].set_title("(d) separation vs prediction agreement")

    for label, model_id in found.items():
        path = Path(activations_dir) / f"{model_id}.h5"
        if not path.is_file():
            log(f"fig2_representations: {path} missing, no eigenvalue curve for {label}")
            continue
        spectrum = covariance_spectrum(path)
        spectrum = spectrum[spectrum > 0]
        if spectrum.size:
            ax[4].loglog(
                np.arange(1, spectrum.size + 1),
                spectrum,
                marker=".",
                color=LABEL_COLORS[label],
                label=label,
            )
    ax[4].set_title("(e) eigenvalue decay at FC")
    ax[4].set_xlabel("index")
    ax[4].set_ylabel("normalised eigenvalue")

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


def plot_accuracy_vs_level(accuracy: pd.DataFrame):
    """Accuracy against compression level, one panel per family, base as a dashed line."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    ids = list(accuracy["model"])
    base_id = find_model(ids, "base", None)
    base_acc = (
        float(accuracy.loc[accuracy["model"] == base_id, "accuracy"].iloc[0])
        if base_id
        else math.nan
    )
    for ax, family in zip(axes, FAMILY_AXES, strict=True):
        levels = [
            (parse_id(m)[1], acc)
            for m, acc in zip(accuracy["model"], accuracy["accuracy"], strict=True)
            if parse_id(m)[0] == family
        ]
        levels.sort()
        if levels:
            x, y = zip(*levels, strict=True)
            ax.plot(x, y, marker="o", color=FAMILY_COLORS[family], label=family)
        else:
            empty_panel(ax, f"no {family} models in this run")
        if not math.isnan(base_acc):
            ax.axhline(base_acc, ls="--", color="black", lw=1, label="ORG (base)")
        if family == "coreset" and levels:
            ax.set_xscale("log")
        ax.set_xlabel(FAMILY_AXES[family])
        ax.set_title(family)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test accuracy")
    fig.tight_layout()
    return fig


def plot_metric_vs_accuracy(metrics: pd.DataFrame, accuracy: pd.DataFrame):
    """Model-level metrics against accuracy for the compressed models, coloured by family."""
    rows = model_rows(metrics)
    rows = rows[rows["family"] != "base"]
    acc = accuracy.drop_duplicates("model").set_index("model")["accuracy"]
    fig, axes = plt.subplots(
        1, len(SCATTER_METRICS), figsize=(4.2 * len(SCATTER_METRICS), 3.6), sharey=True
    )
    for ax, (metric, title) in zip(axes, SCATTER_METRICS, strict=True):
        sel = rows[rows["metric"] == metric].copy()
        sel["accuracy"] = sel["model"].map(acc)
        sel = sel[sel["accuracy"].notna()]
        if sel.empty:
            empty_panel(ax, f"{metric}: not in this run")
            ax.set_title(title)
            continue
        degenerate = as_bool(sel["degenerate"]) | sel["value"].isna()
        for family, group in sel.groupby("family"):
            bad = degenerate.loc[group.index]
            ax.scatter(
                group.loc[~bad, "value"],
                group.loc[~bad, "accuracy"],
                s=22,
                color=FAMILY_COLORS.get(family, "gray"),
                label=family,
            )
            if bad.any():
                ax.scatter(
                    group.loc[bad, "value"],
                    group.loc[bad, "accuracy"],
                    s=22,
                    marker="x",
                    color=FAMILY_COLORS.get(family, "gray"),
                )
        good = sel[~degenerate]
        plcc = point_estimates(good["value"].to_numpy(float), good["accuracy"].to_numpy(float))
        ax.set_title(f"{title}\nPLCC {plcc['plcc']:.3f} (n={len(good)})", fontsize=10)
        ax.set_xlabel(metric)
    axes[0].set_ylabel("accuracy (= -drop + base accuracy)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


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
        for name, marker in (("paper_weights", "*"), ("equal", "o")):
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
        ax.set_title(f"{title} PLCC over w_effective_rank/w_alive split", fontsize=10)
        ax.set_xlabel("w_separation")
        ax.legend(fontsize=8, loc="upper right")
    axes[0].set_ylabel("w_decay")
    fig.colorbar(mesh, ax=axes, label="PLCC of REPS with accuracy")
    return fig


# --------------------------------------------------------------------------- entry points
def _frame(value, what: str) -> pd.DataFrame:
    return value if isinstance(value, pd.DataFrame) else read_table(value, what)


def make_figures(
    metrics: pd.DataFrame | str | os.PathLike,
    accuracy: pd.DataFrame | str | os.PathLike,
    sensitivity: pd.DataFrame | str | os.PathLike,
    activations_dir: str | os.PathLike,
    checkpoints_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    trajectory: Iterable[str] | None = None,
) -> list[Path]:
    """Write every figure of :data:`FIGURE_NAMES` as PNG and PDF into ``out_dir``; returns the
    paths. Tables may be DataFrames or CSV paths."""
    metrics = _frame(metrics, "metrics table")
    accuracy = _frame(accuracy, "accuracy table")
    sensitivity = _frame(sensitivity, "sensitivity table")
    out_dir = Path(out_dir)
    builders = {
        "fig1_weight_histograms": lambda: plot_weight_histograms(Path(checkpoints_dir)),
        "fig2_representations": lambda: plot_representations(
            metrics, Path(activations_dir), list(trajectory) if trajectory else None
        ),
        "accuracy_vs_level": lambda: plot_accuracy_vs_level(accuracy),
        "metric_vs_accuracy": lambda: plot_metric_vs_accuracy(metrics, accuracy),
        "sensitivity_heatmap": lambda: plot_sensitivity_heatmap(sensitivity),
    }
    written = []
    for name in FIGURE_NAMES:
        written += save_figure(builders[name](), out_dir, name)
        log(f"wrote {out_dir / name}.png/.pdf")
    return written


def main(argv: list[str]) -> int:
    """``figures``: every figure from the tables, activation files and checkpoints."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Write the paper's figures (PNG + PDF)."
    )
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--accuracy", required=True)
    parser.add_argument("--sensitivity", required=True)
    parser.add_argument("--activations-dir", required=True)
    parser.add_argument("--checkpoints-dir", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument(
        "--trajectory-layers",
        nargs="+",
        default=None,
        help="layers of the Fig. 2 trajectories (default: layer1-4, fc)",
    )
    args = parser.parse_args(argv[1:])
    make_figures(
        args.metrics,
        args.accuracy,
        args.sensitivity,
        args.activations_dir,
        args.checkpoints_dir,
        args.out_dir,
        args.trajectory_layers,
    )
    return 0
