"""Output-level metrics: ``s_f`` (paper eq. 7, on the probe set by default) and Table 2's
functional baselines (prediction agreement, logit/probability cosine, logit L2, KL divergence,
Wasserstein distance over class indices) over the whole test set."""

from __future__ import annotations

import numpy as np

from compreps.analysis.metrics.compare import mean_row_cosine, rowwise_cosine
from compreps.analysis.metrics.value import NAN_DEGENERATE, Metric, as_metric
from compreps.core.vocabulary import OUTPUT_METRICS

PROBABILITY_CLIP = 1e-12  # probabilities are clipped to [1e-12, 1] for the KL divergence


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confidence_weighted_cosine(p0: np.ndarray, p1: np.ndarray) -> Metric:
    """Eq. 7: ``s_f = Σ w_i cos(P₀ᵢ, Pᵢ)``, ``w_i ∝ max(max P₀ᵢ, max Pᵢ)``, ``Σ w_i = 1``."""
    if not (np.isfinite(p0).all() and np.isfinite(p1).all()):
        return NAN_DEGENERATE
    cosines, degenerate = rowwise_cosine(p0, p1)
    weights = np.maximum(p0.max(axis=1), p1.max(axis=1))
    if not weights.sum() > 0:
        return NAN_DEGENERATE
    return as_metric(float(weights @ cosines) / float(weights.sum()), degenerate)


def kl_divergence(p0: np.ndarray, p1: np.ndarray) -> Metric:
    """Mean over samples of ``KL(P₀ ‖ P)``, both clipped to ``[1e-12, 1]`` (no renormalising)."""
    q0 = np.clip(p0, PROBABILITY_CLIP, 1.0)
    q1 = np.clip(p1, PROBABILITY_CLIP, 1.0)
    return as_metric(np.mean(np.sum(q0 * (np.log(q0) - np.log(q1)), axis=1)))


def class_index_wasserstein(p0: np.ndarray, p1: np.ndarray) -> Metric:
    """Mean over samples of the 1-D Wasserstein-1 distance between ``P₀ᵢ`` and ``Pᵢ`` seen as
    distributions over the class indices ``0 … C−1`` (unit spacing):
    ``Σ_j |CDF₀(j) − CDF(j)|`` — scipy's ``wasserstein_distance(arange(C), arange(C), P₀ᵢ, Pᵢ)``.
    """
    cdf_gap = np.cumsum(p0, axis=1) - np.cumsum(p1, axis=1)
    return as_metric(np.mean(np.sum(np.abs(cdf_gap[:, :-1]), axis=1)))


def output_metrics(
    base_logits: np.ndarray, model_logits: np.ndarray, s_f_rows: np.ndarray | None = None
) -> dict[str, Metric]:
    """Table 2's output-level baselines over the whole test set, and ``s_f`` (eq. 7) over the
    test rows ``s_f_rows`` (the probe set: "GTFA ... using 200 test samples"; None: all)."""
    z0 = np.asarray(base_logits, dtype=np.float64)
    z1 = np.asarray(model_logits, dtype=np.float64)
    if not (np.isfinite(z0).all() and np.isfinite(z1).all()):
        return dict.fromkeys(OUTPUT_METRICS, NAN_DEGENERATE)
    p0, p1 = softmax(z0), softmax(z1)
    rows = slice(None) if s_f_rows is None else np.asarray(s_f_rows)
    return {
        "s_f": confidence_weighted_cosine(p0[rows], p1[rows]),
        "prediction_agreement": as_metric(np.mean(z0.argmax(axis=1) == z1.argmax(axis=1))),
        "logits_cosine": mean_row_cosine(z0, z1),
        "logits_l2": as_metric(np.mean(np.linalg.norm(z0 - z1, axis=1))),
        "kl_divergence": kl_divergence(p0, p1),
        "wasserstein": class_index_wasserstein(p0, p1),
        "probability_cosine": mean_row_cosine(p0, p1),
    }
