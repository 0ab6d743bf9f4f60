"""The math of the representation metrics (paper eqs. 5–13) on plain numpy arrays.

Every activation matrix is ``n × d`` (probe samples × flattened features). Each matrix is
centred and decomposed ONCE (:func:`centred_spectrum`): the eigenvalues of the smaller of the
centred Gram matrix ``Xc Xcᵀ`` (n × n) and the scatter matrix ``Xcᵀ Xc`` (d × d), in float64,
give the squared singular values; the top right singular vectors come from the eigenvectors
(Gram route: ``V = Xcᵀ U Σ⁻¹``). Effective rank, eigen-decay, ``s_a`` and linear CKA all read
that one decomposition (:class:`LayerSummary`).

Each metric is a :class:`Metric` ``(value, degenerate)``. Degenerate inputs (constant
activations, zero vectors, non-finite values) never give a silent NaN: the value is either a
defined number or NaN, and ``degenerate`` is True. The choices are listed in docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.spatial.distance import pdist

ENTROPY_FLOOR = 1e-12  # p_i at or below this are left out of the entropy (eq. 9)
PROBABILITY_CLIP = 1e-12  # probabilities are clipped to [1e-12, 1] for the KL divergence
REPS_COMPONENTS = ("s_e", "s_alive", "s_s", "s_d")
EQUAL_WEIGHTS = (0.25, 0.25, 0.25, 0.25)


class Metric(NamedTuple):
    value: float
    degenerate: bool = False


def _metric(value: float, degenerate: bool = False) -> Metric:
    return Metric(float(value), bool(degenerate))


NAN_DEGENERATE = Metric(math.nan, True)


# --------------------------------------------------------------------------- decomposition


@dataclass(frozen=True)
class Spectrum:
    """One centred decomposition of an ``n × d`` matrix.

    ``eigenvalues``: squared singular values of the centred matrix, descending, values at the
    numerical noise floor (``<= λ_max · max(n, d) · eps``) set to 0. ``right_vectors``: ``d × r``
    orthonormal top right singular vectors, ``r = min(top_k, rank)``. ``gram`` (n × n, when
    ``d > n``) or ``scatter`` (d × d) plus ``centred`` (when ``d <= n``) serve linear CKA.
    """

    eigenvalues: np.ndarray
    right_vectors: np.ndarray
    gram: np.ndarray | None
    scatter: np.ndarray | None
    centred: np.ndarray | None

    @property
    def singular_values(self) -> np.ndarray:
        return np.sqrt(self.eigenvalues)

    @property
    def rank(self) -> int:
        return int(np.count_nonzero(self.eigenvalues))

    @property
    def uses_gram(self) -> bool:
        return self.gram is not None


def _descending_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, vectors = np.linalg.eigh(matrix)
    # copies: negative strides would push the later products off the BLAS path
    return values[::-1].copy(), np.ascontiguousarray(vectors[:, ::-1])


def _clip_noise_floor(eigenvalues: np.ndarray, size: int) -> np.ndarray:
    """Zero the eigenvalues that a float64 eigensolver cannot tell from 0 (and tiny negatives)."""
    largest = eigenvalues[0] if eigenvalues.size else 0.0
    if not largest > 0:
        return np.zeros_like(eigenvalues)
    tolerance = largest * size * np.finfo(np.float64).eps
    return np.where(eigenvalues > tolerance, eigenvalues, 0.0)


def centre_columns(x: np.ndarray) -> np.ndarray:
    """Column-centred float64 copy of ``x``."""
    centred = np.array(x, dtype=np.float64, copy=True)
    centred -= centred.mean(axis=0)
    return centred


def centred_spectrum(centred: np.ndarray, top_k: int = 20) -> Spectrum:
    """Eigen-decompose the smaller of ``Xc Xcᵀ`` and ``Xcᵀ Xc`` of an already centred matrix."""
    n, d = centred.shape
    if d > n:
        gram = centred @ centred.T  # numpy uses a symmetric rank-k update for A @ A.T
        values, vectors = _descending_eigh(gram)
        values = _clip_noise_floor(values, max(n, d))
        k = min(top_k, int(np.count_nonzero(values)))
        right = (centred.T @ vectors[:, :k]) / np.sqrt(values[:k])
        return Spectrum(values, right, gram, None, None)
    scatter = centred.T @ centred
    values, vectors = _descending_eigh(scatter)
    values = _clip_noise_floor(values, max(n, d))
    k = min(top_k, int(np.count_nonzero(values)))
    return Spectrum(values, np.ascontiguousarray(vectors[:, :k]), None, scatter, centred)


# --------------------------------------------------------------------------- REPS descriptors


def effective_rank(singular_values: np.ndarray) -> Metric:
    """Eq. 9: ``exp(H(p))``, ``p = s / ‖s‖₁``, entropy over ``p_i > 1e-12``.

    All singular values 0 (constant activations): 0, degenerate.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    total = s.sum()
    if not total > 0:
        return Metric(0.0, True)
    p = s / total
    p = p[p > ENTROPY_FLOOR]
    return _metric(math.exp(-float(np.sum(p * np.log(p)))))


