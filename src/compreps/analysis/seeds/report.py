"""``results/report.md`` across seeds: what a seed replicates, the coreset initialisation, the
verdict combination rule (:mod:`compreps.analysis.seeds.verdicts`), every model's accuracy and
every Table 2 metric's coefficients per seed with their spread, Table 3's named configurations,
the combined findings, the across-seed figures and links to each seed's own report."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from compreps.analysis.figures.correlations import table2_metrics
from compreps.analysis.report.markdown import fmt, markdown_table
from compreps.analysis.report.step import figures_section
from compreps.analysis.seeds.spread import spread
from compreps.analysis.seeds.verdicts import RULE
from compreps.core.vocabulary import SEED_FIGURE_NAMES

CORESET_INIT = {
    "shared": "**shared**: every coreset model starts from its seed's base initial weights (the "
    "paper's reading: one seed for every model)",
    "independent": "**independent**: every coreset model starts from an initialisation of its "
    "own (derived from the seed and the model id)",
}
NOT_RECORDED = "not recorded (the configuration has no `coreset.init`)"


def seed_cell(seed) -> str:
    return f"seed {seed}"


def mean_sd(mean, sd, digits: int = 4) -> str:
    return fmt(mean, digits) if fmt(sd) == "–" else f"{fmt(mean, digits)} ± {fmt(sd, digits)}"


def span(low, high, n_seeds: int, digits: int = 4) -> str:
    """``[min, max]`` over the seeds; ``–`` with fewer than two (no spread to show)."""
    return "–" if n_seeds < 2 else f"[{fmt(low, digits)}, {fmt(high, digits)}]"


def intro(seeds, config: dict) -> str:
    init = config.get("coreset", {}).get("init") if isinstance(config, dict) else None
    one = (
        "\n\n**One seed:** training noise is not measured (one seed), so the spread columns "
        "(sd, range) are empty and every combined verdict is that seed's own."
        if len(seeds) == 1
        else ""
    )
    return (
        "# compreps reproduction report across seeds\n\n"
        f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)} replicate"
        f"{'' if len(seeds) == 1 else 's'}). A seed is one whole replicate of the study: "
        "its base model's training (initial weights, data order, augmentation), its random "
        "coreset selections and coreset models, every compressed model made from its base, "
        "their dumps, metrics and tables (`results/seed-<seed>/`); the rest of the "
        "configuration is the same for every seed. Across seeds: mean, sample standard "
        "deviation (sd, ddof = 1) and range [min, max] of each seed's value; a seed without "
        "a value (an undefined coefficient) is not counted.\n\n"
        f"Coreset initialisation (`coreset.init`): "
        f"{CORESET_INIT.get(init, NOT_RECORDED if init is None else f'`{init}`')}.\n\n"
        f"**Verdicts across seeds:** {RULE}{one}\n"
    )


def accuracy_section(accuracy: dict, summary: pd.DataFrame) -> str:
    per_seed = {
        seed: table.drop_duplicates("model").set_index("model")["accuracy"]
        for seed, table in accuracy.items()
    }
    rows = []
    for _, row in summary.iterrows():
        cells = [fmt(per_seed[seed].get(row["model"], float("nan")), 4) for seed in accuracy]
        rows.append(
            [row["model"], row["family"], *cells, row["n_seeds"]]
            + [mean_sd(row["accuracy_mean"], row["accuracy_sd"])]
            + [span(row["accuracy_min"], row["accuracy_max"], row["n_seeds"])]
            + [mean_sd(row["drop_mean"], row["drop_sd"])]
        )
    head = ["model", "family", *map(seed_cell, accuracy), "seeds", "mean ± sd", "[min, max]"]
    return (
        "## Test accuracy on every seed\n\n"
        "`tables/seeds_accuracy.csv`; drop = the seed's base accuracy − the model's.\n\n"
        + markdown_table([*head, "drop mean ± sd"], rows)
        + "\n"
    )


def coefficient_table(values: pd.DataFrame, key: str, names: list[str], seeds, coef: str) -> str:
    """One row per entry of ``names`` (values of column ``key`` of the long format of
    :func:`~compreps.analysis.seeds.spread.per_seed_values`): each seed's ``coef`` and its
    :func:`~compreps.analysis.seeds.spread.spread` over the seeds."""
    frame = values[values["quantity"] == coef]
    table = frame.pivot_table(index=key, columns="seed", values="value", dropna=False)
    table = table.reindex(index=names, columns=list(seeds))
    rows = []
    for name, row in table.iterrows():
        stats = spread(row.to_numpy(float))
        n = stats["n_seeds"]
        low, high = (fmt(stats[end]) if n > 1 else "–" for end in ("min", "max"))
        rows.append([name, *map(fmt, row), n, fmt(stats["mean"]), fmt(stats["sd"]), low, high])
    head = [key, *map(seed_cell, seeds), "seeds", "mean", "sd", "min", "max"]
    return markdown_table(head, rows)


def correlation_section(values: pd.DataFrame, seeds, scope: str) -> str:
    frame = values[values["scope"] == scope]
    paper = table2_metrics(frame)  # the paper's rows first, then the run's other metrics
    names = paper + [name for name in dict.fromkeys(frame["metric"]) if name not in paper]
    if not names:
        return "## Table 2 across seeds\n\nNo Table 2 metric in the seeds' correlation tables.\n"
    parts = [
        "## Table 2 across seeds\n\n"
        f"Each metric's coefficient with accuracy (= −drop) over the models of scope "
        f"`{scope}` (the scope set beside the paper), on every seed (`tables/"
        "seeds_correlations.csv` has every scope and the partial coefficients).\n"
    ]
    for coef in ("plcc", "srcc"):
        table = coefficient_table(frame, "metric", names, seeds, coef)
        parts.append(f"### {coef.upper()}\n\n{table}\n")
    return "\n".join(parts)


def sensitivity_section(values: pd.DataFrame, seeds) -> str:
    configs = list(dict.fromkeys(values["config"]))
    if not configs:
        return ""
    table = coefficient_table(values, "config", configs, seeds, "plcc")
    return (
        "## Table 3 across seeds: PLCC of the named REPS configurations\n\n"
        "`tables/seeds_sensitivity.csv` has SRCC and KRCC too.\n\n" + table + "\n"
    )


def findings_section(combined: pd.DataFrame, findings: dict) -> str:
    verdicts = {
        seed: table.set_index("id")["verdict"].to_dict() for seed, table in findings.items()
    }
    rows = [
        [row["id"], row["claim"]]
        + [verdicts[seed].get(row["id"], "not in this run") for seed in findings]
        + [f"**{row['verdict']}**", row["reason"]]
        for _, row in combined.iterrows()
    ]
    head = ["claim", "statement", *map(seed_cell, findings), "across seeds", "why"]
    return (
        "## Findings across seeds\n\n"
        "Each seed's own verdict (its report states the test and the deciding numbers) and the "
        "combined verdict (rule above; `tables/seeds_findings.csv`).\n\n"
        + markdown_table(head, rows)
        + "\n"
    )


def seed_reports_section(reports: dict, out: Path) -> str:
    links = {
        seed: Path(os.path.relpath(path, out.parent)).as_posix() for seed, path in reports.items()
    }
    lines = [f"- seed {seed}: [{link}]({link})" for seed, link in links.items()]
    return "## Each seed's full report\n\n" + "\n".join(lines) + "\n"


def seeds_report(inputs, summaries, config: dict, figures: list[Path], out: Path) -> str:
    """The report's text. ``inputs``: the per-seed tables and reports (``step.SeedInputs``);
    ``summaries``: the across-seed tables (``step.Summaries``)."""
    seeds = list(inputs.accuracy)
    sections = [
        intro(seeds, config),
        accuracy_section(inputs.accuracy, summaries.accuracy),
        correlation_section(summaries.correlation_values, seeds, summaries.scope),
        sensitivity_section(summaries.sensitivity_values, seeds),
        findings_section(summaries.findings, inputs.findings),
        figures_section(figures, out, SEED_FIGURE_NAMES),
        seed_reports_section(inputs.reports, out),
    ]
    return "\n".join(section for section in sections if section)
