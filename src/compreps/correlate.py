"""Correlations of model-level metrics with accuracy (Table 2) and REPS weight sensitivity
(Table 3): the ``correlate`` and ``sensitivity`` steps.

Sign convention: every metric is paired with the compressed model's test **accuracy**, which
equals minus its accuracy drop up to the constant base accuracy (correlations are shift
invariant). A similarity that falls as the drop grows therefore correlates *positively*, a
divergence negatively.

Coefficients and p-values come from ``scipy.stats`` (``pearsonr``, ``spearmanr``,
``kendalltau`` τ-b). Intervals are percentile bootstrap intervals over models (models resampled
with replacement, ``numpy.random.default_rng(seed)``); resamples whose metric or accuracy is
constant have no coefficient and are skipped. The resample loop is vectorised: all resamples
of one (metric, scope) are ranked and correlated at once.

Sensitivity (Table 3): REPS = Σ wᵢ·sᵢ over the components (s_e, s_alive, s_s, s_d) (paper eq. 13)
recombined from the model-level components with other weights. The paper's own six weight
configurations were not available here (only its abstract could be found), so the named rows
are ``equal`` (0.25 each), ``paper_weights`` (0.15, 0.05, 0.35, 0.45: the weights of
``config.yaml``) and the four single-component configurations; every point of the simplex grid
follows as ``config = grid``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from compreps.files import CompRepsError, atomic_write

SCOPES = ("all", "coreset", "prune", "quant")
COEFFICIENTS = ("plcc", "srcc", "krcc")
CORRELATION_COLUMNS = ["metric", "scope", "n", "n_excluded"] + [
    f"{coef}{suffix}" for coef in COEFFICIENTS for suffix in ("", "_low", "_high", "_p")
]
SENSITIVITY_COLUMNS = [
    "config",
    "w_effective_rank",
    "w_alive",
    "w_separation",
    "w_decay",
    "n",
    "plcc",
    "srcc",
    "krcc",
]
# Raw descriptors of a model alone: not comparisons with the base, so never correlated.
RAW_DESCRIPTORS = ("effective_rank", "alive_fraction", "class_separation", "decay_slope")
REPS_COMPONENTS = ("s_e", "s_alive", "s_s", "s_d")
TARGET = "accuracy (= -drop)"
MIN_MODELS = 3
# Named REPS weight configurations (w_effective_rank, w_alive, w_separation, w_decay).
NAMED_CONFIGS = {
    "equal": (0.25, 0.25, 0.25, 0.25),
    "paper_weights": (0.15, 0.05, 0.35, 0.45),
    "effective_rank_only": (1.0, 0.0, 0.0, 0.0),
    "alive_only": (0.0, 1.0, 0.0, 0.0),
    "separation_only": (0.0, 0.0, 1.0, 0.0),
    "decay_only": (0.0, 0.0, 0.0, 1.0),
}
METRIC_COLUMNS = ["model", "family", "level", "layer", "metric", "value", "degenerate"]
ACCURACY_COLUMNS = ["model", "family", "level", "accuracy"]


# --------------------------------------------------------------------------- row-wise statistics
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


def _is_constant(values: np.ndarray) -> bool:
    return bool(np.ptp(values) <= 1e-12 * max(1.0, float(np.abs(values).max())))


def point_estimates(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """PLCC/SRCC/KRCC and their p-values from scipy; NaN for fewer than 3 points or constant
    input (handled here, so scipy never warns)."""
    out = {}
    for coef in COEFFICIENTS:
        out[coef] = out[f"{coef}_p"] = math.nan
    if x.size < MIN_MODELS or _is_constant(x) or _is_constant(y):
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


def bootstrap_intervals(
    x: np.ndarray, y: np.ndarray, n_bootstrap: int, confidence: float, seed: int
) -> dict[str, float]:
    """Percentile bootstrap interval (``confidence``) of each coefficient, resampling the paired
    models with replacement; resamples with constant x or y are skipped."""
    out = {f"{coef}_{end}": math.nan for coef in COEFFICIENTS for end in ("low", "high")}
    if x.size < MIN_MODELS or n_bootstrap <= 0:
        return out
    rng = np.random.default_rng(seed)
    index = rng.integers(0, x.size, size=(n_bootstrap, x.size))
    xs, ys = x[index], y[index]
    tail = (1.0 - confidence) / 2.0 * 100.0
    for coef in COEFFICIENTS:
        values = ROWWISE[coef](xs, ys)
        values = values[np.isfinite(values)]
        if values.size:
            out[f"{coef}_low"], out[f"{coef}_high"] = (
                float(v) for v in np.percentile(values, [tail, 100.0 - tail])
            )
    return out


# --------------------------------------------------------------------------- tables
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
    rows = metrics_df[(metrics_df["layer"] == "model") & (metrics_df["family"] != "base")].copy()
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


def _scope_rows(table: pd.DataFrame, scope: str) -> pd.DataFrame:
    return table if scope == "all" else table[table["family"] == scope]


def correlation_table(
    metrics_df: pd.DataFrame,
    accuracy_df: pd.DataFrame,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> pd.DataFrame:
    """Table 2: each model-level metric (raw descriptors excluded) against the compressed
    models' accuracy (= minus the accuracy drop), pooled (``all``) and per family.

    A model whose metric is NaN or flagged degenerate is left out and counted in
    ``n_excluded``; fewer than 3 models left gives NaN coefficients (``n`` still reported).
    """
    if not 0.0 < confidence < 1.0:
        raise CompRepsError(f"confidence must lie in (0, 1), got {confidence}")
    table = model_level_table(metrics_df, accuracy_df)
    records = []
    for metric in dict.fromkeys(table["metric"]):
        metric_rows = table[table["metric"] == metric]
        for scope in SCOPES:
            rows = _scope_rows(metric_rows, scope)
            if rows.empty:
                continue
            valid = rows["value"].notna() & rows["accuracy"].notna() & ~rows["degenerate"]
            x = rows.loc[valid, "value"].to_numpy(float)
            y = rows.loc[valid, "accuracy"].to_numpy(float)
            record = {
                "metric": metric,
                "scope": scope,
                "n": int(valid.sum()),
                "n_excluded": int((~valid).sum()),
            }
            record.update(point_estimates(x, y))
            record.update(bootstrap_intervals(x, y, n_bootstrap, confidence, seed))
            records.append(record)
    return pd.DataFrame.from_records(records, columns=CORRELATION_COLUMNS)


def simplex_grid(step: float, dims: int = 4) -> np.ndarray:
    """Every weight vector with ``dims`` non-negative multiples of ``step`` summing to 1
    (C(1/step + dims - 1, dims - 1) points; 1771 for step 0.05 and 4 weights)."""
    if not 0.0 < step <= 1.0:
        raise CompRepsError(f"grid step must lie in (0, 1], got {step}")
    parts = round(1.0 / step)
    if abs(parts * step - 1.0) > 1e-9:
        raise CompRepsError(f"grid step must divide 1 into whole parts, got {step}")
    points = [
        combo
        for combo in itertools.product(range(parts + 1), repeat=dims - 1)
        if sum(combo) <= parts
    ]
    grid = np.array([[*combo, parts - sum(combo)] for combo in points], dtype=float) / parts
    return grid


def component_matrix(
    metrics_df: pd.DataFrame, accuracy_df: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(models × 4) model-level REPS components, accuracy vector and model ids for the
    compressed models whose four components are all finite and not degenerate."""
    table = model_level_table(metrics_df, accuracy_df)
    table = table[table["metric"].isin(REPS_COMPONENTS)]
    values = table.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    flags = table.pivot_table(index="model", columns="metric", values="degenerate", aggfunc="any")
    values = values.reindex(columns=list(REPS_COMPONENTS))
    flags = flags.reindex(columns=list(REPS_COMPONENTS)).fillna(True).astype(bool)
    accuracy = table.drop_duplicates("model").set_index("model")["accuracy"]
    valid = values.notna().all(axis=1) & ~flags.any(axis=1)
    valid &= accuracy.reindex(values.index).notna()
    models = list(values.index[valid])
    return values.loc[models].to_numpy(float), accuracy.loc[models].to_numpy(float), models


