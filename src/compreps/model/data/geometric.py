"""Geometric coreset selection on embeddings: greedy k-center and moderate coresets (numpy).

The embeddings are the selection model's penultimate features (the input of ``fc``) of every
training image (:mod:`compreps.model.data.selection_run`). Both functions work on the points
they are given; the coreset step calls them per class (:mod:`compreps.model.data.coreset`),
so no distance matrix larger than one class's points against one centre is ever formed.
"""

from __future__ import annotations

import numpy as np

from compreps.core.files import CompRepsError


def _check(points: np.ndarray, n_select: int) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise CompRepsError(f"points must be N×D, got shape {points.shape}")
    if not 1 <= n_select <= points.shape[0]:
        raise CompRepsError(f"cannot select {n_select} of {points.shape[0]} points")
    return points


def kcenter_greedy(points: np.ndarray, n_select: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center (Sener & Savarese 2018, Algorithm 1): a 2-approximation of
    ``min_S max_i min_{j∈S} ||x_i − x_j||``.

    The first centre is the point nearest the points' mean (deterministic; the paper starts
    from an already labelled pool); each next one is ``u = argmax_i min_{j∈S} ||x_i − x_j||``,
    the point farthest from the chosen ones (ties: the lowest position). Returns the chosen
    positions in selection order and, for each, its distance to the earlier centres when it
    was chosen (infinite for the first): the covering radius after ``k`` centres is the
    ``k+1``-th entry, or :func:`covering_radius`.
    """
    points = _check(points, n_select)
    first = int(np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1)))
    nearest = np.linalg.norm(points - points[first], axis=1)
    chosen, gaps = [first], [np.inf]
    for _ in range(n_select - 1):
        centre = int(np.argmax(nearest))
        chosen.append(centre)
        gaps.append(float(nearest[centre]))
        np.minimum(nearest, np.linalg.norm(points - points[centre], axis=1), out=nearest)
    return np.asarray(chosen, dtype=np.int64), np.asarray(gaps)


def covering_radius(points: np.ndarray, centres: np.ndarray) -> float:
    """``max_i min_{j∈centres} ||x_i − x_j||``: how far the farthest point lies from the
    selection (the k-center objective, Sener & Savarese 2018, eq. 3's bound δ)."""
    points = np.asarray(points, dtype=np.float64)
    nearest = np.full(points.shape[0], np.inf)
    for centre in np.asarray(centres, dtype=np.int64):
        np.minimum(nearest, np.linalg.norm(points - points[centre], axis=1), out=nearest)
    return float(nearest.max())


def centre_distances(points: np.ndarray) -> np.ndarray:
    """Each point's Euclidean distance to the points' coordinate-wise median, the class
    prototype of moderate coresets (Xia et al. 2023, Sec. 3.2)."""
    points = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(points - np.median(points, axis=0), axis=1)


def moderate_select(distances: np.ndarray, n_select: int) -> np.ndarray:
    """Moderate coreset (Xia et al. 2023, Sec. 3.2): the ``n_select`` points whose distance to
    their class prototype lies nearest the median distance, ``argmin |d_i − median(d)|``
    (ties: the lower position). Returns sorted positions."""
    distances = np.asarray(distances, dtype=np.float64)
    if not 1 <= n_select <= distances.size:
        raise CompRepsError(f"cannot select {n_select} of {distances.size} points")
    gap = np.abs(distances - np.median(distances))
    order = np.lexsort((np.arange(distances.size), gap))
    return np.sort(order[:n_select]).astype(np.int64)
