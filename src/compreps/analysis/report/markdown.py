"""Markdown formatting shared by the report's sections."""

from __future__ import annotations

import math


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


def span(row, low: str, high: str) -> str:
    """``[low, high]`` of two columns; ``–`` when undefined."""
    a, b = fmt(row.get(low, math.nan)), fmt(row.get(high, math.nan))
    return "–" if a == "–" else f"[{a}, {b}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # a "|" inside a cell (|PLCC|) would end the cell
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_cell(value) -> str:
    """A CSV text cell for the markdown table: empty (NaN) becomes blank."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
