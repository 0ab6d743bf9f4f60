"""Correlations of model-level metrics with accuracy (Table 2): the ``correlate`` step.

Coefficients and p-values come from ``scipy.stats`` (``pearsonr``, ``spearmanr``,
``kendalltau`` τ-b, see :mod:`compreps.analysis.statistics.rank_stats`), over every compressed
model that has a
value: the ``degenerate`` flag is information, never a reason to leave a model out (every
metric has a defined value at its degenerate limits, docs/metrics.md); only NaN values (broken,
non-finite dumps) are left out and counted in ``n_excluded``.

Intervals: ``scipy.stats.bootstrap`` resampling the paired models with replacement
(``numpy.random.default_rng(seed)``), BCa where it is defined; where BCa fails (a warning, a
non-finite end, the estimate outside) the percentile interval of the same bootstrap
distribution, its resamples with a constant column (no coefficient) left out; if the estimate
still lies outside (a tail of tied models), that interval widened to the estimate
(``percentile+estimate``). ``ci_method`` says which one each row's intervals used; ``note``
says why a coefficient is undefined.

Beside each pooled coefficient (:mod:`compreps.analysis.statistics.confounds`): the partial
PLCC and SRCC controlling for family, the granulated Kendall (mean within-family τ-b), the
leave-one-family-out range of PLCC and SRCC (scopes of two families or more) and the
leave-one-model-out range of every coefficient, with ``influence`` naming each model whose
removal moves a coefficient by more than 0.1 or flips its sign. ``target`` states the sign
convention of every row.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from compreps.analysis.statistics.confounds import (
    granulated_kendall,
    influence_note,
    leave_one_out,
    partial_correlation,
)
from compreps.analysis.statistics.rank_stats import (
    MIN_MODELS,
    ROWWISE,
    TARGET,
    is_constant,
    model_level_table,
    point_estimates,
    read_inputs,
)
from compreps.core.files import log, write_csv
from compreps.core.settings import CorrelationSettings, add_arguments, from_arguments, step_parser
from compreps.core.vocabulary import (
    COEFFICIENTS,
    CORRELATION_COLUMNS,
    PAPER_FAMILIES,
    PAPER_SCOPE,
    SCOPES,
    scope_families,
)

BCA, PERCENTILE, WIDENED = "BCa", "percentile", "percentile+estimate"


def _vectorised(coef: str):
    """``scipy.stats.bootstrap``'s vectorised statistic: any leading shape, samples last."""

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
        shape = x.shape[:-1]
        flat = ROWWISE[coef](x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]))
        return flat.reshape(shape)

    return statistic


