"""A metric value and the one rule for degenerate inputs.

Each metric is a :class:`Metric` ``(value, degenerate)``. Degenerate inputs (constant
activations, zero vectors, non-finite values) never give a silent NaN: the value is either a
defined number or NaN, and ``degenerate`` is True (the choices per metric: docs/metrics.md).
Combining metrics (a weighted sum: GTFA eq. 8 and REPS of 000, or the mean over layers) follows
ONE rule, :func:`combine`: NaN if any input is NaN, degenerate if any input is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np


class Metric(NamedTuple):
    value: float
    degenerate: bool = False


def as_metric(value: float, degenerate: bool = False) -> Metric:
    return Metric(float(value), bool(degenerate))


NAN_DEGENERATE = Metric(math.nan, True)


def collapse_limit(base_collapsed: bool, model_collapsed: bool) -> Metric | None:
    """A similarity where one side has collapsed (constant activations or weights, no
    direction): both collapsed → 1 (identical up to a shift), one side only → 0 (nothing of
    the other is kept); degenerate either way. ``None`` when neither side collapsed."""
    if base_collapsed or model_collapsed:
        return Metric(float(base_collapsed and model_collapsed), True)
    return None


def combine(metrics: Iterable[Metric], reduce: Callable[[list[float]], float]) -> Metric:
    """``reduce`` of the values; NaN (degenerate) if any value is NaN, degenerate if any input
    is; no inputs: NaN, degenerate."""
    metrics = list(metrics)
    values = [m.value for m in metrics]
    if not metrics or any(math.isnan(v) for v in values):
        return NAN_DEGENERATE
    return as_metric(reduce(values), any(m.degenerate for m in metrics))


def weighted_score(components: Sequence[Metric], weights: Sequence[float]) -> Metric:
    """``Σ w_i c_i``: REPS (000: the unnumbered sum after eq. 13; 001: eq. 9), GTFA (000, eq. 8)."""
    return combine(
        components, lambda values: sum(w * v for w, v in zip(weights, values, strict=True))
    )


def average_metric(values: Iterable[Metric]) -> Metric:
    """Model-level value of a per-layer metric: the mean over the metric layers."""
    return combine(values, lambda numbers: float(np.mean(numbers)))
