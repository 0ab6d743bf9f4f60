"""Class-stratified random selection: the coresets and the probe set (numpy only).

Both pick a subset of a labelled set whose class proportions follow the whole set's, with a
seeded generator, so every model sees the same probe and a coreset is reproducible.
"""

from __future__ import annotations

import numpy as np

from compreps.core.files import CompRepsError


def stratified_allocation(class_counts: np.ndarray, n_select: int) -> np.ndarray:
    """How many examples to take per class: proportional, largest-remainder rounding.

    Exact integer arithmetic: class ``c`` gets ``floor(n·count_c / N)``; the leftover slots go
    to the largest remainders (ties: lower class first). When ``n_select`` is at least the
    number of non-empty classes, each such class gets at least one, taken from the class whose
    allocation most exceeds its exact quota.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    total = int(counts.sum())
    if not 1 <= n_select <= total:
        raise CompRepsError(f"cannot select {n_select} of {total} examples")
    numerators = n_select * counts
    allocation = numerators // total
    remainders = numerators % total
    leftover = n_select - int(allocation.sum())
    order = np.lexsort((np.arange(counts.size), -remainders))  # largest remainder first
    allocation[order[:leftover]] += 1
    present = counts > 0
    if n_select >= int(present.sum()):
        for cls in np.flatnonzero(present & (allocation == 0)):
            # excess over the exact quota, compared as numerators over ``total``
            excess = allocation * total - numerators
            excess[allocation <= 1] = np.iinfo(np.int64).min
            donor = int(np.argmax(excess))
            allocation[donor] -= 1
            allocation[cls] += 1
    return allocation


def stratified_indices(labels: np.ndarray, n_select: int, seed: int) -> np.ndarray:
    """Class-stratified random subset of ``range(len(labels))`` of exactly ``n_select`` items.

    Per-class sizes come from :func:`stratified_allocation`; within each class the examples are
    drawn without replacement with ``numpy.random.default_rng(seed)``. Returns sorted, unique
    int64 indices.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise CompRepsError(f"labels must be one-dimensional, got shape {labels.shape}")
    classes, inverse = np.unique(labels, return_inverse=True)
    allocation = stratified_allocation(np.bincount(inverse, minlength=classes.size), n_select)
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(inverse == c), size=int(k), replace=False)
        for c, k in enumerate(allocation)
        if k > 0
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
