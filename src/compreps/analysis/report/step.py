"""``results/report.md``: this run's Tables 1-3 beside the paper's values, the findings (each
claim of the paper checked on this run), the figures, the run configuration and the software
versions (``report`` step).

The paper's values come from :mod:`compreps.analysis.paper` (every printed cell of both versions,
with
its source); a cell the paper does not print reads "not in the paper". The paper side of the
report (cells, sources, scale banner, findings) is :mod:`compreps.analysis.report.paper_side`.
"""

from __future__ import annotations

import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from compreps.analysis.report.findings import findings
from compreps.analysis.report.paper_side import (
    PAPER_NOTE,
    PaperCells,
    findings_section,
    run_scale,
    scale_section,
)
from compreps.core.files import CompRepsError, atomic_write, log, read_table
from compreps.core.settings import step_parser
from compreps.core.vocabulary import (
    ACCURACY_COLUMNS,
    COEFFICIENTS,
    CORRELATION_COLUMNS,
    FIGURE_NAMES,
    METRIC_COLUMNS,
    MODEL_LAYER,
    PAPER_SCOPE,
    SCOPES,
    SENSITIVITY_COLUMNS,
    SENSITIVITY_WEIGHT_COLUMNS,
    comparable_scope,
)

PAPER_TITLE = (
    "T. Shinde, A. K. Sharma: *Do coresets, pruning, and quantization preserve neural "
    "network representations?* GRaM workshop at ICLR 2026 (PMLR vol. 326)"
)
TABLES = ("accuracy", "correlations", "sensitivity", "metrics")  # results/tables/<name>.csv
SOFTWARE = ("torch", "numpy", "scipy", "pandas", "h5py", "matplotlib", "snakemake")
# {weights} is filled with the configured REPS weights (sensitivity table, row "weighted")
CAPTIONS = {
    "accuracy_vs_params": "Test accuracy against the fraction of the base's parameters kept, "
    "one line per family (star: base); coreset, quantization and pruning keep the dense shape "
    "(points at 1), pruning also dashed at its measured non-zero Conv2d/Linear weight fraction.",
    "hierarchy_deviation": "Hidden, logit and probability deviation from the base (1 − cos on "
    "the probe set, study 004; probability space at τ = 1 where the run has it) against each "
    "family's level, log y.",
    "fig1_weight_histograms": "Fig. 1: weight histograms (all Conv2d + Linear weights) of ORG, "
    "C50, P50 and Q4, 256 bins, log counts.",
    "fig2_representations": "Fig. 2: effective rank at FC, dead-unit fraction and class "
    "separation per layer, FC class separation vs prediction agreement, eigenvalue decay at FC "
    "(divided by the largest), and the "
    "REPS, GTFA and linear-CKA trajectories over L1-L4, FC for ORG, C50, C10, P50, P90, "
    "Q4, Q2.",
    "accuracy_vs_level": "Test accuracy against compression level per family; the dashed line "
    "is the base model (ORG).",
    "metric_vs_accuracy": "REPS (weighted), GTFA, prediction agreement and weight similarity "
    "against accuracy for every compressed model, coloured by family (crosses: degenerate).",
    "sensitivity_heatmap": "PLCC of REPS recombined with simplex-grid weights, over "
    "(w_separation, w_decay); left the best, right the worst PLCC over every split of the "
    "remaining weight between w_effective_rank and w_alive. Star: the configured weights "
    "{weights}; circle: equal weights.",
}
SUMMARY_METRICS = (
    "reps_weighted",
    "reps_equal",
    "gtfa",
    "cka_linear",
    "prediction_agreement",
    "weight_similarity",
)


# --------------------------------------------------------------------------- formatting
def fmt(value, digits: int = 3) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def fmt_p(value) -> str:
    value = float(value)
    if math.isnan(value):
        return "–"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def with_interval(row, coef: str) -> str:
    point = fmt(row[coef])
    if point == "–":
        return point
    return f"{point} [{fmt(row[f'{coef}_low'])}, {fmt(row[f'{coef}_high'])}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- sections
def accuracy_section(accuracy: pd.DataFrame, paper: PaperCells) -> str:
    base = accuracy.loc[accuracy["model"] == "base", "accuracy"]
    base_acc = float(base.iloc[0]) if len(base) else math.nan
    rows = []
    for row in accuracy.itertuples(index=False):
        drop = base_acc - float(row.accuracy)
        rows.append(
            [
                row.model,
                row.family,
                f"{float(row.level):g}" if row.family != "base" else "–",
                fmt(row.accuracy, 4),
                fmt(drop, 4) if row.family != "base" else "–",
                paper.cell(1, row.model, "accuracy"),
            ]
        )
    rows += paper.missing_rows(1, accuracy["model"], 4, ("accuracy",))
    table = markdown_table(
        ["model", "family", "level", "accuracy", "drop (base − model)", "paper accuracy"], rows
    )
    return "## Table 1: test accuracy\n\n" + table + "\n\n" + PAPER_NOTE + "\n"


