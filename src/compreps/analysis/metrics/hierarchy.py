"""Representation-hierarchy metrics (study 004, He et al., "Demystifying When Pruning Works via
Representation Hierarchies"): how far a compressed model moved from base in hidden, logit and
probability space, on the same probe samples. numpy/scipy only.

Per sample ``i`` (row), then averaged over samples; ``h`` = penultimate features (the input of
``fc``), ``z`` = logits, ``Δz = z − z₀`` (``…₀`` = base), ``p = softmax(z / τ)``:

- ``hidden_deviation``, ``logit_deviation``: ``1 − cos(h₀, h)``, ``1 − cos(z₀, z)``;
- ``hidden_parallel`` / ``hidden_orthogonal``, ``logit_parallel`` / ``logit_orthogonal``:
  ``Δz = Δz∥ + Δz⊥`` with ``Δz∥ = α z₀``, ``α = ⟨Δz, z₀⟩ / ‖z₀‖²``; the metrics are
  ``‖Δz∥‖ / ‖z₀‖ = |α|`` and ``‖Δz⊥‖ / ‖z₀‖`` (relative to the base vector, so invariant to a
  common rescaling). 004's second-order estimate: ``1 − cos ≈ ‖Δz⊥‖² / (2 ‖z₀‖²)``;
- for each temperature τ: ``probability_deviation_t<τ>`` = ``1 − cos(p₀, p)``;
  ``kl_t<τ>`` = ``KL(p ‖ p₀) = Σⱼ pⱼ (ln pⱼ − ln p₀ⱼ)`` — compressed first, base second;
  ``kl_estimate_t<τ>`` = ``Var_{j∼p}(Δzⱼ) / (2τ²)``, 004's closed form, variance under the
  compressed model's distribution (the first argument of the KL; both agree to second order).

Conventions (every degenerate case has a stated outcome and is marked ``degenerate``, the
one value type of :mod:`compreps.analysis.metrics.value`; the
formulas and their derivation: docs/metrics.md, "Representation-hierarchy metrics"):

- ``1 − cos`` is computed as ``½ ‖a/‖a‖ − b/‖b‖‖²`` (an identity, without cancellation near cos = 1,
  004's regime). One zero vector: 1 (cos 0); both zero: 0 (identical). Degenerate.
- A zero base vector has no direction: with ``Δz = 0`` too the split is (0, 0); otherwise the
  sample is left out of the parallel/orthogonal means (the ratios are infinite). Degenerate; no
  sample left: NaN.
- Non-finite hidden features make the hidden metrics NaN; non-finite logits make every logit,
  probability and KL metric NaN (degenerate). No samples: NaN (degenerate).
- Log-probabilities come from ``scipy.special.log_softmax`` (no clipping: finite logits give
  finite log-probabilities); rounding can leave a KL of −1e-17, clipped at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import log_softmax

from compreps.analysis.metrics.value import NAN_DEGENERATE, Metric
from compreps.core.files import CompRepsError

DEFAULT_TEMPERATURES = (1.0, 0.5)
SPACE_METRICS = ("deviation", "parallel", "orthogonal")
TEMPERATURE_METRICS = ("probability_deviation", "kl", "kl_estimate")

__all__ = [
    "DEFAULT_TEMPERATURES",
    "hierarchy_metric_names",
    "hierarchy_metrics",
    "hierarchy_metric_values",
    "temperature_suffix",
]


def temperature_suffix(temperature: float) -> str:
    """``t1``, ``t0.5``, ``t2``: a name part safe in CSV cells and file names."""
    return "t" + format(float(temperature), "g")


def _check_temperatures(temperatures: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(t) for t in temperatures)
    if not values:
        raise CompRepsError("hierarchy metrics need at least one temperature")
    bad = [t for t in values if not (math.isfinite(t) and t > 0)]
    if bad:
        raise CompRepsError(f"temperatures must be finite and > 0, got {bad}")
    suffixes = [temperature_suffix(t) for t in values]
    if len(set(suffixes)) != len(suffixes):
        raise CompRepsError(f"temperatures {list(values)} give repeated names {suffixes}")
    return values


def hierarchy_metric_names(temperatures: Sequence[float] = DEFAULT_TEMPERATURES) -> list[str]:
    """Every metric name :func:`hierarchy_metrics` returns, in its order."""
    names = [f"{space}_{part}" for space in ("hidden", "logit") for part in SPACE_METRICS]
    for t in _check_temperatures(temperatures):
        names += [f"{metric}_{temperature_suffix(t)}" for metric in TEMPERATURE_METRICS]
    return names


def _pair(base: np.ndarray, model: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    base = np.asarray(base, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    if base.ndim != 2 or base.shape != model.shape:
        raise CompRepsError(
            f"{what}: base and model must be matrices of one shape (samples × features), "
            f"got {base.shape} and {model.shape}"
        )
    return base, model


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(x, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    return x / safe[:, None], norms


def row_deviation(base: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Per-row ``1 − cos`` as ``½ ‖â − b̂‖²`` (zero rows: see the module's conventions)."""
    unit_base, norm_base = _unit_rows(base)
    unit_model, norm_model = _unit_rows(model)
    deviation = 0.5 * np.sum((unit_base - unit_model) ** 2, axis=1)
    zero_base, zero_model = norm_base == 0, norm_model == 0
    deviation = np.where(zero_base ^ zero_model, 1.0, deviation)
    return np.clip(np.where(zero_base & zero_model, 0.0, deviation), 0.0, 2.0)


