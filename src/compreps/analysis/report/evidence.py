"""What the findings test on: this run's tables, per-image predictions and scale, with the
lookups and tests (:mod:`compreps.analysis.statistics.inference`) the claim checks need."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from compreps.analysis.paper import paper_value
from compreps.analysis.paper.claims import PROTOCOL
from compreps.analysis.statistics.inference import (
    Difference,
    McNemar,
    mcnemar_exact,
    paired_difference,
    wilson_interval,
)
from compreps.analysis.statistics.rank_stats import model_level_table
from compreps.core.vocabulary import comparable_scope, scope_families

BASE_ACCURACY_TOL = 0.05
# the confound-controlled counterpart of each pooled coefficient (correlations.csv columns)
CONTROLLED = {"plcc": "plcc_partial", "srcc": "srcc_partial", "krcc": "krcc_granulated"}


@dataclass(frozen=True)
class Scale:
    """This run's scale beside the paper's protocol (None: unknown)."""

    n_train: int | None
    width: int | None
    epochs: int | None
    base_accuracy: float
    n_classes: int = 10

    def gaps(self) -> list[str]:
        """Each way this run is far from the paper's scale, as a phrase with both numbers."""
        paper_base = paper_value(1, "base", "accuracy")[0][0]
        checks = (
            ("training images", self.n_train, PROTOCOL["train_size"].value),
            ("width", self.width, PROTOCOL["width"].value),
            ("epochs", self.epochs, PROTOCOL["epochs"].value),
        )
        gaps = [
            f"{name} {ours:,} (paper {theirs:,})"
            for name, ours, theirs in checks
            if ours is not None and ours < theirs
        ]
        if not self.base_accuracy >= paper_base - BASE_ACCURACY_TOL:
            gaps.append(f"base accuracy {self.base_accuracy:.4f} (paper {paper_base:.4f})")
        return gaps

    def context(self) -> str:
        """This run beside the paper, compact: ``"5,085/50,000 training images, ..."``."""
        if not self.gaps():
            return "at the paper's scale"
        paper_base = paper_value(1, "base", "accuracy")[0][0]
        parts = [
            f"{ours:,}/{theirs:,} {name}"
            for name, ours, theirs in (
                ("training images", self.n_train, PROTOCOL["train_size"].value),
                ("width", self.width, PROTOCOL["width"].value),
                ("epochs", self.epochs, PROTOCOL["epochs"].value),
            )
            if ours is not None
        ]
        parts.append(f"base accuracy {self.base_accuracy:.4f}/{paper_base:.4f}")
        return "this run/paper: " + ", ".join(parts)


@dataclass(frozen=True)
class Significance:
    """How the claims are tested: significance ``alpha`` = 1 − ``confidence``, bootstrap
    resamples and seed (the run's ``correlation`` settings)."""

    confidence: float = 0.95
    bootstrap: int = 2000
    seed: int = 0

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence


