"""The report's Table 2 section: the pooled coefficients beside the paper's, their
confound-aware and influence columns, and the per-family scopes in one compact table."""

from __future__ import annotations

import math

import pandas as pd

from compreps.analysis.report.markdown import (
    fmt,
    fmt_p,
    markdown_table,
    span,
    text_cell,
    with_interval,
)
from compreps.analysis.report.paper_side import PAPER_NOTE, PaperCells
from compreps.core.vocabulary import COEFFICIENTS, PAPER_SCOPE, comparable_scope

SCOPE_TITLES = {
    "all": "all compressed models",
    PAPER_SCOPE: "the paper's three families (coreset, prune, quant), as its Table 2",
}


def _intro(config: dict) -> str:
    corr_cfg = config.get("correlation", {}) if isinstance(config, dict) else {}
    confidence = corr_cfg.get("confidence", "the configured")
    bootstrap = corr_cfg.get("bootstrap", "the configured number of")
    if isinstance(confidence, int | float):
        confidence = f"{float(confidence):.0%}"
    return (
        "## Table 2: correlation of each metric with accuracy\n\n"
        "**Sign convention:** every model-level metric is correlated with the compressed "
        "model's test accuracy, i.e. **minus its accuracy drop** (accuracy = base accuracy − "
        "drop; column `target` of correlations.csv): a similarity that falls as the drop grows "
        "gets a *positive* coefficient, a divergence a negative one. The paper's Table 2 is "
        "captioned 'with accuracy drop', yet its similarities are positive: its signs fit a "
        "correlation with accuracy, as here. The paper reports correlations over all 24 "
        "compressed models only. "
        f"Brackets: {confidence} bootstrap intervals over models ({bootstrap} resamples, "
        "scipy.stats.bootstrap): BCa where it is defined, else percentile (column CI). "
        "n = models used; excl. = models left out because the metric was NaN (a degenerate "
        "value is kept: it is a defined limit, docs/metrics.md).\n"
    )


def _main_rows(rows_scope: pd.DataFrame, paper: PaperCells, with_paper: bool) -> list:
    rows = []
    for _, row in rows_scope.iterrows():
        if not math.isfinite(float(row["plcc"])) and not text_cell(row.get("note")):
            continue
        paper_cells = [paper.cell(2, row["metric"], coef) for coef in COEFFICIENTS]
        rows.append(
            [
                row["metric"],
                f"{int(row['n'])} ({int(row['n_excluded'])})",
                with_interval(row, "plcc"),
                fmt_p(row["plcc_p"]),
                with_interval(row, "srcc"),
                with_interval(row, "krcc"),
                *(paper_cells if with_paper else []),
                text_cell(row.get("ci_method")),
                text_cell(row.get("note")),
            ]
        )
    return rows


def _scope_table(rows_scope, paper: PaperCells, scope: str, with_paper: bool) -> str:
    rows = _main_rows(rows_scope, paper, with_paper)
    if with_paper:
        missing = paper.missing_rows(2, rows_scope["metric"], 5, COEFFICIENTS)
        rows += [row + ["", ""] for row in missing]
    header = ["metric", "n (excl.)", "PLCC", "PLCC p", "SRCC", "KRCC"]
    header += ["paper PLCC", "paper SRCC", "paper KRCC"] if with_paper else []
    title = SCOPE_TITLES.get(scope, f"{scope} models only")
    return f"### Scope: {title}\n\n" + markdown_table([*header, "CI", "note"], rows) + "\n"


def confound_table(rows_scope: pd.DataFrame) -> str:
    """Pooled PLCC/SRCC beside their partial (family-controlled) counterparts, the granulated
    Kendall, the leave-one-family-out and leave-one-model-out ranges, and the influential
    models."""
    rows = []
    for _, row in rows_scope.iterrows():
        if not math.isfinite(float(row["plcc"])):
            continue
        rows.append(
            [
                row["metric"],
                fmt(row["plcc"]),
                fmt(row.get("plcc_partial", math.nan)),
                fmt(row["srcc"]),
                fmt(row.get("srcc_partial", math.nan)),
                fmt(row.get("krcc_granulated", math.nan)),
                span(row, "plcc_lofo_low", "plcc_lofo_high"),
                span(row, "plcc_lomo_low", "plcc_lomo_high"),
                text_cell(row.get("influence")),
            ]
        )
    header = ["metric", "PLCC", "partial PLCC", "SRCC", "partial SRCC", "granulated KRCC"]
    header += ["PLCC leave one family out", "PLCC leave one model out", "influence"]
    return (
        "### Confounds and influence\n\n"
        "Pooling families mixes between-family differences with the ordering within them. "
        "Partial PLCC/SRCC: the correlation after removing each family's mean (SRCC on pooled "
        "ranks); granulated KRCC: Kendall τ-b within each family of ≥ 3 models, averaged "
        "(Jiang et al. 2020); leave one family/model out: the range of PLCC over the "
        "recomputations; influence: the model whose removal moves a coefficient most, when by "
        "more than 0.1 or across 0.\n\n" + markdown_table(header, rows) + "\n"
    )


def family_table(correlations: pd.DataFrame, families: list[str]) -> str:
    """One compact table of the per-family scopes: PLCC (n) per metric and family; metrics
    with no coefficient in any family are left out."""
    frame = correlations[correlations["scope"].isin(families)]
    if frame.empty:
        return ""
    body = []
    for metric, group in frame.groupby("metric", sort=False):
        cells = {r["scope"]: f"{fmt(r['plcc'])} ({int(r['n'])})" for _, r in group.iterrows()}
        if all(cell.startswith("–") for cell in cells.values()):
            continue
        body.append([metric, *(cells.get(f, "") for f in families)])
    if not body:
        return (
            "### Per family\n\nNo family has a coefficient (each has fewer than 3 models or a "
            "constant column); correlations.csv lists the per-family rows.\n"
        )
    return (
        "### Per family: PLCC (n models)\n\n"
        "Within one family; fewer than 3 models or a constant column give no coefficient (–). "
        "Intervals and the other coefficients: correlations.csv.\n\n"
        + markdown_table(["metric", *families], body)
        + "\n"
    )


def correlation_section(correlations: pd.DataFrame, paper: PaperCells, config: dict) -> str:
    main = comparable_scope(correlations["scope"])
    parts = [_intro(config)]
    for scope in dict.fromkeys([main, "all"]):
        rows_scope = correlations[correlations["scope"] == scope]
        if not rows_scope.empty:
            parts.append(_scope_table(rows_scope, paper, scope, scope == main))
    parts.append(confound_table(correlations[correlations["scope"] == main]))
    families = [s for s in dict.fromkeys(correlations["scope"]) if s not in ("all", PAPER_SCOPE)]
    parts.append(family_table(correlations, families))
    parts.append(PAPER_NOTE + "\n")
    return "\n".join(part for part in parts if part)
