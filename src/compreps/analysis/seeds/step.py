"""The ``seeds`` step: the across-seed summary of replicate runs (``train.seeds``).

Each seed is a whole replicate of the study under ``results/seed-<seed>/``; this step reads
every seed's tables (accuracy, metrics, correlations, sensitivity, findings) and report, and
writes the across-seed tables (:mod:`compreps.analysis.seeds.spread`: mean, sample sd, min,
max over the seeds; :mod:`compreps.analysis.seeds.verdicts`: the combined verdicts), the
figures of :data:`~compreps.core.vocabulary.SEED_FIGURE_NAMES`
(:mod:`compreps.analysis.seeds.figures`) and the across-seed report
(:mod:`compreps.analysis.seeds.report`). Every per-seed list is given in the order of
``--seeds``; every output is written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from compreps.analysis.figures.style import save_figure
from compreps.analysis.report.step import read_config_json
from compreps.analysis.seeds.figures import (
    plot_correlation_spread,
    plot_seeds_accuracy_vs_level,
    plot_seeds_metric_vs_accuracy,
)
from compreps.analysis.seeds.report import seeds_report
from compreps.analysis.seeds.spread import (
    accuracy_spread,
    correlation_spread,
    correlation_values,
    sensitivity_spread,
    sensitivity_values,
)
from compreps.analysis.seeds.verdicts import combine_findings
from compreps.core.files import CompRepsError, atomic_write, log, read_table, write_csv
from compreps.core.settings import step_parser
from compreps.core.vocabulary import (
    ACCURACY_COLUMNS,
    CORRELATION_COLUMNS,
    FINDING_COLUMNS,
    METRIC_COLUMNS,
    SENSITIVITY_COLUMNS,
    comparable_scope,
)

# option -> (what, columns, columns only lead, the rule that writes the table)
TABLES = {
    "accuracy": ("accuracy table", ACCURACY_COLUMNS, True, "accuracy_table"),
    "metrics": ("metrics table", METRIC_COLUMNS, False, "metrics_table"),
    "correlations": ("correlation table", CORRELATION_COLUMNS, False, "correlations"),
    "sensitivity": ("sensitivity table", SENSITIVITY_COLUMNS, False, "sensitivity"),
    "findings": ("findings table", FINDING_COLUMNS, False, "report"),
}
OUTPUTS = ("accuracy", "correlations", "sensitivity", "findings")  # --out-<name>


@dataclass(frozen=True)
class SeedInputs:
    """Every seed's tables and report, ``{seed: ...}`` in the order of the seeds."""

    accuracy: dict
    metrics: dict
    correlations: dict
    sensitivity: dict
    findings: dict
    reports: dict


@dataclass(frozen=True)
class Summaries:
    """The across-seed tables; ``*_values``: every seed's coefficients, long format."""

    accuracy: pd.DataFrame
    correlations: pd.DataFrame
    correlation_values: pd.DataFrame
    sensitivity: pd.DataFrame
    sensitivity_values: pd.DataFrame
    findings: pd.DataFrame
    scope: str  # the correlation scope set beside the paper's Table 2


def by_seed(seeds: list[int], paths: list[str], option: str) -> dict:
    """``{seed: path}``; a list whose length differs from the seeds' is an error."""
    if len(paths) != len(seeds):
        raise CompRepsError(
            f"--{option} lists {len(paths)} file(s) for {len(seeds)} seed(s) "
            f"({', '.join(map(str, seeds))}): give one per seed, in the order of --seeds"
        )
    return dict(zip(seeds, paths, strict=True))


def read_inputs(seeds: list[int], paths: dict[str, list[str]]) -> SeedInputs:
    """Read every seed's tables (``paths``: option -> files in the order of ``seeds``) and
    check that its report exists."""
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise CompRepsError(f"--seeds lists seed(s) {', '.join(map(str, twice))} twice")
    tables = {}
    for option, (what, columns, leading, rule) in TABLES.items():
        tables[option] = {
            seed: read_table(path, f"seed {seed}'s {what}", columns, rule, leading)
            for seed, path in by_seed(seeds, paths[option], option).items()
        }
    reports = {seed: Path(p) for seed, p in by_seed(seeds, paths["reports"], "reports").items()}
    missing = [f"{path} (seed {seed})" for seed, path in reports.items() if not path.is_file()]
    if missing:
        raise CompRepsError(f"report(s) {', '.join(missing)} do not exist (rule 'report')")
    return SeedInputs(**tables, reports=reports)


def summarise_seeds(inputs: SeedInputs) -> Summaries:
    correlations = correlation_values(inputs.correlations)
    sensitivity = sensitivity_values(inputs.sensitivity)
    scopes = pd.concat(inputs.correlations.values())["scope"]
    return Summaries(
        accuracy=accuracy_spread(inputs.accuracy),
        correlations=correlation_spread(correlations),
        correlation_values=correlations,
        sensitivity=sensitivity_spread(sensitivity),
        sensitivity_values=sensitivity,
        findings=combine_findings(inputs.findings),
        scope=comparable_scope(scopes),
    )


def write_figures(inputs: SeedInputs, summaries: Summaries, out_dir: Path) -> list[Path]:
    seeds = list(inputs.accuracy)
    figures = {
        "seeds_accuracy_vs_level": lambda: plot_seeds_accuracy_vs_level(
            inputs.accuracy, summaries.accuracy
        ),
        "seeds_correlation_spread": lambda: plot_correlation_spread(
            summaries.correlation_values, seeds, summaries.scope
        ),
        "seeds_metric_vs_accuracy": lambda: plot_seeds_metric_vs_accuracy(
            inputs.metrics, inputs.accuracy, summaries.correlation_values, summaries.scope
        ),
    }
    written = []
    for name, draw in figures.items():
        written += save_figure(draw(), out_dir, name)
        log(f"seeds: wrote {out_dir / name}.png/.pdf")
    return written


def main(argv: list[str]) -> int:
    """``seeds``: the across-seed tables, figures and report from every seed's outputs."""
    parser = step_parser(argv[0], "Summarise the replicate seeds: spread, verdicts, figures.")
    parser.add_argument("--seeds", nargs="+", type=int, required=True, help="train.seeds")
    for option in [*TABLES, "reports"]:
        where = "report.md" if option == "reports" else f"tables/{option}.csv"
        parser.add_argument(
            f"--{option}",
            nargs="+",
            required=True,
            help=f"results/seed-<seed>/{where} of every seed, in the order of --seeds",
        )
    parser.add_argument("--config-json", required=True, help="the run configuration as JSON")
    for name in OUTPUTS:
        parser.add_argument(f"--out-{name}", required=True, help=f"results/tables/seeds_{name}.csv")
    parser.add_argument("--figures-dir", required=True, help="results/figures")
    parser.add_argument("--out", required=True, help="results/report.md")
    args = parser.parse_args(argv[1:])
    config = read_config_json(args.config_json)
    inputs = read_inputs(args.seeds, {o: getattr(args, o) for o in [*TABLES, "reports"]})
    summaries = summarise_seeds(inputs)
    for name in OUTPUTS:
        write_csv(getattr(summaries, name), getattr(args, f"out_{name}"))
    figures = write_figures(inputs, summaries, Path(args.figures_dir))
    out = Path(args.out)
    text = seeds_report(inputs, summaries, config, figures, out)
    with atomic_write(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log(f"seeds: {len(args.seeds)} seed(s) -> {out}")
    return 0
