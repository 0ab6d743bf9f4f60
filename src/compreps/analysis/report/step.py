"""``results/seed-<seed>/report.md``: one seed's Tables 1-3 beside the paper's values, the
findings (each claim of the paper checked on this seed's run), the figures, the run
configuration and the software versions (``report`` step).

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

from compreps.analysis.paper.claims import PROTOCOL
from compreps.analysis.report.captions import CAPTIONS
from compreps.analysis.report.correlations_md import correlation_section
from compreps.analysis.report.evidence import Significance
from compreps.analysis.report.findings import findings
from compreps.analysis.report.markdown import fmt, markdown_table
from compreps.analysis.report.paper_side import (
    PAPER_NOTE,
    PaperCells,
    findings_section,
    run_scale,
    scale_section,
)
from compreps.analysis.tables import correct_predictions
from compreps.core.files import CompRepsError, atomic_write, log, read_table
from compreps.core.settings import step_parser
from compreps.core.vocabulary import (
    ACCURACY_COLUMNS,
    CORRELATION_COLUMNS,
    FIGURE_NAMES,
    FINDING_COLUMNS,
    METRIC_COLUMNS,
    MODEL_LAYER,
    SENSITIVITY_COLUMNS,
    SENSITIVITY_WEIGHT_COLUMNS,
)

PAPER_TITLE = (
    "T. Shinde, A. K. Sharma: *Do coresets, pruning, and quantization preserve neural "
    "network representations?* (two versions: 000, with GTFA and REPS; 001, REPS only; "
    "../shared/papers/)"
)
TABLES = ("accuracy", "correlations", "sensitivity", "metrics")  # results/tables/<name>.csv
SOFTWARE = ("torch", "numpy", "scipy", "pandas", "h5py", "matplotlib", "snakemake")
SUMMARY_METRICS = (
    "reps_weighted",
    "reps_equal",
    "gtfa",
    "cka_linear",
    "cka_debiased",
    "prediction_agreement",
    "weight_similarity",
)


def accuracy_section(accuracy: pd.DataFrame, paper: PaperCells) -> str:
    base = accuracy.loc[accuracy["model"] == "base", "accuracy"]
    base_acc = float(base.iloc[0]) if len(base) else math.nan
    has_interval = "accuracy_low" in accuracy.columns
    rows = []
    for _, row in accuracy.iterrows():
        interval = (
            f" [{fmt(row['accuracy_low'], 4)}, {fmt(row['accuracy_high'], 4)}]"
            if has_interval
            else ""
        )
        tuned = int(row.get("finetune_epochs", 0) or 0)
        rows.append(
            [
                row["model"] + (f" (fine-tuned {tuned} ep.)" if tuned else ""),
                row["family"],
                f"{float(row['level']):g}" if row["family"] != "base" else "–",
                fmt(row["accuracy"], 4) + interval,
                fmt(base_acc - float(row["accuracy"]), 4) if row["family"] != "base" else "–",
                paper.cell(1, row["model"], "accuracy"),
            ]
        )
    n_test = f"{int(accuracy['n_test'].iloc[0]):,} " if "n_test" in accuracy.columns else ""
    head = "accuracy [95% Wilson interval]" if has_interval else "accuracy"
    table = markdown_table(
        ["model", "family", "level", head, "drop (base − model)", "paper accuracy"], rows
    )
    return (
        f"## Table 1: test accuracy\n\nOn {n_test}test images; a drop smaller than the "
        "interval's half-width is not an effect.\n\n"
        + table
        + "\n\n"
        + paper.missing_line(1, accuracy["model"], "accuracy")
        + "\n"
        + PAPER_NOTE
        + "\n"
    )


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
        "REPS = w_e·s_e + w_alive·s_alive + w_s·s_s + w_d·s_d (000: the unnumbered sum after "
        "eq. 13; 001: eq. 9), recombined from the "
        "model-level components and correlated with accuracy (= −drop) over the compressed "
        "models of the paper's three families (coreset, prune, quant; all models when the run "
        f"has none of them), as the paper's Table 3; {len(grid)} points of the simplex grid "
        "were evaluated. The named rows are "
        "the paper's six weight configurations (Table 3 of its REPS version), except that "
        f"`weighted` takes this run's REPS weights {configured_weights(sensitivity)} "
        "(`metrics.reps.weights`, the `reps_weighted` metric; the paper's are "
        f"{PAPER_REPS_WEIGHTS}, {PROTOCOL['reps_weights'].source}). "
        "The paper's Table 3 prints PLCC only.\n\n" + table + "\n\n" + PAPER_NOTE + "\n"
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


PAPER_REPS_WEIGHTS = "(" + ", ".join(f"{w:g}" for w in PROTOCOL["reps_weights"].value) + ")"


def figures_section(figures: list[Path], out: Path, names=FIGURE_NAMES) -> str:
    """Links to the figure PNGs given (``--figures``) of the figures ``names``, each with its
    caption and PDF link."""
    given = {path.name: path for path in figures}
    lines = ["## Figures\n"]
    for name in names:
        caption = CAPTIONS[name]
        png = given.get(f"{name}.png")
        if png is None or not png.is_file():
            lines.append(f"- {caption} (*{name}.png was not written in this run*)\n")
            continue
        link = Path(os.path.relpath(png, out.parent)).as_posix()
        pdf = link[: -len(".png")] + ".pdf"
        lines.append(f"![{name}]({link})\n\n{caption} ([PDF]({pdf}))\n")
    return "\n".join(lines)


def replicate_line(config: dict) -> str:
    """The replicate seed of this report and the coreset models' initialisation."""
    train, coreset = config.get("train", {}), config.get("coreset", {})
    seeds = ", ".join(str(seed) for seed in train.get("seeds", [])) or "not recorded"
    init = coreset.get("init", "not recorded")
    return (
        f"Training seed {seeds} (`train.seeds`: the report across seeds is "
        f"`results/report.md`); coreset models' initial weights (`coreset.init`): {init}.\n"
    )


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
def testing_settings(config: dict) -> Significance:
    """How the findings test: the run's ``correlation`` confidence, bootstrap and seed."""
    section = config.get("correlation", {}) if isinstance(config, dict) else {}
    defaults = Significance()
    return Significance(
        confidence=float(section.get("confidence", defaults.confidence)),
        bootstrap=int(section.get("bootstrap", defaults.bootstrap)),
        seed=int(section.get("seed", defaults.seed)),
    )