def alive_fraction(column_variances: np.ndarray, threshold: float = 0.01) -> Metric:
    """Eq. 10 (the model's own value, not a ratio to base): fraction of units whose variance is
    at least ``threshold × mean variance``. No variance at all: 0, degenerate."""
    variances = np.asarray(column_variances, dtype=np.float64)
    mean = variances.mean() if variances.size else 0.0
    if not mean > 0:
        return Metric(0.0, True)
    return _metric(np.mean(variances >= threshold * mean))


def _separation_ratio(between: float, within: float) -> Metric:
    if within > 0:
        return _metric(between / within)
    return Metric(0.0, True) if between == 0 else NAN_DEGENERATE


def _class_membership(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index of each sample's class, c × n matrix of 1/|class| weights)``."""
    labels = np.asarray(labels)
    classes, index = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError("class separation needs at least two classes in the probe set")
    averaging = np.zeros((classes.size, labels.size))
    averaging[index, np.arange(labels.size)] = 1.0
    averaging /= averaging.sum(axis=1, keepdims=True)
    return index, averaging


def class_separation(x: np.ndarray, labels: np.ndarray) -> Metric:
    """Eq. 11 descriptor: mean pairwise distance between class centroids divided by the mean
    Euclidean distance of the samples to their own class centroid (pooled over all samples).

    Nothing separates and nothing spreads (both 0): 0, degenerate. Every class collapsed to its
    centroid but centroids apart (infinite ratio): NaN, degenerate. Fewer than 2 classes: error.
    """
    index, averaging = _class_membership(labels)
    x = np.asarray(x, dtype=np.float64)
    centroids = averaging @ x
    between = float(np.mean(pdist(centroids)))
    within = float(np.mean(np.linalg.norm(x - centroids[index], axis=1)))
    return _separation_ratio(between, within)


def class_separation_from_gram(gram: np.ndarray, labels: np.ndarray) -> Metric:
    """:func:`class_separation` from the Gram matrix ``X Xᵀ`` alone (O(n²), no pass over the
    d features): ``‖x_i − μ_c‖² = G_ii − 2 (G Mᵀ)_ic + (M G Mᵀ)_cc`` with ``M`` the class
    averaging matrix, and ``‖μ_a − μ_b‖² = C_aa + C_bb − 2 C_ab`` with ``C = M G Mᵀ``."""
    index, averaging = _class_membership(labels)
    to_centroids = gram @ averaging.T  # n × c: x_i · μ_c
    centroid_gram = averaging @ to_centroids  # c × c: μ_a · μ_b
    norms = np.diag(centroid_gram)
    samples = np.arange(index.size)
    within_sq = np.diag(gram) - 2 * to_centroids[samples, index] + norms[index]
    pair_sq = norms[:, None] + norms[None, :] - 2 * centroid_gram
    upper = np.triu_indices(norms.size, k=1)
    between = float(np.mean(np.sqrt(np.maximum(pair_sq[upper], 0.0))))
    within = float(np.mean(np.sqrt(np.maximum(within_sq, 0.0))))
    return _separation_ratio(between, within)


def decay_slope(eigenvalues: np.ndarray, top_m: int = 20) -> Metric:
    """Eq. 12 descriptor δ: minus the least-squares slope of ``log λ_i`` against ``log i`` over
    the top ``m`` positive covariance eigenvalues. Fewer than 2 positive ones: NaN, degenerate.
    """
    values = np.asarray(eigenvalues, dtype=np.float64)[:top_m]
    values = values[values > 0]  # descending input: the positive ones are a prefix
    if values.size < 2:
        return NAN_DEGENERATE
    log_rank = np.log(np.arange(1, values.size + 1))
    slope = np.polyfit(log_rank, np.log(values), 1)[0]
    return _metric(-slope)


# --------------------------------------------------------------------------- layer summary


@dataclass(frozen=True)
class LayerSummary:
    """Everything the comparisons need from one activation matrix, computed once."""

    raw: np.ndarray  # the matrix as given (hidden cosine)
    finite: bool
    spectrum: Spectrum | None
    effective_rank: Metric
    alive_fraction: Metric
    class_separation: Metric
    decay_slope: Metric

    @property
    def shape(self) -> tuple[int, int]:
        return self.raw.shape


def summarize_layer(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    top_k: int = 20,
    alive_threshold: float = 0.01,
    decay_top_m: int = 20,
) -> LayerSummary:
    """Centre and decompose ``x`` (n × d) once and derive the REPS descriptors from it.

    Non-finite activations make every descriptor NaN and degenerate.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"activations must be n × d, got shape {x.shape}")
    if not np.isfinite(x).all():
        return LayerSummary(x, False, None, *(NAN_DEGENERATE,) * 4)
    centred = centre_columns(x)
    spectrum = centred_spectrum(centred, top_k)
    n = x.shape[0]
    covariance_eigenvalues = spectrum.eigenvalues / max(n - 1, 1)
    column_variances = np.einsum("ij,ij->j", centred, centred) / n
    if spectrum.uses_gram:
        separation = class_separation_from_gram(spectrum.gram, labels)
    else:
        separation = class_separation(centred, labels)
    return LayerSummary(
        raw=x,
        finite=True,
        spectrum=spectrum,
        effective_rank=effective_rank(spectrum.singular_values),
        alive_fraction=alive_fraction(column_variances, alive_threshold),
        class_separation=separation,
        decay_slope=decay_slope(covariance_eigenvalues, decay_top_m),
    )


# --------------------------------------------------------------------------- comparisons


def capped_ratio(model: Metric, base: Metric) -> Metric:
    """``min(model / base, 1)`` (s_e eq. 9, s_s eq. 11).

    Base value not a positive finite number: NaN. Model value NaN (an infinite descriptor): 1.
    Degenerate whenever either side is.
    """
    degenerate = model.degenerate or base.degenerate
    if not (math.isfinite(base.value) and base.value > 0):
        return NAN_DEGENERATE
    if math.isnan(model.value):
        return Metric(1.0, True)
    return _metric(min(model.value / base.value, 1.0), degenerate)


def decay_similarity(model: Metric, base: Metric) -> Metric:
    """Eq. 12: ``s_d = 1 / (1 + |δ − δ₀|)``. Base slope undefined: NaN; model slope undefined: 0."""
    if math.isnan(base.value):
        return NAN_DEGENERATE
    if math.isnan(model.value):
        return Metric(0.0, True)
    return _metric(1.0 / (1.0 + abs(model.value - base.value)), model.degenerate or base.degenerate)


def weighted_score(components: Sequence[Metric], weights: Sequence[float]) -> Metric:
    """``Σ w_i c_i`` (eq. 13 REPS, eq. 8 GTFA): NaN if a component is NaN, degenerate if any is."""
    degenerate = any(c.degenerate for c in components)
    values = [c.value for c in components]
    if any(math.isnan(v) for v in values):
        return Metric(math.nan, True)
    return _metric(sum(w * v for w, v in zip(weights, values, strict=True)), degenerate)


def subspace_alignment(base: Spectrum, model: Spectrum, top_k: int = 20) -> Metric:
    """Eq. 6: ``s_a`` = mean singular value of ``V₀ᵀ V`` (cosines of the principal angles).

    ``V₀``: the base's top ``k₀ = min(top_k, rank₀)`` right singular vectors, ``V``: the model's
    top ``min(top_k, rank)``; the sum of the singular values is divided by ``k₀``, so base
    directions the model lacks count as 0. Base rank 0: NaN; model rank 0: 0 (degenerate).
    """
    v0 = base.right_vectors[:, :top_k]
    v1 = model.right_vectors[:, :top_k]
    if v0.shape[1] == 0:
        return NAN_DEGENERATE
    if v1.shape[1] == 0:
        return Metric(0.0, True)
    cosines = np.linalg.svd(v0.T @ v1, compute_uv=False)
    return _metric(min(float(np.sum(cosines)) / v0.shape[1], 1.0))


def linear_cka(base: Spectrum, model: Spectrum) -> Metric:
    """Linear CKA (Kornblith et al. 2019) of centred features:
    ``‖YᵀX‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F)``, as ``⟨K_X, K_Y⟩_F / (‖K_X‖_F ‖K_Y‖_F)`` with the n × n
    Gram matrices when ``d > n``. Base constant: NaN; model constant: 0 (degenerate)."""
    norm_base = math.sqrt(float(np.sum(base.eigenvalues**2)))
    norm_model = math.sqrt(float(np.sum(model.eigenvalues**2)))
    if norm_base == 0:
        return NAN_DEGENERATE
    if norm_model == 0:
        return Metric(0.0, True)
    if base.uses_gram and model.uses_gram:
        cross = float(np.vdot(base.gram, model.gram))
    else:
        cross_cov = base.centred.T @ model.centred
        cross = float(np.vdot(cross_cov, cross_cov))
    return _metric(min(cross / (norm_base * norm_model), 1.0))


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
    return _metric(np.mean(cosines), degenerate)


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
    sum of squares at the rounding floor (``≤ N·eps·Σw²``) means constant weights: base → NaN,
    model → 0 (degenerate).
    """
    count, sum0, sum1, sq0, sq1, cross = (float(v) for v in moments)
    if count == 0 or not np.isfinite(moments).all():
        return NAN_DEGENERATE
    floor = count * np.finfo(np.float64).eps
    spread0 = sq0 - sum0 * sum0 / count
    spread1 = sq1 - sum1 * sum1 / count
    if spread0 <= floor * sq0:
        return NAN_DEGENERATE
    if spread1 <= floor * sq1:
        return Metric(0.0, True)
    covariance = cross - sum0 * sum1 / count
    return _metric(np.clip(covariance / math.sqrt(spread0 * spread1), -1.0, 1.0))


