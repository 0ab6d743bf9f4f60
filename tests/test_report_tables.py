"""The report's Table 2 blocks: the compact per-family table (no empty rows), the confound
table and Markdown cells that contain a "|"."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compreps.analysis.report.correlations_md import confound_table, family_table
from compreps.analysis.report.markdown import markdown_table
from compreps.analysis.report.step import correctness
from compreps.core.dump import read_dump
from compreps.core.vocabulary import CORRELATION_COLUMNS


def rows(*records):
    frame = [dict.fromkeys(CORRELATION_COLUMNS, math.nan) | r for r in records]
    return pd.DataFrame(frame, columns=list(CORRELATION_COLUMNS))


def test_family_table_is_compact_and_drops_metrics_without_a_coefficient():
    table = rows(
        {"metric": "gtfa", "scope": "prune", "n": 4, "plcc": 0.5},
        {"metric": "gtfa", "scope": "quant", "n": 2, "plcc": math.nan},
        {"metric": "s_e", "scope": "prune", "n": 4, "plcc": math.nan},
        {"metric": "s_e", "scope": "quant", "n": 2, "plcc": math.nan},
    )
    text = family_table(table, ["prune", "quant"])
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines == ["| metric | prune | quant |", "| gtfa | 0.500 (4) | – (2) |"]
    none = family_table(table[table["metric"] == "s_e"], ["prune", "quant"])
    assert "No family has a coefficient" in none and "| s_e" not in none


def test_confound_table_shows_partial_granulated_and_influence():
    table = rows(
        {"metric": "logits_l2", "scope": "all", "n": 10, "plcc": -0.435, "srcc": -0.9,
         "plcc_partial": -0.8, "srcc_partial": -0.85, "krcc_granulated": -0.7,
         "plcc_lofo_low": -0.9, "plcc_lofo_high": -0.4, "plcc_lomo_low": -0.95,
         "plcc_lomo_high": -0.41, "influence": "PLCC -0.435 -> -0.950 without quant-1"},
        {"metric": "s_e", "scope": "all", "n": 10, "plcc": math.nan},
    )  # fmt: skip
    text = confound_table(table)
    (line,) = [row for row in text.splitlines() if row.startswith("| logits_l2")]
    assert line == (
        "| logits_l2 | -0.435 | -0.800 | -0.900 | -0.850 | -0.700 | [-0.900, -0.400] | "
        "[-0.950, -0.410] | PLCC -0.435 -> -0.950 without quant-1 |"
    )
    assert "| s_e" not in text  # no coefficient: no row


def test_markdown_cells_escape_the_pipe():
    assert markdown_table(["a"], [["|PLCC|"]]).splitlines()[-1] == "| \\|PLCC\\| |"


def test_correctness_reads_each_dump_on_demand(write_fake_dump):
    path = write_fake_dump("prune-0.5", 0.5)
    correct = correctness([path])
    dump = read_dump(path, layers=[])
    assert (correct("prune-0.5") == (dump.logits.argmax(1) == dump.labels)).all()
    with pytest.raises(KeyError):  # a model without a dump: its claims are not in this run
        correct("quant-4")
