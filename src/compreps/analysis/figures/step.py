"""The ``figures`` step: every figure of :data:`compreps.core.vocabulary.FIGURE_NAMES` as PNG + PDF.

Inputs are listed files only: the metrics, accuracy, correlation and sensitivity tables and one
dump per model (``results/activations/<id>.h5``: weights for Fig. 1, FC activations for
Fig. 2's eigenvalue decay, non-zero weights of pruned models). The drawing lives in
:mod:`compreps.analysis.figures.dumps` (from dumps), :mod:`compreps.analysis.figures.tables`
(accuracy against level, the sensitivity heat map), :mod:`compreps.analysis.figures.correlations`
(Table 2: each metric against the drop, the forest plot) and
:mod:`compreps.analysis.figures.families` (the families side by side: parameters kept,
hierarchy).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from compreps.analysis.figures.correlations import (
    plot_correlation_forest,
    plot_metric_vs_accuracy,
)
from compreps.analysis.figures.dumps import plot_representations, plot_weight_histograms
from compreps.analysis.figures.families import plot_accuracy_vs_params, plot_hierarchy_deviation
from compreps.analysis.figures.style import save_figure, say
from compreps.analysis.figures.tables import (
    plot_accuracy_vs_level,
    plot_sensitivity_heatmap,
)
from compreps.core.files import CompRepsError, read_table
from compreps.core.settings import ProbeSettings, add_arguments, from_arguments, step_parser
from compreps.core.vocabulary import (
    ACCURACY_COLUMNS,
    CORRELATION_COLUMNS,
    FIGURE_NAMES,
    METRIC_COLUMNS,
    SENSITIVITY_COLUMNS,
)

PathLike = str | os.PathLike
TABLES = ("metrics", "accuracy", "correlations", "sensitivity")  # results/tables/<name>.csv


def dumps_by_model(paths: Iterable[PathLike]) -> dict[str, Path]:
    """``{model id: dump path}``; the id is the file name (``results/activations/<id>.h5``)."""
    dumps = {}
    for path in map(Path, paths):
        if path.stem in dumps:
            raise CompRepsError(f"two dumps of model {path.stem}: {dumps[path.stem]}, {path}")
        dumps[path.stem] = path
    return dumps


def read_accuracy(path: PathLike):
    """The accuracy table, read by column name: ``model, family, level, accuracy`` first, then
    whatever the run records (``param_fraction``, ``macs``; a figure that needs an absent one
    says so in a note)."""
    accuracy = read_table(path, "accuracy table", rule="accuracy_table")
    if list(accuracy.columns[: len(ACCURACY_COLUMNS)]) != list(ACCURACY_COLUMNS):
        raise CompRepsError(
            f"accuracy table {path} has columns {list(accuracy.columns)}, expected "
            f"{list(ACCURACY_COLUMNS)} first; rerun rule 'accuracy_table'"
        )
    return accuracy


def make_figures(
    metrics: PathLike,
    accuracy: PathLike,
    correlations: PathLike,
    sensitivity: PathLike,
    dumps: Iterable[PathLike],
    out_dir: PathLike,
    trajectory: Iterable[str],
) -> list[Path]:
    """Write every figure as PNG and PDF into ``out_dir``; returns the paths written."""
    metrics = read_table(metrics, "metrics table", METRIC_COLUMNS, rule="metrics_table")
    accuracy = read_accuracy(accuracy)
    correlations = read_table(
        correlations, "correlation table", CORRELATION_COLUMNS, rule="correlations"
    )
    sensitivity = read_table(
        sensitivity, "sensitivity table", SENSITIVITY_COLUMNS, rule="sensitivity"
    )
    dumps = dumps_by_model(dumps)
    out_dir = Path(out_dir)
    builders = {
        "fig1_weight_histograms": lambda: plot_weight_histograms(dumps),
        "fig2_representations": lambda: plot_representations(metrics, dumps, list(trajectory)),
        "accuracy_vs_level": lambda: plot_accuracy_vs_level(accuracy),
        "metric_vs_accuracy": lambda: plot_metric_vs_accuracy(metrics, accuracy, correlations),
        "sensitivity_heatmap": lambda: plot_sensitivity_heatmap(sensitivity),
        "accuracy_vs_params": lambda: plot_accuracy_vs_params(accuracy, dumps),
        "hierarchy_deviation": lambda: plot_hierarchy_deviation(metrics),
        "correlation_forest": lambda: plot_correlation_forest(correlations),
    }
    written = []
    for name in FIGURE_NAMES:
        written += save_figure(builders[name](), out_dir, name)
        say(f"wrote {out_dir / name}.png/.pdf")
    return written


def main(argv: list[str]) -> int:
    """``figures``: every figure from the tables and the dumps."""
    parser = step_parser(argv[0], "Write the paper's figures (PNG + PDF).", TABLES)
    parser.add_argument("--dumps", nargs="+", required=True, help="results/activations/*.h5")
    add_arguments(parser, ProbeSettings)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv[1:])
    make_figures(
        args.metrics,
        args.accuracy,
        args.correlations,
        args.sensitivity,
        args.dumps,
        args.out_dir,
        from_arguments(ProbeSettings, args).trajectory_layers,
    )
    return 0
