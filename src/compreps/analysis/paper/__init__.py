"""The study's published numbers as data: every cell of Tables 1, 2 and 3 of both versions.

Two full texts of the study exist (``/work/shared/papers/``, see its README):

- ``000``: the GTFA + REPS version (Tables 1 and 2; Table 2 has a GTFA row);
- ``001``: the REPS version (Tables 1, 2 and 3; Table 3 = the six named REPS weight sets).

``values.csv`` beside this module holds one row per printed cell, columns

- ``table`` (1, 2, 3); ``key``: the project's key of the row (model id ``coreset-0.5``,
  metric ``reps_equal``, configuration ``rank_only``; empty for a paper row that has no
  project counterpart); ``scope``: ``all`` for Tables 2 and 3 (both are over the 24
  compressed models), empty for Table 1;
- ``column``: ``accuracy`` (Table 1), ``plcc|srcc|krcc`` (Table 2), ``w_effective_rank,
  w_alive, w_separation, w_decay, plcc`` (Table 3, the names of ``sensitivity.csv``);
- ``value`` as printed; ``paper``: ``000``, ``001`` or ``000+001`` (both print the same value:
  one row); where the two differed there would be one row per paper;
- ``paper_label``: the row as printed (citations dropped); ``source``: ``"<paper>, Table <n>,
  row '<label as printed>'"``, one such part per paper, joined by ``"; "``.

Both papers print identical Tables 1 and 2 except that only 000 has the GTFA row; only 001 has
Table 3. The table's column "accuracy drop" and the signs of its values are discussed in
:mod:`compreps.analysis.paper.claims`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

VALUES_FILE = Path(__file__).with_name("values.csv")
PAPER_FILES = {
    "000": "000_85dea552cd8c2d4f.txt",
    "001": "001_8a80b71fe955b35a.txt",
}
COLUMNS = ["table", "key", "scope", "column", "value", "paper", "paper_label", "source"]
WEIGHT_COLUMNS = ("w_effective_rank", "w_alive", "w_separation", "w_decay")
CONFIG_NAMES = (
    "weighted",
    "equal",
    "rank_only",
    "separation_heavy",
    "decay_heavy",
    "no_aliveness",
)

__all__ = [
    "CONFIG_NAMES",
    "NAMED_REPS_CONFIGS",
    "PAPER_FILES",
    "REPS_CONFIG_SOURCES",
    "paper_value",
    "paper_values",
    "reps_configs",
]


@lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    frame = pd.read_csv(
        VALUES_FILE,
        dtype={"key": str, "scope": str, "column": str, "paper": str},
        keep_default_na=False,
    )
    frame["table"] = frame["table"].astype(int)
    frame["value"] = frame["value"].astype(float)
    return frame[COLUMNS]


def paper_values() -> pd.DataFrame:
    """Every printed cell of Tables 1-3 of both papers (a copy; columns :data:`COLUMNS`)."""
    return _table().copy()


def paper_value(table: int, key: str, column: str, scope: str | None = None) -> list:
    """``[(value, source), ...]`` of one cell: one entry when the papers agree or only one
    prints it, one per paper when they differ, ``[]`` when the paper has no value.

    ``scope`` defaults to ``all`` for Tables 2 and 3; the paper reports no per-family scope,
    so ``paper_value(2, "reps_equal", "plcc", scope="prune")`` is ``[]``.
    """
    frame = _table()
    if scope is None:
        scope = "" if int(table) == 1 else "all"
    rows = frame[
        (frame["table"] == int(table))
        & (frame["key"] == key)
        & (frame["column"] == column)
        & (frame["scope"] == scope)
    ]
    return [(float(row.value), str(row.source)) for row in rows.itertuples(index=False)]


def _named_configs() -> tuple[dict, dict]:
    frame = _table()
    table3 = frame[frame["table"] == 3]
    weights, sources = {}, {}
    for name in CONFIG_NAMES:
        rows = table3[table3["key"] == name].set_index("column")
        weights[name] = tuple(float(rows.loc[column, "value"]) for column in WEIGHT_COLUMNS)
        sources[name] = str(rows["source"].iloc[0])
    return weights, sources


# The paper's six configurations as printed in 001's Table 3, name -> (w_effective_rank, w_alive,
# w_separation, w_decay) = (alpha, beta, gamma, delta) weights of (s_e, s_alive, s_s, s_d).
NAMED_REPS_CONFIGS, REPS_CONFIG_SOURCES = _named_configs()


def reps_configs(weighted: tuple[float, float, float, float]) -> dict:
    """The six named configurations a run evaluates: ``weighted`` is the run's own REPS weights
    (``metrics.reps.weights``), the other five are the paper's (:data:`NAMED_REPS_CONFIGS`)."""
    weights = tuple(float(w) for w in weighted)
    if len(weights) != len(WEIGHT_COLUMNS):
        raise ValueError(f"REPS weights need {len(WEIGHT_COLUMNS)} values, got {len(weights)}")
    return {**NAMED_REPS_CONFIGS, "weighted": weights}
