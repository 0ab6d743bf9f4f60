"""Comparisons of a model's layer with the base's (eqs. 6, 9, 12, 13 of 000, linear CKA and
debiased CKA).

Each function takes the two :class:`~compreps.analysis.metrics.spectra.LayerSummary` (or their
spectra) and
returns a :class:`~compreps.analysis.metrics.value.Metric`; :func:`compare_layer` gives every
per-layer metric.
"""

from __future__ import annotations

import math

import numpy as np

from compreps.analysis.metrics.spectra import LayerSummary, Spectrum
from compreps.analysis.metrics.value import (
    NAN_DEGENERATE,
    Metric,
    as_metric,
    collapse_limit,
    weighted_score,
)
from compreps.core.settings import MetricsSettings
from compreps.core.vocabulary import EQUAL_WEIGHTS, REPS_COMPONENTS


def capped_ratio(model: Metric, base: Metric) -> Metric:
    """``min(r / r₀, 1)`` (s_e eq. 9, s_s eq. 12 of 000), with its limits.

    ``r₀ = 0`` (base collapsed): 1 (``r / r₀ → ∞`` for ``r > 0``; ``r = r₀ = 0`` is identity).
    ``r = ∞`` (perfect separation): 1; ``r₀ = ∞``: 1 if ``r = ∞`` too, else 0 (``r / r₀ → 0``).
    NaN only for NaN input (non-finite activations). Degenerate whenever either side is.
    """
    degenerate = model.degenerate or base.degenerate
    if math.isnan(model.value) or math.isnan(base.value):
        return NAN_DEGENERATE
    if math.isinf(base.value):
        return Metric(float(math.isinf(model.value)), True)
    if base.value <= 0 or math.isinf(model.value):
        return Metric(1.0, True)
    return as_metric(min(model.value / base.value, 1.0), degenerate)


def decay_similarity(model: Metric, base: Metric) -> Metric:
    """Eq. 13 of 000: ``s_d = 1 / (1 + |δ − δ₀|)``. An infinite δ (fewer than two positive
    eigenvalues) gives the limit 0 against a finite δ₀, and 1 when both are infinite (both
    spectra are a single spike). NaN only for NaN input."""
    if math.isnan(model.value) or math.isnan(base.value):
        return NAN_DEGENERATE
    limit = collapse_limit(math.isinf(base.value), math.isinf(model.value))
    if limit is not None:
        return limit
    return as_metric(
        1.0 / (1.0 + abs(model.value - base.value)), model.degenerate or base.degenerate
    )


def subspace_alignment(base: Spectrum, model: Spectrum, top_k: int = 20) -> Metric:
    """Eq. 6: ``s_a`` = mean singular value of ``V₀ᵀ V`` (cosines of the principal angles).

    ``V₀``: the base's top ``k₀ = min(top_k, rank₀)`` right singular vectors, ``V``: the model's
    top ``min(top_k, rank)``; the sum of the singular values is divided by ``k₀``, so base
    directions the model lacks count as 0. Rank 0 (constant activations) on one side: 0; on
    both: 1 (:func:`~compreps.analysis.metrics.value.collapse_limit`).
    """
    v0 = base.right_vectors[:, :top_k]
    v1 = model.right_vectors[:, :top_k]
    limit = collapse_limit(v0.shape[1] == 0, v1.shape[1] == 0)
    if limit is not None:
        return limit
    cosines = np.linalg.svd(v0.T @ v1, compute_uv=False)
    return as_metric(min(float(np.sum(cosines)) / v0.shape[1], 1.0))


def linear_cka(base: Spectrum, model: Spectrum) -> Metric:
    """Linear CKA (Kornblith et al. 2019) of centred features:
    ``‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F)``, as ``⟨K_X, K_Y⟩_F / (‖K_X‖_F ‖K_Y‖_F)`` with the n × n
    Gram matrices when ``d > n``. Constant activations on one side: 0; on both: 1."""
    norm_base = math.sqrt(float(np.sum(base.eigenvalues**2)))
    norm_model = math.sqrt(float(np.sum(model.eigenvalues**2)))
    limit = collapse_limit(norm_base == 0, norm_model == 0)
    if limit is not None:
        return limit
    if base.uses_gram and model.uses_gram:
        cross = float(np.vdot(base.gram, model.gram))
    else:
        cross_cov = base.centred.T @ model.centred
        cross = float(np.vdot(cross_cov, cross_cov))
    return as_metric(min(cross / (norm_base * norm_model), 1.0))


def _gram(spectrum: Spectrum) -> np.ndarray:
    """The n × n linear Gram matrix of the centred features."""
    if spectrum.uses_gram:
        return spectrum.gram
    return spectrum.centred @ spectrum.centred.T


def unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """The unbiased HSIC estimator of Song et al. (2012), with ``K̃``, ``L̃`` the Gram matrices
    with zeroed diagonals: ``[tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3))``
    (needs n ≥ 4)."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    row_k, row_l = k.sum(axis=1), l.sum(axis=1)
    trace = float(np.vdot(k, l))
    total = float(row_k.sum() * row_l.sum()) / ((n - 1) * (n - 2))
    cross = 2.0 * float(row_k @ row_l) / (n - 2)
    return (trace + total - cross) / (n * (n - 3))


def debiased_cka(base: Spectrum, model: Spectrum) -> Metric:
    """Debiased linear CKA: linear CKA with the unbiased HSIC estimator (Song et al. 2012)
    in place of the biased one, ``HSIC_u(K₀, K) / √(HSIC_u(K₀, K₀) HSIC_u(K, K))``; the
    biased estimator is inflated when the features outnumber the probe images. Not clipped
    (it may be slightly negative). Constant activations on one side: 0; on both: 1; fewer than
    4 probe images: NaN, degenerate."""
    limit = collapse_limit(not base.eigenvalues.any(), not model.eigenvalues.any())
    if limit is not None:
        return limit
    k0, k1 = _gram(base), _gram(model)
    if k0.shape[0] < 4:
        return NAN_DEGENERATE
    denominator = unbiased_hsic(k0, k0) * unbiased_hsic(k1, k1)
    if not denominator > 0:
        return NAN_DEGENERATE
    return as_metric(unbiased_hsic(k0, k1) / math.sqrt(denominator))


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cosine of each row of ``a`` with the same row of ``b`` (float64 accumulation).

    A row pair with one zero vector gets 0, two zero vectors get 1 (identical); the flag says
    whether any zero vector occurred.
    """
    dots = np.einsum("ij,ij->i", a, b, dtype=np.float64)
    norm_a = np.sqrt(np.einsum("ij,ij->i", a, a, dtype=np.float64))
    norm_b = np.sqrt(np.einsum("ij,ij->i", b, b, dtype=np.float64))
    zero_a, zero_b = norm_a == 0, norm_b == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = dots / (norm_a * norm_b)
    cosines = np.where(zero_a | zero_b, np.where(zero_a & zero_b, 1.0, 0.0), cosines)
    return np.clip(cosines, -1.0, 1.0), bool(np.any(zero_a | zero_b))


def mean_row_cosine(a: np.ndarray, b: np.ndarray) -> Metric:
    """Mean per-sample cosine (``hidden_cosine``, ``logits_cosine``, ``probability_cosine``)."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return NAN_DEGENERATE
    cosines, degenerate = rowwise_cosine(a, b)
    return as_metric(np.mean(cosines), degenerate)


def compare_layer(
    base: LayerSummary,
    model: LayerSummary,
    s_w: Metric,
    s_f: Metric,
    settings: MetricsSettings,
) -> dict[str, Metric]:
    """All per-layer metrics of one layer (docs/metrics.md, "Per layer")."""
    if base.shape != model.shape:
        raise ValueError(f"activation shapes differ: base {base.shape}, model {model.shape}")
    if base.finite and model.finite:
        s_a = subspace_alignment(base.spectrum, model.spectrum, settings.gtfa.top_k)
        cka = linear_cka(base.spectrum, model.spectrum)
        cka_debiased = debiased_cka(base.spectrum, model.spectrum)
    else:
        s_a = cka = cka_debiased = NAN_DEGENERATE
    reps = {
        "s_e": capped_ratio(model.effective_rank, base.effective_rank),
        "s_alive": model.alive_fraction,
        "s_s": capped_ratio(model.class_separation, base.class_separation),
        "s_d": decay_similarity(model.decay_slope, base.decay_slope),
    }
    if not (base.finite and model.finite):
        reps = dict.fromkeys(reps, NAN_DEGENERATE)
    components = [reps[name] for name in REPS_COMPONENTS]
    beta, gamma = settings.gtfa.beta, settings.gtfa.gamma
    return {
        **reps,
        "reps_equal": weighted_score(components, EQUAL_WEIGHTS),
        "reps_weighted": weighted_score(components, settings.reps.weights.as_tuple()),
        "s_w": s_w,
        "s_a": s_a,
        "gtfa": weighted_score([s_w, s_a, s_f], (gamma * beta, gamma * (1 - beta), 1 - gamma)),
        "cka_linear": cka,
        "hidden_cosine": mean_row_cosine(base.raw, model.raw),
        "effective_rank": model.effective_rank,
        "alive_fraction": model.alive_fraction,
        "class_separation": model.class_separation,
        "decay_slope": model.decay_slope,
        "cka_debiased": cka_debiased,
    }