def sensitivity_table(
    metrics_df: pd.DataFrame, accuracy_df: pd.DataFrame, grid_step: float = 0.05
) -> pd.DataFrame:
    """Table 3: REPS recombined with the named weight configurations and every simplex grid
    point (``config = grid``), correlated with accuracy over all compressed models."""
    components, accuracy, models = component_matrix(metrics_df, accuracy_df)
    grid = simplex_grid(grid_step)
    names = list(NAMED_CONFIGS) + ["grid"] * len(grid)
    weights = np.vstack([np.array(list(NAMED_CONFIGS.values())), grid])
    frame = pd.DataFrame(weights, columns=SENSITIVITY_COLUMNS[1:5])
    frame.insert(0, "config", names)
    frame["n"] = len(models)
    if len(models) < MIN_MODELS or _is_constant(accuracy):
        for coef in COEFFICIENTS:
            frame[coef] = math.nan
        return frame[SENSITIVITY_COLUMNS]
    reps = weights @ components.T  # (configs × models)
    target = np.broadcast_to(accuracy, reps.shape)
    for coef in COEFFICIENTS:
        frame[coef] = ROWWISE[coef](reps, target)
    return frame[SENSITIVITY_COLUMNS]


# --------------------------------------------------------------------------- I/O and CLI
def read_table(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise CompRepsError(f"{what} {path} does not exist")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CompRepsError(f"cannot read {what} {path}: {err}") from err


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


def _parser(step: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"compreps {step}")
    parser.add_argument("--metrics", required=True, help="results/tables/metrics.csv")
    parser.add_argument("--accuracy", required=True, help="results/tables/accuracy.csv")
    parser.add_argument("--out", required=True)
    if step == "correlate":
        parser.description = "Table 2: metrics vs accuracy (= -drop), bootstrap intervals."
        parser.add_argument("--bootstrap", type=int, default=1000)
        parser.add_argument("--confidence", type=float, default=0.95)
        parser.add_argument("--seed", type=int, default=42)
    else:
        parser.description = "Table 3: REPS weight configurations and a simplex grid."
        parser.add_argument("--grid-step", type=float, default=0.05)
    return parser


def main(argv: list[str]) -> int:
    """``correlate`` or ``sensitivity`` (``argv[0]``): read the tables, write one CSV."""
    step = argv[0]
    if step not in ("correlate", "sensitivity"):
        raise CompRepsError(f"compreps.correlate has no step {step!r}")
    args = _parser(step).parse_args(argv[1:])
    metrics_df = read_table(args.metrics, "metrics table")
    accuracy_df = read_table(args.accuracy, "accuracy table")
    if step == "correlate":
        if args.bootstrap < 0:
            raise CompRepsError(f"--bootstrap must be >= 0, got {args.bootstrap}")
        table = correlation_table(
            metrics_df, accuracy_df, args.bootstrap, args.confidence, args.seed
        )
        summary = f"{len(table)} rows ({table['metric'].nunique()} metrics)"
    else:
        table = sensitivity_table(metrics_df, accuracy_df, args.grid_step)
        summary = f"{len(table)} weight configurations over {int(table['n'].iloc[0])} models"
    write_csv(table, args.out)
    print(f"{step}: {summary}, target {TARGET} -> {args.out}", file=sys.stderr)
    return 0
