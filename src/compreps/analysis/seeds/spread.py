"""The across-seed spread of the per-seed tables: for each model (accuracy, drop), each Table 2
row (metric, scope, target) and each named REPS configuration (Table 3), the number of seeds
with a finite value, their mean, sample standard deviation (ddof = 1; NaN with fewer than two
seeds), minimum and maximum.

Every per-seed table is given as ``{seed: DataFrame}`` in the order of the seeds; rows keep
the order of their first appearance (the first seed's table, then what later seeds add). A NaN
value of a seed (an undefined coefficient) is not counted: ``n_seeds`` counts finite values.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from compreps.core.files import CompRepsError

STATS = ("n_seeds", "mean", "sd", "min", "max")
# Table 2 columns summarised across seeds: the coefficients and their family-controlled forms
CORRELATION_KEYS = ("metric", "scope", "target")
CORRELATION_COEFFICIENTS = ("plcc", "srcc", "krcc", "plcc_partial", "srcc_partial")
SENSITIVITY_COEFFICIENTS = ("plcc", "srcc", "krcc")
GRID = "grid"  # the sensitivity table's simplex-grid rows (not summarised)
ACCURACY_QUANTITIES = ("accuracy", "drop")
SEEDS_ACCURACY_COLUMNS = ("model", "family", "level", "n_seeds") + tuple(
    f"{quantity}_{stat}" for quantity in ACCURACY_QUANTITIES for stat in STATS[1:]
)
SEEDS_CORRELATION_COLUMNS = (*CORRELATION_KEYS, "coefficient", *STATS)
SEEDS_SENSITIVITY_COLUMNS = ("config", "coefficient", *STATS)


def spread(values) -> dict[str, float]:
    """``n_seeds, mean, sd, min, max`` of the finite ``values`` (sd: sample, ddof = 1)."""
    finite = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)
    finite = finite[np.isfinite(finite)]
    n = int(finite.size)
    return {
        "n_seeds": n,
        "mean": float(finite.mean()) if n else math.nan,
        "sd": float(finite.std(ddof=1)) if n > 1 else math.nan,
        "min": float(finite.min()) if n else math.nan,
        "max": float(finite.max()) if n else math.nan,
    }


def per_seed_values(tables: dict, keys, quantities, what: str) -> pd.DataFrame:
    """Long format ``seed, *keys, quantity, value``: every row's ``quantities`` of every seed,
    row by row (a row's quantities in the order given). A key listed twice in one seed's
    table is an error."""
    keys, quantities = list(keys), list(quantities)
    frames = []
    for seed, table in tables.items():
        twice = table.duplicated(keys)
        if twice.any():
            rows = table.loc[twice, keys].astype(str).agg(" / ".join, axis=1)
            raise CompRepsError(f"seed {seed}: {what} lists {', '.join(rows)} twice")
        long = pd.DataFrame(
            {key: np.repeat(table[key].to_numpy(), len(quantities)) for key in keys}
        )
        long.insert(0, "seed", seed)
        long["quantity"] = np.tile(quantities, len(table))
        values = table[quantities].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        long["value"] = values.ravel()
        frames.append(long)
    return pd.concat(frames, ignore_index=True)


def summarise(long: pd.DataFrame, keys, name: str = "quantity") -> pd.DataFrame:
    """One row per (``keys``, quantity) of :func:`per_seed_values`, in order of first
    appearance, with :data:`STATS`; the quantity column is called ``name``."""
    keys = [*keys, "quantity"]
    rows = []
    for group, values in long.groupby(keys, sort=False, dropna=False)["value"]:
        rows.append({**dict(zip(keys, group, strict=True)), **spread(values)})
    return pd.DataFrame(rows, columns=[*keys, *STATS]).rename(columns={"quantity": name})


def with_drop(accuracy: pd.DataFrame) -> pd.DataFrame:
    """The accuracy table with its ``drop`` column (base accuracy − accuracy, computed when an
    older table lacks it; NaN without a base)."""
    if "drop" in accuracy.columns:
        return accuracy
    base = accuracy.loc[accuracy["family"] == "base", "accuracy"]
    return accuracy.assign(
        drop=(float(base.iloc[0]) if len(base) else math.nan) - accuracy["accuracy"]
    )


def accuracy_spread(tables: dict) -> pd.DataFrame:
    """:data:`SEEDS_ACCURACY_COLUMNS`: one row per model of any seed (the first seed's order);
    ``n_seeds`` = the seeds with a finite accuracy of the model; family and level from the
    first seed that has it."""
    tables = {seed: with_drop(table) for seed, table in tables.items()}
    long = per_seed_values(tables, ["model"], ACCURACY_QUANTITIES, "the accuracy table")
    stats = summarise(long, ["model"])
    models = list(dict.fromkeys(long["model"]))
    first = pd.concat(tables.values()).drop_duplicates("model").set_index("model")
    out = pd.DataFrame({"model": models})
    out["family"] = out["model"].map(first["family"])
    out["level"] = out["model"].map(first["level"]).astype(float)
    for quantity in ACCURACY_QUANTITIES:
        part = stats[stats["quantity"] == quantity].set_index("model")
        if quantity == "accuracy":
            out["n_seeds"] = out["model"].map(part["n_seeds"]).astype(int)
        for stat in STATS[1:]:
            out[f"{quantity}_{stat}"] = out["model"].map(part[stat])
    return out[list(SEEDS_ACCURACY_COLUMNS)]


def correlation_values(tables: dict) -> pd.DataFrame:
    """Every seed's Table 2 coefficients (:data:`CORRELATION_COEFFICIENTS`), long format."""
    return per_seed_values(
        tables, CORRELATION_KEYS, CORRELATION_COEFFICIENTS, "the correlation table"
    )


def correlation_spread(values: pd.DataFrame) -> pd.DataFrame:
    """:data:`SEEDS_CORRELATION_COLUMNS` from :func:`correlation_values`: one row per
    (metric, scope, target, coefficient)."""
    return summarise(values, CORRELATION_KEYS, "coefficient")


def sensitivity_values(tables: dict) -> pd.DataFrame:
    """Every seed's named REPS configurations (the grid left out), long format."""
    named = {seed: table[table["config"] != GRID] for seed, table in tables.items()}
    return per_seed_values(named, ["config"], SENSITIVITY_COEFFICIENTS, "the sensitivity table")


def sensitivity_spread(values: pd.DataFrame) -> pd.DataFrame:
    """:data:`SEEDS_SENSITIVITY_COLUMNS` from :func:`sensitivity_values`: one row per
    (named configuration, coefficient)."""
    return summarise(values, ["config"], "coefficient")