def standardized_cosine(base_weights: np.ndarray, model_weights: np.ndarray) -> Metric:
    """Eq. 5: cosine of the z-scored (over all elements) flattened weights, i.e. their Pearson
    correlation. No weights: NaN. Constant base weights: NaN; constant model weights: 0."""
    return standardized_cosine_from_moments(weight_moments(base_weights, model_weights))


# --------------------------------------------------------------------------- outputs


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
    return _metric(float(weights @ cosines) / float(weights.sum()), degenerate)


def kl_divergence(p0: np.ndarray, p1: np.ndarray) -> Metric:
    """Mean over samples of ``KL(P₀ ‖ P)``, both clipped to ``[1e-12, 1]`` (no renormalising)."""
    q0 = np.clip(p0, PROBABILITY_CLIP, 1.0)
    q1 = np.clip(p1, PROBABILITY_CLIP, 1.0)
    return _metric(np.mean(np.sum(q0 * (np.log(q0) - np.log(q1)), axis=1)))


def class_index_wasserstein(p0: np.ndarray, p1: np.ndarray) -> Metric:
    """Mean over samples of the 1-D Wasserstein-1 distance between ``P₀ᵢ`` and ``Pᵢ`` seen as
    distributions over the class indices ``0 … C−1`` (unit spacing):
    ``Σ_j |CDF₀(j) − CDF(j)|`` — scipy's ``wasserstein_distance(arange(C), arange(C), P₀ᵢ, Pᵢ)``.
    """
    cdf_gap = np.cumsum(p0, axis=1) - np.cumsum(p1, axis=1)
    return _metric(np.mean(np.sum(np.abs(cdf_gap[:, :-1]), axis=1)))


