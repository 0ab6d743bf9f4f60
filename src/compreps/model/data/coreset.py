"""Coreset selection: which training images a coreset model is trained on (``coreset`` step).

The paper's coresets are random subsets of the training set; here they are class-stratified
(:func:`compreps.model.data.selection.stratified_indices`), so small fractions keep every class.
The subset is
written as a CSV ``index,label`` that the ``train`` step reads with :func:`read_coreset`.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

from compreps.core.files import CompRepsError, atomic_write
from compreps.model.data.datasets import add_data_argument, load_prepared
from compreps.model.data.selection import stratified_indices

METHODS = ("random",)


def coreset_size(n_total: int, fraction: float) -> int:
    """``round(fraction · n_total)``, at least 1; ``fraction`` must lie in (0, 1]."""
    if not 0.0 < fraction <= 1.0:
        raise CompRepsError(f"coreset fraction must be in (0, 1], got {fraction}")
    return min(n_total, max(1, round(fraction * n_total)))


def select_coreset(labels: np.ndarray, fraction: float, method: str, seed: int) -> np.ndarray:
    """Sorted unique int64 indices of a coreset holding ``fraction`` of the examples.

    ``random``: class-stratified random selection (proportional allocation, every class kept
    when the coreset has at least as many examples as there are classes).
    """
    if method not in METHODS:
        raise CompRepsError(f"unknown coreset method {method!r}; allowed: {', '.join(METHODS)}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise CompRepsError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    n_select = coreset_size(labels.size, fraction)
    if n_select == labels.size:
        return np.arange(labels.size, dtype=np.int64)
    return stratified_indices(labels, n_select, seed)


def write_coreset(path: str | os.PathLike, indices: np.ndarray, labels: np.ndarray) -> None:
    """Write ``index,label`` rows sorted by index, atomically."""
    indices = np.sort(np.asarray(indices, dtype=np.int64))
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label"])
        writer.writerows((int(i), int(labels[i])) for i in indices)


def read_coreset(path: str | os.PathLike) -> np.ndarray:
    """Indices (sorted, unique int64) from a coreset CSV written by :func:`write_coreset`."""
    path = Path(path)
    if not path.is_file():
        raise CompRepsError(f"coreset file {path} does not exist (rule 'coreset' writes it)")
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CompRepsError(f"cannot read coreset file {path}: {err}") from err
    if not rows or [cell.strip() for cell in rows[0]] != ["index", "label"]:
        raise CompRepsError(f"coreset file {path} is malformed: header must be 'index,label'")
    try:
        indices = np.array([int(row[0]) for row in rows[1:] if row], dtype=np.int64)
    except (ValueError, IndexError) as err:
        raise CompRepsError(f"coreset file {path} is malformed: {err}") from err
    if indices.size == 0:
        raise CompRepsError(f"coreset file {path} lists no examples")
    if indices.min() < 0 or np.unique(indices).size != indices.size:
        raise CompRepsError(f"coreset file {path} is malformed: negative or repeated indices")
    return np.sort(indices)


def main(argv: list[str]) -> int:
    """``coreset``: select a class-stratified subset of the training set and write its CSV."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Select a coreset of the training set."
    )
    add_data_argument(parser)
    parser.add_argument("--fraction", required=True, type=float)
    parser.add_argument("--coreset-method", required=True, choices=METHODS)
    parser.add_argument("--train-seed", required=True, type=int, help="the config's train.seed")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    data = load_prepared(args.data, splits=("train",))
    labels = data.train_labels.numpy()
    indices = select_coreset(labels, args.fraction, args.coreset_method, args.train_seed)
    write_coreset(args.out, indices, labels)
    counts = np.bincount(labels[indices], minlength=len(data.classes))
    print(
        f"coreset {args.fraction} ({args.coreset_method}, seed {args.train_seed}): "
        f"{indices.size} of {labels.size} training images -> {args.out}",
        file=sys.stderr,
    )
    print(
        "  per class: " + ", ".join(f"{c}={n}" for c, n in zip(data.classes, counts, strict=True)),
        file=sys.stderr,
    )
    return 0
