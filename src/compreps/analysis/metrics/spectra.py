"""One decomposition per activation matrix and the REPS descriptors it gives (eqs. 9-12).

Every activation matrix is ``n × d`` (probe samples × flattened features). Each matrix is
centred and decomposed ONCE (:func:`centred_spectrum`): the eigenvalues of the smaller of the
centred Gram matrix ``Xc Xcᵀ`` (n × n) and the scatter matrix ``Xcᵀ Xc`` (d × d), in float64,
give the squared singular values; the top right singular vectors come from the eigenvectors
(Gram route: ``V = Xcᵀ U Σ⁻¹``). Effective rank, eigen-decay, ``s_a`` and linear CKA all read
that one decomposition (:class:`LayerSummary`); so does the figures' eigenvalue-decay panel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import pdist

from compreps.analysis.metrics.value import NAN_DEGENERATE, Metric, as_metric

ENTROPY_FLOOR = 1e-12  # p_i at or below this are left out of the entropy (eq. 9)


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
    return as_metric(math.exp(-float(np.sum(p * np.log(p)))))


def alive_fraction(column_variances: np.ndarray, threshold: float = 0.01) -> Metric:
    """Eq. 10 (the model's own value, not a ratio to base): fraction of units whose variance is
    at least ``threshold × mean variance``. No variance at all: 0, degenerate."""
    variances = np.asarray(column_variances, dtype=np.float64)
    mean = variances.mean() if variances.size else 0.0
    if not mean > 0:
        return Metric(0.0, True)
    return as_metric(np.mean(variances >= threshold * mean))


def _separation_ratio(between: float, within: float) -> Metric:
    """``d_inter / d_intra`` with its limits: no spread but centroids apart → ``inf`` (perfect
    separation, the limit of ``d_intra → 0``); nothing apart and nothing spread (one point) →
    0 (a collapsed layer separates nothing). Both limits are flagged degenerate."""
    if within > 0:
        return as_metric(between / within)
    return Metric(0.0 if between == 0 else math.inf, True)


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
    """Eqs. 11-12 of 000 (eq. 7 of 001): ``r_s = d_inter / d_intra``, ``d_inter`` the mean
    distance over class-centroid pairs, ``d_intra = (1/C) Σ_c (1/N_c) Σ_{i∈c} ‖a_i − c_c‖``
    (each class's mean distance to its centroid, then the mean over classes: every class weighs
    the same whatever its size).

    Nothing separates and nothing spreads (both 0): 0, degenerate. Every class collapsed to its
    centroid but centroids apart: ``inf``, degenerate. Fewer than 2 classes: error.
    """
    index, averaging = _class_membership(labels)
    x = np.asarray(x, dtype=np.float64)
    centroids = averaging @ x
    between = float(np.mean(pdist(centroids)))
    within = float(np.mean(averaging @ np.linalg.norm(x - centroids[index], axis=1)))
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
    within = float(np.mean(averaging @ np.sqrt(np.maximum(within_sq, 0.0))))
    return _separation_ratio(between, within)


def decay_slope(eigenvalues: np.ndarray, top_m: int = 20) -> Metric:
    """Eq. 13 of 000 (eq. 8 of 001) descriptor δ: minus the least-squares slope of ``log λ_i``
    against ``log i`` over the top ``m`` positive covariance eigenvalues.

    Fewer than 2 positive ones: ``inf``, degenerate. A rank-2 spectrum has
    ``δ = (ln λ₁ − ln λ₂) / ln 2``, which grows without bound as ``λ₂ → 0``: a single direction
    (or none) is the limit of an infinitely steep decay.
    """
    values = np.asarray(eigenvalues, dtype=np.float64)[:top_m]
    values = values[values > 0]  # descending input: the positive ones are a prefix
    if values.size < 2:
        return Metric(math.inf, True)
    log_rank = np.log(np.arange(1, values.size + 1))
    slope = np.polyfit(log_rank, np.log(values), 1)[0]
    return as_metric(-slope)


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