def output_metrics(base_logits: np.ndarray, model_logits: np.ndarray) -> dict[str, Metric]:
    """Table 2's output-level baselines and ``s_f`` over the whole test set."""
    z0 = np.asarray(base_logits, dtype=np.float64)
    z1 = np.asarray(model_logits, dtype=np.float64)
    names = (
        "s_f",
        "prediction_agreement",
        "logits_cosine",
        "logits_l2",
        "kl_divergence",
        "wasserstein",
        "probability_cosine",
    )
    if not (np.isfinite(z0).all() and np.isfinite(z1).all()):
        return dict.fromkeys(names, NAN_DEGENERATE)
    p0, p1 = softmax(z0), softmax(z1)
    return {
        "s_f": confidence_weighted_cosine(p0, p1),
        "prediction_agreement": _metric(np.mean(z0.argmax(axis=1) == z1.argmax(axis=1))),
        "logits_cosine": mean_row_cosine(z0, z1),
        "logits_l2": _metric(np.mean(np.linalg.norm(z0 - z1, axis=1))),
        "kl_divergence": kl_divergence(p0, p1),
        "wasserstein": class_index_wasserstein(p0, p1),
        "probability_cosine": mean_row_cosine(p0, p1),
    }


# --------------------------------------------------------------------------- one layer


