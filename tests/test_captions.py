"""Every caption has one source: the HTML report's .rst files are generated from
``compreps.analysis.report.captions`` and say what report.md says."""

from __future__ import annotations

from pathlib import Path

from compreps.analysis.report.captions import CAPTIONS, rst_text, write_rst
from compreps.core.vocabulary import FIGURE_NAMES, SEED_FIGURE_NAMES

REPORT_DIR = Path(__file__).resolve().parents[1] / "workflow" / "report"
RULES_DIR = REPORT_DIR.parent / "rules"


def test_rst_captions_are_generated_from_the_one_source():
    files = {path.stem for path in REPORT_DIR.glob("*.rst")}
    assert files == set(CAPTIONS)
    for name in CAPTIONS:
        assert (REPORT_DIR / f"{name}.rst").read_text(encoding="utf-8") == rst_text(name), (
            f"{name}.rst differs from captions.py: run python -m "
            "compreps.analysis.report.captions workflow/report"
        )


def test_every_figure_and_every_rule_caption_has_a_caption():
    figures = (*FIGURE_NAMES, *SEED_FIGURE_NAMES)
    assert set(figures) <= set(CAPTIONS)
    rules = "\n".join(path.read_text() for path in RULES_DIR.glob("*.smk"))
    for name in CAPTIONS:
        if name not in figures:  # the tables and the report name their .rst in a rule
            assert f'caption="../report/{name}.rst"' in rules, name


def test_write_rst_round_trip(tmp_path):
    written = write_rst(tmp_path)
    assert {p.stem for p in written} == set(CAPTIONS)
    assert (tmp_path / "sensitivity.rst").read_text() == rst_text("sensitivity")


def test_captions_state_what_the_code_does():
    # intervals are BCa with a percentile fallback, degenerate values are kept
    assert (
        "BCa" in CAPTIONS["correlations"]
        and "degenerate values are kept" in CAPTIONS["correlations"]
    )
    assert "percentile bootstrap intervals" not in " ".join(CAPTIONS.values())
