"""The report's paper side: the paper's value of each table cell (from
:mod:`compreps.analysis.paper`,
with its source), the scale of this run against the paper's protocol, and the findings section
(:mod:`compreps.analysis.report.findings`)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from compreps.analysis.paper import PAPER_FILES, paper_value, paper_values
from compreps.analysis.paper.claims import PROTOCOL
from compreps.analysis.report.findings import RULES, Finding, Scale
from compreps.analysis.report.markdown import markdown_table
from compreps.core.files import CompRepsError

NOT_IN_PAPER = "not in the paper"
NOT_IN_RUN = "not in this run"
PAPER_NOTE = (
    f"*{NOT_IN_PAPER}* = neither version of the paper prints a value for this cell. Paper "
    "values are as printed (4 decimals); where the two versions (000, 001) differ both are shown, "
    "each with its version. Sources: section *Sources of the paper's values*."
)


class PaperCells:
    """Formats the paper's value of a cell and remembers the source of every value shown."""

    def __init__(self) -> None:
        self.shown: dict[tuple[int, str, str], list] = {}

    def cell(self, table: int, key: str, column: str) -> str:
        entries = paper_value(table, key, column)
        if not entries:
            return NOT_IN_PAPER
        self.shown[(table, key, column)] = entries
        if len(entries) == 1:
            return f"{entries[0][0]:.4f}"
        return " / ".join(f"{value:.4f} ({source[:3]})" for value, source in entries)

    def missing_rows(self, table: int, present, width: int, columns: tuple) -> list[list[str]]:
        """Rows for the paper's keys of ``table`` that this run lacks: the key, ``width``
        cells "not in this run", then the paper's ``columns``."""
        return [
            [key, *[NOT_IN_RUN] * width, *(self.cell(table, key, c) for c in columns)]
            for key in self.missing_keys(table, present)
        ]

    def missing_keys(self, table: int, present) -> list[str]:
        frame = paper_values()
        keys = frame.loc[(frame["table"] == table) & (frame["key"] != ""), "key"]
        return [key for key in dict.fromkeys(keys) if key not in set(present)]

    def missing_line(self, table: int, present, column: str) -> str:
        """One line naming the paper's rows of ``table`` this run lacks, each with the paper's
        ``column`` value (instead of table rows of "not in this run")."""
        keys = self.missing_keys(table, present)
        if not keys:
            return ""
        cells = ", ".join(f"{key} {self.cell(table, key, column)}" for key in keys)
        return f"Paper rows {NOT_IN_RUN} (paper {column}): {cells}.\n"

    def section(self) -> str:
        files = "; ".join(f"{paper} = `papers/{name}`" for paper, name in PAPER_FILES.items())
        lines = [
            "## Sources of the paper's values\n",
            f"Full texts: {files} (000: the GTFA + REPS version, 001: the REPS version; "
            "`compreps/analysis/paper/values.csv` holds every printed cell).\n",
        ]
        for (table, key, column), entries in sorted(self.shown.items()):
            for value, source in entries:
                lines.append(f"- Table {table}, `{key}`, {column}: {value:.4f} — {source}")
        return "\n".join(lines) + "\n"


def run_scale(config: dict, dataset: str | os.PathLike | None, base_accuracy: float) -> Scale:
    """This run's :class:`Scale` from its config and ``prepare-data`` summary (optional)."""
    summary = {}
    if dataset is not None:
        try:
            summary = json.loads(Path(dataset).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CompRepsError(
                f"data summary {dataset} is unreadable ({type(err).__name__}: {err}); "
                "rule 'prepare_data' rebuilds it"
            ) from err
    model, train = config.get("model", {}), config.get("train", {})
    return Scale(
        n_train=summary.get("n_train"),
        width=model.get("width"),
        epochs=train.get("epochs"),
        base_accuracy=base_accuracy,
        n_classes=len(summary.get("train_class_counts", {})) or 10,
    )


def scale_section(scale: Scale) -> str:
    """The banner at the top: how far this run is from the paper's scale."""

    def known(value):
        return "unknown" if value is None else f"{value:,}"

    base = paper_value(1, "base", "accuracy")[0][0]
    paper = (
        f"{PROTOCOL['train_size'].value:,} training images, width {PROTOCOL['width'].value}, "
        f"{PROTOCOL['epochs'].value} epochs, base accuracy {base:.4f}"
    )
    ours = (
        f"{known(scale.n_train)} training images, width {known(scale.width)}, "
        f"{known(scale.epochs)} epochs, base accuracy "
        + ("unknown" if math.isnan(scale.base_accuracy) else f"{scale.base_accuracy:.4f}")
    )
    gaps = scale.gaps()
    if gaps:
        head = (
            "> **This run is far from the paper's scale** ("
            + "; ".join(gaps)
            + "). Every verdict below is this run's test result; the scale is shown beside it "
            "as context and never changes it."
        )
    else:
        head = "> This run is at the paper's scale."
    return f"{head}\n>\n> This run: {ours}. Paper: {paper}.\n"


def findings_section(found: list[Finding]) -> str:
    rules = "\n".join(f"{i}. {rule}" for i, rule in enumerate(RULES[:-1], 1))
    parts = [
        "## Findings: the paper's claims tested on this run\n",
        "Each claim of the paper (000/001) and of the extension studies (002 NEXP, 003 "
        "folding, 004 representation hierarchy) as a stated test on this run. Verdicts:\n\n"
        + rules
        + f"\n\nTests: {RULES[-1]}.\n",
    ]
    changed = [f.id for f in found if "changes under" in f.confound]
    parts.append(
        "Under confound control (partial PLCC/SRCC controlling for family, granulated "
        "Kendall), the result changes for: " + (", ".join(changed) or "no claim") + ".\n"
    )
    parts.append(
        markdown_table(
            ["claim", "verdict", "test"],
            [[f.id, f"**{f.verdict}**", _first_clause(f.reason)] for f in found],
        )
        + "\n"
    )
    for finding in found:
        lines = [f"### {finding.id}: **{finding.verdict}**\n", f"- claim: {finding.claim}"]
        for label, value in (
            ("this run", finding.run),
            ("test", finding.reason),
            ("confound control", finding.confound),
            ("scale (context, not a verdict)", finding.context),
            ("the paper's own tables", finding.note),
        ):
            if value:
                lines.append(f"- {label}: {value}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _first_clause(reason: str, limit: int = 140) -> str:
    text = reason.split(";")[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