@dataclass(frozen=True)
class MetricSettings:
    """The knobs of the metrics (config ``probe`` and ``metrics`` sections)."""

    metric_layers: tuple[str, ...] = ("layer4.1.conv2", "fc")
    trajectory_layers: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4", "fc")
    reps_weights: tuple[float, float, float, float] = (0.15, 0.05, 0.35, 0.45)
    alive_threshold: float = 0.01
    decay_top_m: int = 20
    gtfa_beta: float = 0.45
    gtfa_gamma: float = 0.45
    top_k: int = 20

    @property
    def layers(self) -> tuple[str, ...]:
        """metric_layers ∪ trajectory_layers, metric layers first, no repeats."""
        return tuple(dict.fromkeys((*self.metric_layers, *self.trajectory_layers)))


def compare_layer(
    base: LayerSummary,
    model: LayerSummary,
    s_w: Metric,
    s_f: Metric,
    settings: MetricSettings,
) -> dict[str, Metric]:
    """All per-layer metrics of one layer (docs/metrics.md, "Per layer")."""
    if base.shape != model.shape:
        raise ValueError(f"activation shapes differ: base {base.shape}, model {model.shape}")
    if base.finite and model.finite:
        s_a = subspace_alignment(base.spectrum, model.spectrum, settings.top_k)
        cka = linear_cka(base.spectrum, model.spectrum)
    else:
        s_a = cka = NAN_DEGENERATE
    reps = {
        "s_e": capped_ratio(model.effective_rank, base.effective_rank),
        "s_alive": model.alive_fraction,
        "s_s": capped_ratio(model.class_separation, base.class_separation),
        "s_d": decay_similarity(model.decay_slope, base.decay_slope),
    }
    if not (base.finite and model.finite):
        reps = dict.fromkeys(reps, NAN_DEGENERATE)
    components = [reps[name] for name in REPS_COMPONENTS]
    beta, gamma = settings.gtfa_beta, settings.gtfa_gamma
    return {
        **reps,
        "reps_equal": weighted_score(components, EQUAL_WEIGHTS),
        "reps_weighted": weighted_score(components, settings.reps_weights),
        "s_w": s_w,
        "s_a": s_a,
        "gtfa": weighted_score([s_w, s_a, s_f], (gamma * beta, gamma * (1 - beta), 1 - gamma)),
        "cka_linear": cka,
        "hidden_cosine": mean_row_cosine(base.raw, model.raw),
        "effective_rank": model.effective_rank,
        "alive_fraction": model.alive_fraction,
        "class_separation": model.class_separation,
        "decay_slope": model.decay_slope,
    }