class Run:
    """This run's tables, with the lookups and tests the checks need. ``correct``: model id ->
    per-image correctness on the test set (from the dumps); absent models have none."""

    def __init__(
        self,
        accuracy: pd.DataFrame,
        correlations: pd.DataFrame,
        sensitivity: pd.DataFrame,
        scale: Scale,
        metrics: pd.DataFrame | None = None,
        correct: Mapping[str, np.ndarray] | Callable | None = None,
        testing: Significance = Significance(),
    ):
        self.accuracy = accuracy
        self.correlations = correlations
        self.scope = comparable_scope(correlations["scope"])
        self.corr = self._scope(self.scope)
        self.sensitivity = sensitivity
        self.metrics = metrics
        self.correct = correct if correct is not None else {}
        self.scale = scale
        self.testing = testing
        self.chance = 1.0 / scale.n_classes

    # ------------------------------------------------------------------ accuracy
    def row(self, family: str, level: float | None = None) -> pd.Series | None:
        rows = self.accuracy[self.accuracy["family"] == family]
        if family != "base":
            rows = rows[[math.isclose(float(v), float(level)) for v in rows["level"]]]
        return rows.iloc[0] if len(rows) else None

    def acc(self, family: str, level: float) -> float | None:
        row = self.row(family, level)
        return None if row is None else float(row["accuracy"])

    def interval(self, row: pd.Series) -> tuple[float, float]:
        """The accuracy's Wilson interval: the table's columns, else from its counts, else the
        point (a table without test-set size)."""
        if "accuracy_low" in row and pd.notna(row.get("accuracy_low")):
            return float(row["accuracy_low"]), float(row["accuracy_high"])
        if "n_test" in row and pd.notna(row.get("n_test")):
            return wilson_interval(int(row["n_correct"]), int(row["n_test"]))
        return float(row["accuracy"]), float(row["accuracy"])

    def keep_threshold(self, keep_share: float) -> float:
        """The accuracy at ``keep_share`` of the way from the base to chance."""
        base = self.scale.base_accuracy
        return base - keep_share * (base - self.chance)

    def mcnemar(self, a: str, b: str) -> McNemar | None:
        """Exact McNemar test of models ``a`` and ``b`` on the same test images."""
        source = self.correct
        try:
            first, second = (source(m) if callable(source) else source[m] for m in (a, b))
        except KeyError:
            return None
        return mcnemar_exact(first, second)

    # ------------------------------------------------------------------ correlations
    def _scope(self, scope: str) -> pd.DataFrame:
        return self.correlations[self.correlations["scope"] == scope].set_index("metric")

    def over(self, scope: str) -> Run:
        """The same run with the correlations of another scope (e.g. ``all`` for the claims of
        the extension studies, which concern every family)."""
        other = copy.copy(self)
        other.scope, other.corr = scope, self._scope(scope)
        return other

    def coef(self, metric: str, coef: str = "plcc") -> tuple[float, float, float] | None:
        if metric not in self.corr.index or not math.isfinite(self.corr.loc[metric, coef]):
            return None
        row = self.corr.loc[metric]
        return float(row[coef]), float(row[f"{coef}_low"]), float(row[f"{coef}_high"])

    def controlled(self, metric: str, coef: str) -> float:
        """The confound-controlled counterpart of ``coef`` (NaN when absent)."""
        column = CONTROLLED[coef]
        if metric not in self.corr.index or column not in self.corr.columns:
            return math.nan
        return float(self.corr.loc[metric, column])

    def influence(self, metrics, coef: str) -> str:
        """The influence notes of ``coef`` for ``metrics`` (correlations.csv ``influence``)."""
        notes = []
        for metric in metrics:
            if metric in self.corr.index and "influence" in self.corr.columns:
                text = self.corr.loc[metric, "influence"]
                text = text if isinstance(text, str) else ""
                parts = [p for p in text.split("; ") if p.startswith(coef.upper() + " ")]
                notes += [f"{metric}: {p}" for p in parts]
        return "; ".join(notes)

    def values(self, metrics: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        """``(models × metrics values, accuracy)`` over this scope's models with every value;
        None without the metrics table or with a metric absent."""
        if self.metrics is None:
            return None
        table = model_level_table(self.metrics, self.accuracy)
        table = table[table["family"].isin(scope_families(self.scope, table["family"]))]
        wide = table.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
        if not set(metrics) <= set(wide.columns):
            return None
        wide = wide[list(metrics)].dropna()
        accuracy = table.drop_duplicates("model").set_index("model")["accuracy"]
        return wide.to_numpy(float), accuracy.loc[wide.index].to_numpy(float)

    def difference(self, a: str, b: str, coef: str, absolute=False) -> Difference | None:
        """Paired bootstrap of ``coef(a) − coef(b)`` over this scope's models."""
        found = self.values((a, b))
        if found is None or len(found[1]) < 3:
            return None
        values, target = found
        t = self.testing
        return paired_difference(
            values[:, 0], values[:, 1], target, coef, absolute=absolute,
            resamples=t.bootstrap, confidence=t.confidence, seed=t.seed,
        )  # fmt: skip