def correlation_section(correlations: pd.DataFrame, paper: PaperCells, config: dict) -> str:
    corr_cfg = config.get("correlation", {}) if isinstance(config, dict) else {}
    confidence = corr_cfg.get("confidence", "the configured")
    bootstrap = corr_cfg.get("bootstrap", "the configured number of")
    level = f"{float(confidence):.0%}" if isinstance(confidence, int | float) else confidence
    parts = [
        "## Table 2: correlation of each metric with accuracy\n",
        "**Sign convention:** every model-level metric is correlated with the compressed "
        "model's test accuracy, i.e. **minus its accuracy drop** (accuracy = base accuracy − "
        "drop): a similarity that falls as the drop grows gets a *positive* coefficient, a "
        "divergence a negative one. The paper's Table 2 is captioned 'with accuracy drop', yet "
        "its similarities are positive: its signs fit a correlation with accuracy, as here. "
        "The paper reports correlations over all 24 compressed models only: the per-family "
        "scopes have no paper columns. "
        f"Brackets: {level} bootstrap intervals over models ({bootstrap} resamples, "
        "scipy.stats.bootstrap): BCa where it is defined, else percentile (column CI). "
        "n = models used; excl. = models left out because the metric was NaN (a degenerate "
        "value is kept: it is a defined limit, docs/metrics.md). Fewer than 3 models or a "
        "constant column give no coefficient (–); the note says why.\n",
    ]
    paper_scope = comparable_scope(correlations["scope"])
    for scope in SCOPES:
        rows_scope = correlations[correlations["scope"] == scope]
        if rows_scope.empty:
            continue
        rows = []
        for _, row in rows_scope.iterrows():
            paper_cells = [paper.cell(2, row["metric"], coef) for coef in COEFFICIENTS]
            rows.append(
                [
                    row["metric"],
                    f"{int(row['n'])} ({int(row['n_excluded'])})",
                    with_interval(row, "plcc"),
                    fmt_p(row["plcc_p"]),
                    with_interval(row, "srcc"),
                    with_interval(row, "krcc"),
                    *(paper_cells if scope == paper_scope else []),
                    text_cell(row.get("ci_method")),
                    text_cell(row.get("note")),
                ]
            )
        if scope == paper_scope:
            missing = paper.missing_rows(2, rows_scope["metric"], 5, COEFFICIENTS)
            rows += [row + ["", ""] for row in missing]
        title = SCOPE_TITLES.get(scope, f"{scope} models only")
        parts.append(f"### Scope: {title}\n")
        parts.append(
            markdown_table(
                ["metric", "n (excl.)", "PLCC", "PLCC p", "SRCC", "KRCC"]
                + (["paper PLCC", "paper SRCC", "paper KRCC"] if scope == paper_scope else [])
                + ["CI", "note"],
                rows,
            )
            + "\n"
        )
    parts.append(PAPER_NOTE + "\n")
    return "\n".join(parts)


SCOPE_TITLES = {
    "all": "all compressed models",
    PAPER_SCOPE: "the paper's three families (coreset, prune, quant), as its Table 2",
}


def text_cell(value) -> str:
    """A CSV text cell for the markdown table: empty (NaN) becomes blank."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def configured_weights(sensitivity: pd.DataFrame) -> str:
    """The configured REPS weights, as Table 3's ``weighted`` row records them."""
    row = sensitivity[sensitivity["config"] == "weighted"]
    if row.empty:
        return "(not in the sensitivity table)"
    return "(" + ", ".join(f"{w:g}" for w in row.iloc[0][list(SENSITIVITY_WEIGHT_COLUMNS)]) + ")"


def sensitivity_section(sensitivity: pd.DataFrame, paper: PaperCells) -> str:
    named = sensitivity[sensitivity["config"] != "grid"]
    grid = sensitivity[sensitivity["config"] == "grid"]
    rows = [row for _, row in named.iterrows()]
    if grid["plcc"].notna().any():
        best = grid.loc[grid["plcc"].idxmax()].copy()
        best["config"] = "best grid point (max PLCC)"
        rows.append(best)
    body = [
        [
            row["config"],
            fmt(row["w_effective_rank"], 2),
            fmt(row["w_alive"], 2),
            fmt(row["w_separation"], 2),
            fmt(row["w_decay"], 2),
            int(row["n"]),
            fmt(row["plcc"]),
            fmt(row["srcc"]),
            fmt(row["krcc"]),
            paper.cell(3, row["config"], "plcc"),
        ]
        for row in rows
    ]
    body += paper.missing_rows(3, named["config"], 8, ("plcc",))
    table = markdown_table(
        [
            "configuration",
            "w_e",
            "w_alive",
            "w_s",
            "w_d",
            "n",
            "PLCC",
            "SRCC",
            "KRCC",
            "paper PLCC",
        ],
        body,
    )
    return (
        "## Table 3: sensitivity of REPS to its component weights\n\n"
        "REPS = w_e·s_e + w_alive·s_alive + w_s·s_s + w_d·s_d (eq. 13), recombined from the "
        "model-level components and correlated with accuracy (= −drop) over the compressed "
        "models of the paper's three families (coreset, prune, quant; all models when the run "
        f"has none of them), as the paper's Table 3; {len(grid)} points of the simplex grid "
        "were evaluated. The named rows are "
        "the paper's six weight configurations (Table 3 of its REPS version), except that "
        f"`weighted` takes this run's REPS weights {configured_weights(sensitivity)} "
        "(`metrics.reps.weights`, the `reps_weighted` metric; the paper's are (0.15, 0.05, "
        "0.35, 0.45)). The paper's Table 3 prints PLCC only.\n\n"
        + table
        + "\n\n"
        + PAPER_NOTE
        + "\n"
    )