def correctness(dumps) -> dict:
    """Model id -> per-image correctness, read on demand from the dumps given."""
    paths = {Path(path).stem: Path(path) for path in dumps or ()}
    cache: dict = {}

    def correct(model: str):
        if model not in cache:
            cache[model] = correct_predictions(paths[model])
        return cache[model]

    return correct


def balance_section(path: str | os.PathLike | None) -> str:
    """Class balance of each coreset selection: its smallest and largest class share beside
    the training set's, and the largest gap between the two."""
    if path is None:
        return ""
    table = pd.read_csv(path)
    rows = []
    for model, group in table.groupby("model", sort=False):
        gap = (group["share"] - group["train_share"]).abs().max()
        rows.append(
            [model, group["method"].iloc[0], int(group["count"].sum())]
            + [fmt(group["share"].min(), 3), fmt(group["share"].max(), 3)]
            + [fmt(group["train_share"].min(), 3), fmt(group["train_share"].max(), 3), fmt(gap, 3)]
        )
    head = ["selection", "method", "images", "min share", "max share"]
    head += ["training min", "training max", "largest gap"]
    return (
        "## Coreset selections: class balance\n\nShare of each class in every selection "
        "(`tables/coreset_balance.csv` beside this report has every class).\n\n"
        + markdown_table(head, rows)
        + "\n"
    )