def _interval(x, y, coef: str, estimate: float, settings: CorrelationSettings) -> tuple:
    """``(low, high, method)`` of one coefficient: BCa, else the percentile interval."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stats.bootstrap(
            (x, y),
            _vectorised(coef),
            n_resamples=settings.bootstrap,
            confidence_level=settings.confidence,
            method=BCA,
            paired=True,
            vectorized=True,
            rng=np.random.default_rng(settings.seed),
        )
    low, high = result.confidence_interval
    if not caught and math.isfinite(low) and math.isfinite(high) and low <= estimate <= high:
        return float(low), float(high), BCA
    values = result.bootstrap_distribution
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan, ""
    tail = (1.0 - settings.confidence) / 2.0 * 100.0
    low, high = (float(v) for v in np.percentile(values, [tail, 100.0 - tail]))
    if low <= estimate <= high:
        return low, high, PERCENTILE
    # the estimate in a tail beyond the interval (a few tied models): widened to include it
    return min(low, estimate), max(high, estimate), WIDENED


def bootstrap_intervals(
    x: np.ndarray, y: np.ndarray, estimates: dict[str, float], settings: CorrelationSettings
) -> dict[str, object]:
    """``<coef>_low``, ``<coef>_high`` of each coefficient whose point estimate is defined, and
    ``ci_method``: ``BCa``, ``percentile``, or both as ``plcc BCa; srcc percentile; ...`` when
    the coefficients differ (empty when no interval)."""
    out: dict[str, object] = {
        f"{c}_{end}": math.nan for c in COEFFICIENTS for end in ("low", "high")
    }
    methods = {}
    if settings.bootstrap > 0:
        for coef in COEFFICIENTS:
            if math.isfinite(estimates[coef]):
                low, high, methods[coef] = _interval(x, y, coef, estimates[coef], settings)
                out[f"{coef}_low"], out[f"{coef}_high"] = low, high
    used = {m for m in methods.values() if m}
    if len(used) > 1:
        out["ci_method"] = "; ".join(f"{c} {m}" for c, m in methods.items() if m)
    else:
        out["ci_method"] = used.pop() if used else ""
    return out


def undefined_note(x: np.ndarray, y: np.ndarray, n_excluded: int) -> str:
    """Why the coefficients of a row are undefined (empty when they are defined), plus the
    models left out for a NaN value."""
    notes = []
    if x.size < MIN_MODELS:
        notes.append(f"fewer than {MIN_MODELS} models with a value: no coefficient")
    elif is_constant(x):
        notes.append(f"metric constant ({x[0]:.6g}) over the models: no coefficient")
    elif is_constant(y):
        notes.append("accuracy constant over the models: no coefficient")
    if n_excluded:
        notes.append(f"{n_excluded} model(s) left out: NaN value (non-finite activations/logits)")
    return "; ".join(notes)


def confound_columns(x: np.ndarray, y: np.ndarray, families, models, estimates) -> dict:
    """The confound-aware and influence columns of one row (module docstring)."""
    out: dict[str, object] = {"target": TARGET}
    for coef in ("plcc", "srcc"):
        out[f"{coef}_partial"], out[f"{coef}_partial_p"] = partial_correlation(x, y, families, coef)
    out["krcc_granulated"], out["n_families"] = granulated_kendall(x, y, families)
    several = len(set(families)) > 1
    for coef in ("plcc", "srcc"):
        values = list(leave_one_out(x, y, families, coef).values()) if several else []
        finite = [v for v in values if math.isfinite(v)]
        out[f"{coef}_lofo_low"] = min(finite) if finite else math.nan
        out[f"{coef}_lofo_high"] = max(finite) if finite else math.nan
    notes = []
    for coef in COEFFICIENTS:
        without = leave_one_out(x, y, models, coef)
        finite = [v for v in without.values() if math.isfinite(v)]
        out[f"{coef}_lomo_low"] = min(finite) if finite else math.nan
        out[f"{coef}_lomo_high"] = max(finite) if finite else math.nan
        notes.append(influence_note(estimates[coef], without, coef))
    out["influence"] = "; ".join(note for note in notes if note)
    return out


# --------------------------------------------------------------------------- tables
def _scope_rows(table: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The rows a scope pools; empty for ``paper`` when it would repeat ``all``."""
    present = set(table["family"])
    if scope == PAPER_SCOPE and present <= set(PAPER_FAMILIES):
        return table.iloc[:0]
    return table[table["family"].isin(scope_families(scope, table["family"]))]


def correlation_table(
    metrics_df: pd.DataFrame,
    accuracy_df: pd.DataFrame,
    settings: CorrelationSettings,
) -> pd.DataFrame:
    """Table 2: each model-level metric (raw descriptors excluded) against the compressed
    models' accuracy (= minus the accuracy drop), pooled (``all``) and per family.

    Every model with a value counts, degenerate or not; a NaN value is left out and counted in
    ``n_excluded``. Fewer than 3 models or a constant column gives NaN coefficients, and the
    ``note`` says which.
    """
    table = model_level_table(metrics_df, accuracy_df)
    records = []
    for metric in dict.fromkeys(table["metric"]):
        metric_rows = table[table["metric"] == metric]
        for scope in SCOPES:
            rows = _scope_rows(metric_rows, scope)
            if rows.empty:
                continue
            valid = rows["value"].notna() & rows["accuracy"].notna()
            x = rows.loc[valid, "value"].to_numpy(float)
            y = rows.loc[valid, "accuracy"].to_numpy(float)
            record = {
                "metric": metric,
                "scope": scope,
                "n": int(valid.sum()),
                "n_excluded": int((~valid).sum()),
            }
            estimates = point_estimates(x, y)
            record.update(estimates)
            record.update(bootstrap_intervals(x, y, estimates, settings))
            record["note"] = undefined_note(x, y, record["n_excluded"])
            families = rows.loc[valid, "family"].to_numpy()
            models = rows.loc[valid, "model"].to_numpy()
            record.update(confound_columns(x, y, families, models, estimates))
            records.append(record)
    return pd.DataFrame.from_records(records, columns=list(CORRELATION_COLUMNS))


def main(argv: list[str]) -> int:
    """``correlate``: read the tables, write Table 2."""
    parser = step_parser(
        argv[0],
        "Table 2: metrics vs accuracy (= -drop), bootstrap intervals (BCa, else percentile).",
        ("metrics", "accuracy"),
    )
    parser.add_argument("--out", required=True)
    add_arguments(parser, CorrelationSettings)
    args = parser.parse_args(argv[1:])
    table = correlation_table(*read_inputs(args), from_arguments(CorrelationSettings, args))
    write_csv(table, args.out)
    log(
        f"correlate: {len(table)} rows ({table['metric'].nunique()} metrics), "
        f"target {TARGET} -> {args.out}"
    )
    return 0