def metrics_section(metrics: pd.DataFrame) -> str:
    rows = metrics[(metrics["layer"] == MODEL_LAYER) & metrics["metric"].isin(SUMMARY_METRICS)]
    if rows.empty:
        return ""
    wide = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    order = list(dict.fromkeys(metrics["model"]))
    wide = wide.reindex(
        index=[m for m in order if m in wide.index],
        columns=[m for m in SUMMARY_METRICS if m in wide.columns],
    )
    body = [[model, *(fmt(v) for v in values)] for model, values in wide.iterrows()]
    return (
        "## Model-level metrics (averaged over the metric layers)\n\n"
        + markdown_table(["model", *wide.columns], body)
        + "\n"
    )


def figures_section(figures: list[Path], out: Path, weights: str) -> str:
    """Links to the figure PNGs given (``--figures``), each with its caption and PDF link."""
    given = {path.name: path for path in figures}
    lines = ["## Figures\n"]
    for name in FIGURE_NAMES:
        caption = CAPTIONS[name].format(weights=weights)
        png = given.get(f"{name}.png")
        if png is None or not png.is_file():
            lines.append(f"- {caption} (*{name}.png was not written in this run*)\n")
            continue
        link = Path(os.path.relpath(png, out.parent)).as_posix()
        pdf = link[: -len(".png")] + ".pdf"
        lines.append(f"![{name}]({link})\n\n{caption} ([PDF]({pdf}))\n")
    return "\n".join(lines)


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in SOFTWARE:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def environment_section(config: dict) -> str:
    versions = markdown_table(
        ["software", "version"], [[k, v] for k, v in software_versions().items()]
    )
    return (
        "## Configuration of this run\n\n```json\n"
        + json.dumps(config, indent=2, sort_keys=True)
        + "\n```\n\n"
        "## Software versions\n\n" + versions + "\n"
    )


# --------------------------------------------------------------------------- entry points
def write_report(
    accuracy: str | os.PathLike,
    correlations: str | os.PathLike,
    sensitivity: str | os.PathLike,
    metrics: str | os.PathLike,
    figures: list[str | os.PathLike],
    config: dict,
    out: str | os.PathLike,
    dataset: str | os.PathLike | None = None,
) -> Path:
    """Write the Markdown report to ``out`` (atomically) and return its path. ``figures``: the
    figure files (PNG and PDF); ``dataset``: the ``prepare-data`` summary (training-set size
    for the scale banner; None: unknown)."""
    out = Path(out)
    paper = PaperCells()
    accuracy = read_table(accuracy, "accuracy table", ACCURACY_COLUMNS, leading=True)
    correlations = read_table(correlations, "correlation table", CORRELATION_COLUMNS)
    sensitivity = read_table(sensitivity, "sensitivity table", SENSITIVITY_COLUMNS)
    base = accuracy.loc[accuracy["model"] == "base", "accuracy"]
    scale = run_scale(config, dataset, float(base.iloc[0]) if len(base) else math.nan)
    sections = [
        "# compreps reproduction report\n",
        f"Reproduction of {PAPER_TITLE}. This run's numbers stand beside the paper's printed "
        "values for every row of Tables 1-3; correlations use the compressed models only.\n",
        scale_section(scale),
        accuracy_section(accuracy, paper),
        correlation_section(correlations, paper, config),
        sensitivity_section(sensitivity, paper),
        findings_section(findings(accuracy, correlations, sensitivity, scale)),
        metrics_section(read_table(metrics, "metrics table", METRIC_COLUMNS)),
        figures_section([Path(f) for f in figures], out, configured_weights(sensitivity)),
        environment_section(config),
        paper.section(),
    ]
    text = "\n".join(section for section in sections if section)
    with atomic_write(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out


def main(argv: list[str]) -> int:
    """``report``: write results/report.md from the tables, figures and config."""
    parser = step_parser(argv[0], "Write the Markdown reproduction report.", TABLES)
    parser.add_argument("--figures", nargs="+", required=True, help="results/figures/*.png|pdf")
    parser.add_argument("--config-json", required=True, help="the run configuration as JSON")
    parser.add_argument("--dataset", help="the prepare-data summary (results/data/dataset.json)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    try:
        config = json.loads(args.config_json)
    except json.JSONDecodeError as err:
        raise CompRepsError(f"--config-json is not valid JSON: {err}") from err
    path = write_report(
        args.accuracy,
        args.correlations,
        args.sensitivity,
        args.metrics,
        args.figures,
        config,
        args.out,
        args.dataset,
    )
    log(f"report: wrote {path}")
    return 0