def write_report(
    accuracy: str | os.PathLike,
    correlations: str | os.PathLike,
    sensitivity: str | os.PathLike,
    metrics: str | os.PathLike,
    figures: list[str | os.PathLike],
    config: dict,
    out: str | os.PathLike,
    dataset: str | os.PathLike | None = None,
    dumps: list[str | os.PathLike] | None = None,
    balance: str | os.PathLike | None = None,
    findings_out: str | os.PathLike | None = None,
) -> Path:
    """Write the Markdown report to ``out`` (atomically) and return its path. ``figures``: the
    figure files (PNG and PDF); ``dataset``: the ``prepare-data`` summary (training-set size
    for the scale banner; None: unknown); ``dumps``: the activation files (per-image
    predictions for the McNemar tests; None: those claims are not in this run); ``balance``: the
    coreset selections' class balance (``coreset-balance``; None: no coreset models);
    ``findings_out``: where to write each claim's verdict as a table (the ``seeds`` step
    combines the seeds' tables; None: not written)."""
    out = Path(out)
    paper = PaperCells()
    accuracy = read_table(accuracy, "accuracy table", ACCURACY_COLUMNS, leading=True)
    correlations = read_table(correlations, "correlation table", CORRELATION_COLUMNS)
    sensitivity = read_table(sensitivity, "sensitivity table", SENSITIVITY_COLUMNS)
    metrics = read_table(metrics, "metrics table", METRIC_COLUMNS)
    base = accuracy.loc[accuracy["model"] == "base", "accuracy"]
    scale = run_scale(config, dataset, float(base.iloc[0]) if len(base) else math.nan)
    found = findings(
        accuracy, correlations, sensitivity, scale, metrics, correctness(dumps),
        testing_settings(config),
    )  # fmt: skip
    sections = [
        "# compreps reproduction report\n",
        f"Reproduction of {PAPER_TITLE}. This run's numbers stand beside the paper's printed "
        "values for every row of Tables 1-3; correlations use the compressed models only.\n",
        replicate_line(config),
        scale_section(scale),
        accuracy_section(accuracy, paper),
        correlation_section(correlations, paper, config),
        sensitivity_section(sensitivity, paper),
        findings_section(found),
        balance_section(balance),
        metrics_section(metrics),
        figures_section([Path(f) for f in figures], out),
        environment_section(config),
        paper.section(),
    ]
    text = "\n".join(section for section in sections if section)
    if findings_out is not None:
        write_findings_table(found, findings_out)
    with atomic_write(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out


def write_findings_table(found, out: str | os.PathLike) -> None:
    """Each claim's verdict, its deciding numbers and its test (:data:`FINDING_COLUMNS`)."""
    table = pd.DataFrame(
        [[item.id, item.claim, item.verdict, item.run, item.reason] for item in found],
        columns=list(FINDING_COLUMNS),
    )
    with atomic_write(out) as tmp:
        table.to_csv(tmp, index=False)


def read_config_json(text: str) -> dict:
    """The run configuration given as ``--config-json``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CompRepsError(f"--config-json is not valid JSON: {err}") from err


def main(argv: list[str]) -> int:
    """``report``: write one seed's report.md from the tables, figures and config."""
    parser = step_parser(argv[0], "Write the Markdown reproduction report.", TABLES)
    parser.add_argument("--figures", nargs="+", required=True, help="results/figures/*.png|pdf")
    parser.add_argument("--config-json", required=True, help="the run configuration as JSON")
    parser.add_argument("--dataset", help="the prepare-data summary (results/data/dataset.json)")
    parser.add_argument("--dumps", nargs="*", help="results/activations/*.h5 (McNemar tests)")
    parser.add_argument("--coreset-balance", nargs="*", help="results/tables/coreset_balance.csv")
    parser.add_argument("--findings-out", help="results/seed-<seed>/tables/findings.csv")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    config = read_config_json(args.config_json)
    path = write_report(
        args.accuracy,
        args.correlations,
        args.sensitivity,
        args.metrics,
        args.figures,
        config,
        args.out,
        args.dataset,
        args.dumps,
        (args.coreset_balance or [None])[0],
        args.findings_out,
    )
    log(f"report: wrote {path}")
    return 0
