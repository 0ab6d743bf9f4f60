"""REPS weight sensitivity (Table 3): the ``sensitivity`` step.

REPS = Σ wᵢ·sᵢ over the components (s_e, s_alive, s_s, s_d) (000: the unnumbered sum after
eq. 13; 001: eq. 9), recombined from the model-level components with other weights and
correlated with accuracy over the compressed models of the paper's three families (coreset,
prune, quant; every compressed model when the run has none of them), as the paper's Table 3.
The named rows are the six configurations of the paper's Table 3
(:func:`named_reps_configs`: ``weighted`` = this run's ``metrics.reps.weights``, i.e. the
weights of the ``reps_weighted`` metric; the other five as the paper prints them); every point
of the simplex grid follows as ``config = grid``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from compreps.analysis.paper import reps_configs
from compreps.analysis.statistics.rank_stats import (
    MIN_MODELS,
    ROWWISE,
    TARGET,
    is_constant,
    model_level_table,
    read_inputs,
)
from compreps.core.files import CompRepsError, log, write_csv
from compreps.core.settings import (
    MetricsSettings,
    SensitivitySettings,
    add_arguments,
    from_arguments,
    step_parser,
)
from compreps.core.vocabulary import (
    COEFFICIENTS,
    PAPER_FAMILIES,
    REPS_COMPONENTS,
    SENSITIVITY_COLUMNS,
    SENSITIVITY_WEIGHT_COLUMNS,
)


def named_reps_configs(metrics: MetricsSettings) -> dict[str, tuple[float, ...]]:
    """Table 3's named REPS weight configurations, ``name -> (w_effective_rank, w_alive,
    w_separation, w_decay)``; the ``weighted`` row takes the configured weights."""
    return reps_configs(metrics.reps.weights.as_tuple())


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
    compressed models whose four components all have a value (degenerate ones included: the
    flag is information; only a NaN, from a non-finite dump, leaves a model out)."""
    table = model_level_table(metrics_df, accuracy_df)
    table = table[table["metric"].isin(REPS_COMPONENTS)]
    # Table 3 pools the models of the paper's three families, as the paper's does (all models
    # when the run has none of them).
    paper = table["family"].isin(PAPER_FAMILIES)
    if paper.any():
        table = table[paper]
    values = table.pivot_table(
        index="model", columns="metric", values="value", aggfunc="first", dropna=False
    )
    values = values.reindex(columns=list(REPS_COMPONENTS))
    accuracy = table.drop_duplicates("model").set_index("model")["accuracy"]
    valid = values.notna().all(axis=1) & accuracy.reindex(values.index).notna()
    models = list(values.index[valid])
    return values.loc[models].to_numpy(float), accuracy.loc[models].to_numpy(float), models


def sensitivity_table(
    metrics_df: pd.DataFrame,
    accuracy_df: pd.DataFrame,
    grid_step: float,
    named: dict[str, tuple[float, ...]],
) -> pd.DataFrame:
    """Table 3: REPS recombined with the named weight configurations and every simplex grid
    point (``config = grid``), correlated with accuracy over the compressed models of the paper's
    three families (:func:`component_matrix`).
    ``named``: :func:`named_reps_configs`."""
    components, accuracy, models = component_matrix(metrics_df, accuracy_df)
    grid = simplex_grid(grid_step)
    names = list(named) + ["grid"] * len(grid)
    weights = np.vstack([np.array(list(named.values())), grid])
    frame = pd.DataFrame(weights, columns=list(SENSITIVITY_WEIGHT_COLUMNS))
    frame.insert(0, "config", names)
    frame["n"] = len(models)
    if len(models) < MIN_MODELS or is_constant(accuracy):
        for coef in COEFFICIENTS:
            frame[coef] = math.nan
        return frame[list(SENSITIVITY_COLUMNS)]
    reps = weights @ components.T  # (configs × models)
    target = np.broadcast_to(accuracy, reps.shape)
    for coef in COEFFICIENTS:
        frame[coef] = ROWWISE[coef](reps, target)
    return frame[list(SENSITIVITY_COLUMNS)]


def main(argv: list[str]) -> int:
    """``sensitivity``: read the tables, write Table 3."""
    parser = step_parser(
        argv[0], "Table 3: REPS weight configurations and a simplex grid.", ("metrics", "accuracy")
    )
    parser.add_argument("--out", required=True)
    add_arguments(parser, SensitivitySettings)
    add_arguments(parser, MetricsSettings)
    args = parser.parse_args(argv[1:])
    named = named_reps_configs(from_arguments(MetricsSettings, args))
    grid_step = from_arguments(SensitivitySettings, args).grid_step
    table = sensitivity_table(*read_inputs(args), grid_step, named)
    write_csv(table, args.out)
    log(
        f"sensitivity: {len(table)} weight configurations over {int(table['n'].iloc[0])} "
        f"models, target {TARGET} -> {args.out}"
    )
    return 0
