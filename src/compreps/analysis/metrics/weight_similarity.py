"""Weight similarity ``s_w`` (paper eq. 5) of a model's Conv2d/Linear weights with the base's.

The weights come from the dumps (``/weights/<module>``, flattened, definition order).
"""

from __future__ import annotations

import math

import numpy as np

from compreps.analysis.metrics.value import NAN_DEGENERATE, Metric, as_metric, collapse_limit
from compreps.core.files import CompRepsError


def weight_moments(base_weights: np.ndarray, model_weights: np.ndarray) -> np.ndarray:
    """``[N, Σw₀, Σw, Σw₀², Σw², Σw₀w]`` in float64: additive over modules, so the weights of a
    container layer or of the whole model never need to be concatenated."""
    w0 = np.asarray(base_weights, dtype=np.float64).ravel()
    w1 = np.asarray(model_weights, dtype=np.float64).ravel()
    if w0.shape != w1.shape:
        raise ValueError(f"weight vectors differ in size: {w0.size} vs {w1.size}")
    return np.array([w0.size, w0.sum(), w1.sum(), w0 @ w0, w1 @ w1, w0 @ w1])


def standardized_cosine_from_moments(moments: np.ndarray) -> Metric:
    """Eq. 5 from :func:`weight_moments` (summed over the modules of a layer).

    The cosine of the z-scored vectors is their Pearson correlation
    ``Σ(w₀−m₀)(w−m) / √(Σ(w₀−m₀)² Σ(w−m)²)``. No weights or non-finite ones: NaN. A centred
    sum of squares at the rounding floor (``≤ N·eps·Σw²``) means constant weights: on one side
    → 0, on both → 1 (degenerate, :func:`~compreps.analysis.metrics.value.collapse_limit`).
    """
    count, sum0, sum1, sq0, sq1, cross = (float(v) for v in moments)
    if count == 0 or not np.isfinite(moments).all():
        return NAN_DEGENERATE
    floor = count * np.finfo(np.float64).eps
    spread0 = sq0 - sum0 * sum0 / count
    spread1 = sq1 - sum1 * sum1 / count
    limit = collapse_limit(spread0 <= floor * sq0, spread1 <= floor * sq1)
    if limit is not None:
        return limit
    covariance = cross - sum0 * sum1 / count
    return as_metric(np.clip(covariance / math.sqrt(spread0 * spread1), -1.0, 1.0))


def standardized_cosine(base_weights: np.ndarray, model_weights: np.ndarray) -> Metric:
    """Eq. 5: cosine of the z-scored (over all elements) flattened weights, i.e. their Pearson
    correlation. No weights: NaN. Constant weights on one side: 0; on both: 1."""
    return standardized_cosine_from_moments(weight_moments(base_weights, model_weights))


def in_layer(module: str, layer: str) -> bool:
    """``module`` is ``layer`` itself or lies inside the container ``layer``."""
    return module == layer or module.startswith(layer + ".")


def layer_weights(weights: dict[str, np.ndarray], layer: str) -> np.ndarray:
    """The weights of ``layer`` itself or, for a container (``layer1``), of every Conv2d/Linear
    inside it, concatenated in definition order; empty when the layer holds none."""
    parts = [w for name, w in weights.items() if in_layer(name, layer)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)


def module_moments(base: dict[str, np.ndarray], model: dict[str, np.ndarray]) -> dict:
    """:func:`weight_moments` of every Conv2d/Linear module."""
    if list(base) != list(model) or any(base[k].size != model[k].size for k in base):
        raise CompRepsError(
            "the model's Conv2d/Linear weights do not match the base's shapes "
            "(different architecture or width)"
        )
    return {name: weight_moments(base[name], model[name]) for name in base}


def pooled_weight_similarity(moments: dict[str, np.ndarray], layer: str | None) -> Metric:
    """Eq. 5 over the modules of ``layer`` (all modules when ``layer`` is None)."""
    chosen = [m for name, m in moments.items() if layer is None or in_layer(name, layer)]
    return standardized_cosine_from_moments(sum(chosen) if chosen else np.zeros(6))
