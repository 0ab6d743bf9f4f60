"""Rank statistics shared by Table 2 and Table 3: PLCC/SRCC/KRCC of many rows at once, scipy
point estimates, and the compressed models' model-level metrics paired with their accuracy.

Sign convention: every metric is paired with the compressed model's test **accuracy**, which
equals minus its accuracy drop up to the constant base accuracy (correlations are shift
invariant). A similarity that falls as the drop grows therefore correlates *positively*, a
divergence negatively.
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from compreps.core.files import CompRepsError, read_table
from compreps.core.vocabulary import (
    ACCURACY_COLUMNS,
    COEFFICIENTS,
    METRIC_COLUMNS,
    MODEL_LAYER,
    RAW_DESCRIPTORS,
)

TARGET = "accuracy (= -drop)"
MIN_MODELS = 3


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (R, n) arrays; NaN where a row is constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    sxx = np.einsum("ij,ij->i", xc, xc)
    syy = np.einsum("ij,ij->i", yc, yc)
    denom = np.sqrt(sxx * syy)
    # relative tolerance: a row is constant when its spread is rounding noise of its values
    scale_x = np.maximum(np.abs(x).max(axis=1), 1.0) ** 2 * x.shape[1]
    scale_y = np.maximum(np.abs(y).max(axis=1), 1.0) ** 2 * y.shape[1]
    constant = (sxx <= 1e-24 * scale_x) | (syy <= 1e-24 * scale_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("ij,ij->i", xc, yc) / denom
    r[constant] = np.nan
    return np.clip(r, -1.0, 1.0)


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ per row: Pearson r of average ranks (as ``scipy.stats.spearmanr``)."""
    return _rowwise_pearson(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))


def _rowwise_kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall τ-b per row (as ``scipy.stats.kendalltau``): Σ sgn(Δx)sgn(Δy) over pairs divided
    by √(pairs untied in x · pairs untied in y); NaN where a row is constant."""
    n = x.shape[1]
    upper = np.triu_indices(n, k=1)
    sx = np.sign(x[:, :, None] - x[:, None, :])[:, upper[0], upper[1]]
    sy = np.sign(y[:, :, None] - y[:, None, :])[:, upper[0], upper[1]]
    untied = np.abs(sx).sum(axis=1) * np.abs(sy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (sx * sy).sum(axis=1) / np.sqrt(untied)
    tau[untied == 0] = np.nan
    return np.clip(tau, -1.0, 1.0)


ROWWISE = {"plcc": _rowwise_pearson, "srcc": _rowwise_spearman, "krcc": _rowwise_kendall}


def is_constant(values: np.ndarray) -> bool:
    return bool(np.ptp(values) <= 1e-12 * max(1.0, float(np.abs(values).max())))


def point_estimates(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """PLCC/SRCC/KRCC and their p-values from scipy; NaN for fewer than 3 points or constant
    input (handled here, so scipy never warns)."""
    out = {}
    for coef in COEFFICIENTS:
        out[coef] = out[f"{coef}_p"] = math.nan
    if x.size < MIN_MODELS or is_constant(x) or is_constant(y):
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        for coef, func in (
            ("plcc", stats.pearsonr),
            ("srcc", stats.spearmanr),
            ("krcc", stats.kendalltau),
        ):
            result = func(x, y)
            out[coef] = float(result.statistic)
            out[f"{coef}_p"] = float(result.pvalue)
    return out


def _check_columns(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CompRepsError(f"{name} lacks column(s) {', '.join(missing)}")


def as_bool(series: pd.Series) -> pd.Series:
    """``degenerate`` as bool, whether it was read as bool, 0/1 or 'True'/'False' strings."""
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes"])


def model_level_table(metrics_df: pd.DataFrame, accuracy_df: pd.DataFrame) -> pd.DataFrame:
    """Compressed models' model-level rows with their accuracy: columns ``model, family, metric,
    value, degenerate, accuracy``. Raises when a compressed model has no accuracy."""
    _check_columns(metrics_df, METRIC_COLUMNS, "metrics table")
    _check_columns(accuracy_df, ACCURACY_COLUMNS, "accuracy table")
    rows = metrics_df[
        (metrics_df["layer"] == MODEL_LAYER) & (metrics_df["family"] != "base")
    ].copy()
    rows = rows[~rows["metric"].isin(RAW_DESCRIPTORS)]
    rows["degenerate"] = as_bool(rows["degenerate"])
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    accuracy = accuracy_df.drop_duplicates("model").set_index("model")["accuracy"]
    missing = sorted(set(rows["model"]) - set(accuracy.index))
    if missing:
        raise CompRepsError(
            f"no accuracy for model(s) {', '.join(missing)} in the accuracy table "
            "(rule 'accuracy_table' writes it from the activation files)"
        )
    rows["accuracy"] = rows["model"].map(accuracy).astype(float)
    return rows[["model", "family", "metric", "value", "degenerate", "accuracy"]]


def read_inputs(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The metrics table and the accuracy table named by ``--metrics`` and ``--accuracy``."""
    metrics = read_table(args.metrics, "metrics table", METRIC_COLUMNS, rule="metrics_table")
    accuracy = read_table(
        args.accuracy, "accuracy table", ACCURACY_COLUMNS, rule="accuracy_table", leading=True
    )
    return metrics, accuracy