def row_split(base: np.ndarray, model: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``(‖Δ∥‖/‖base‖, ‖Δ⊥‖/‖base‖)``; NaN for a zero base row with ``Δ ≠ 0``."""
    delta = model - base
    norm_sq = np.einsum("ij,ij->i", base, base)
    has_direction = norm_sq > 0
    alpha = np.einsum("ij,ij->i", delta, base) / np.where(has_direction, norm_sq, 1.0)
    alpha = np.where(has_direction, alpha, 0.0)
    orthogonal = np.linalg.norm(delta - alpha[:, None] * base, axis=1)
    orthogonal = orthogonal / np.sqrt(np.where(has_direction, norm_sq, 1.0))
    unchanged = ~np.any(delta != 0, axis=1)
    undefined = ~has_direction & ~unchanged
    nan = np.full(len(base), np.nan)
    return (
        np.where(undefined, nan, np.abs(alpha)),
        np.where(undefined, nan, np.where(has_direction, orthogonal, 0.0)),
    )


def _mean(values: np.ndarray, degenerate: bool) -> Metric:
    kept = values[~np.isnan(values)]
    if kept.size == 0:
        return NAN_DEGENERATE
    return Metric(float(np.mean(kept)), bool(degenerate or kept.size < values.size))


def space_metrics(base: np.ndarray, model: np.ndarray, space: str) -> dict[str, Metric]:
    """``<space>_deviation``, ``<space>_parallel``, ``<space>_orthogonal`` of one space."""
    names = [f"{space}_{part}" for part in SPACE_METRICS]
    if base.shape[0] == 0 or not (np.isfinite(base).all() and np.isfinite(model).all()):
        return dict.fromkeys(names, NAN_DEGENERATE)
    zero = bool(np.any(~base.any(axis=1)) or np.any(~model.any(axis=1)))
    parallel, orthogonal = row_split(base, model)
    values = (_mean(row_deviation(base, model), zero), _mean(parallel, zero))
    return dict(zip(names, (*values, _mean(orthogonal, zero)), strict=True))


def softmax_metrics(
    base_logits: np.ndarray, logits: np.ndarray, temperature: float
) -> dict[str, Metric]:
    """``probability_deviation``, ``kl`` (``KL(p ‖ p₀)``) and ``kl_estimate`` at one τ."""
    suffix = temperature_suffix(temperature)
    names = [f"{metric}_{suffix}" for metric in TEMPERATURE_METRICS]
    finite = np.isfinite(base_logits).all() and np.isfinite(logits).all()
    if base_logits.shape[0] == 0 or not finite:
        return dict.fromkeys(names, NAN_DEGENERATE)
    log_p0 = log_softmax(base_logits / temperature, axis=1)
    log_p = log_softmax(logits / temperature, axis=1)
    p = np.exp(log_p)
    kl = np.maximum(np.sum(p * (log_p - log_p0), axis=1), 0.0)
    delta = logits - base_logits
    centred = delta - np.sum(p * delta, axis=1, keepdims=True)
    estimate = np.sum(p * centred**2, axis=1) / (2.0 * temperature**2)
    deviation = row_deviation(np.exp(log_p0), p)
    return {
        names[0]: Metric(float(np.mean(deviation))),
        names[1]: Metric(float(np.mean(kl))),
        names[2]: Metric(float(np.mean(estimate))),
    }


def hierarchy_metric_values(
    hidden_pair: tuple[np.ndarray, np.ndarray],
    logit_pair: tuple[np.ndarray, np.ndarray],
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
) -> dict[str, Metric]:
    """Every hierarchy metric as a :class:`~compreps.analysis.metrics.value.Metric`, names as
    :func:`hierarchy_metric_names`. Each pair is ``(base, compressed)``; rows are probe samples
    in the same order for both (the hidden and the logit matrices may differ in row count)."""
    temperatures = _check_temperatures(temperatures)
    h0, h1 = _pair(*hidden_pair, "hidden features")
    z0, z1 = _pair(*logit_pair, "logits")
    result = {**space_metrics(h0, h1, "hidden"), **space_metrics(z0, z1, "logit")}
    for t in temperatures:
        result.update(softmax_metrics(z0, z1, t))
    return result


def hierarchy_metrics(
    hidden_base: np.ndarray,
    hidden: np.ndarray,
    logits_base: np.ndarray,
    logits: np.ndarray,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
) -> dict[str, float]:
    """:func:`hierarchy_metric_values` without the degenerate marks: ``{name: value}``."""
    values = hierarchy_metric_values((hidden_base, hidden), (logits_base, logits), temperatures)
    return {name: entry.value for name, entry in values.items()}
