"""Coreset selection: which training images a coreset model is trained on (``coreset`` step).

The paper's coresets are random subsets of the training set; here ``random`` is
class-stratified (:func:`compreps.model.data.selection.stratified_indices`), so small fractions
keep every class. The other methods (``coreset.methods``; README, "Coreset methods") read the
selection run's per-example scores and embeddings (:mod:`compreps.model.data.selection_run`):

* ``forgetting``, ``el2n``, ``aum``: the hardest examples by one score
  (:mod:`compreps.model.data.scores`);
* ``ccs``: coverage-centric stratified sampling over a score with a hard cut-off;
* ``kcenter``: greedy k-center on the embeddings, per class
  (:mod:`compreps.model.data.geometric`);
* ``moderate``: the examples nearest the median distance to their class prototype.

With ``coreset.class_balanced`` every method selects within each class, with random's
per-class counts (:func:`compreps.model.data.selection.stratified_allocation`); k-center always
does. A selection is written as a CSV ``index,label`` (random) or ``index,label,<score>`` that
the ``train`` step reads with :func:`read_coreset`.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compreps.core.families import CORESET_METHODS, RANDOM
from compreps.core.files import CompRepsError, atomic_write
from compreps.model.data import geometric, scores
from compreps.model.data.datasets import add_data_argument, load_prepared
from compreps.model.data.scores import Selection
from compreps.model.data.selection import stratified_allocation, stratified_indices

METHODS = CORESET_METHODS
SCORE_METHODS = scores.SCORES  # the hardest examples by the score of the same name


@dataclass(frozen=True)
class MethodOptions:
    """The config's coreset options the non-random methods read."""

    class_balanced: bool
    ccs_score: str | None  # None for the methods other than ccs
    ccs_beta: float | None
    ccs_strata: int | None


def coreset_size(n_total: int, fraction: float) -> int:
    """``round(fraction · n_total)``, at least 1; ``fraction`` must lie in (0, 1]."""
    if not 0.0 < fraction <= 1.0:
        raise CompRepsError(f"coreset fraction must be in (0, 1], got {fraction}")
    return min(n_total, max(1, round(fraction * n_total)))


def select_coreset(labels, fraction, method, seed, selection=None, options=None) -> np.ndarray:
    """Sorted unique int64 indices of a coreset holding ``round(fraction · N)`` examples (the
    arguments as :func:`select_with_values`).

    ``random``: class-stratified random selection (proportional allocation, every class kept
    when the coreset has at least as many examples as there are classes). The other methods
    need the selection run's ``selection`` and the config's ``options``
    (:func:`select_with_values`).
    """
    return select_with_values(labels, fraction, method, seed, selection, options)[0]


def _validated(labels: np.ndarray, method: str) -> np.ndarray:
    if method not in METHODS:
        raise CompRepsError(f"unknown coreset method {method!r}; allowed: {', '.join(METHODS)}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise CompRepsError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    return labels


def select_with_values(
    labels: np.ndarray,
    fraction: float,
    method: str,
    seed: int,
    selection: Selection | None = None,
    options: MethodOptions | None = None,
) -> tuple[np.ndarray, str | None, np.ndarray | None]:
    """``(indices, value name, value of each selected example)``: the selection of
    :func:`select_coreset` and the number the method chose each example by (None for random;
    ``kcenter_gap``: the distance to the earlier centres of its class when chosen)."""
    labels = _validated(labels, method)
    n_select = coreset_size(labels.size, fraction)
    if method == RANDOM:
        if n_select == labels.size:
            return np.arange(labels.size, dtype=np.int64), None, None
        return stratified_indices(labels, n_select, seed), None, None
    if selection is None or options is None:
        raise CompRepsError(f"coreset method {method} needs the selection run's scores")
    if selection.embeddings.shape[0] != labels.size:
        raise CompRepsError(
            f"the selection run scored {selection.embeddings.shape[0]} examples, but the "
            f"training set has {labels.size}: rerun rule 'coreset_scores'"
        )
    rng = np.random.default_rng(seed)
    per_class = options.class_balanced or method == "kcenter"
    chosen, values = [], []
    for members, k in _groups(labels, n_select, per_class):
        positions, picked = _choose(method, members, k, labels, selection, options, rng)
        chosen.append(members[positions])
        values.append(picked)
    indices, values = np.concatenate(chosen), np.concatenate(values)
    order = np.argsort(indices)
    return (
        indices[order].astype(np.int64),
        VALUE_NAMES.get(method, options.ccs_score),
        values[order],
    )


# the value each method selects by (the CSV's third column); ccs: its score's name
VALUE_NAMES = {
    **{name: name for name in SCORE_METHODS},
    "kcenter": "kcenter_gap",
    "moderate": "centre_distance",
}


def _groups(labels: np.ndarray, n_select: int, per_class: bool) -> list[tuple[np.ndarray, int]]:
    """``(members, count)`` to select from: each class with its share of ``n_select``
    (random's allocation), or the whole set."""
    if not per_class:
        return [(np.arange(labels.size), n_select)]
    classes, inverse = np.unique(labels, return_inverse=True)
    allocation = stratified_allocation(np.bincount(inverse, minlength=classes.size), n_select)
    return [(np.flatnonzero(inverse == c), int(k)) for c, k in enumerate(allocation) if k > 0]


def _choose(method, members, k, labels, selection, options, rng):
    """Positions (into ``members``) of the ``k`` examples ``method`` keeps, and the value each
    was chosen by."""
    if method in SCORE_METHODS or method == "ccs":
        score = method if method in SCORE_METHODS else options.ccs_score
        values = selection.scores[score][members]
        hard = scores.hardness(score, values)
        if method == "ccs":
            positions = scores.ccs_select(hard, k, options.ccs_beta, options.ccs_strata, rng)
        else:
            positions = scores.hardest(hard, k)
        return positions, values[positions]
    points = selection.embeddings[members]
    if method == "kcenter":
        positions, gaps = geometric.kcenter_greedy(points, k)
        order = np.argsort(positions)
        return positions[order], gaps[order]
    distances = np.empty(members.size)  # moderate: to each example's class prototype
    for cls in np.unique(labels[members]):
        rows = labels[members] == cls
        distances[rows] = geometric.centre_distances(points[rows])
    positions = geometric.moderate_select(distances, k)
    return positions, distances[positions]


def write_coreset(
    path: str | os.PathLike,
    indices: np.ndarray,
    labels: np.ndarray,
    value_name: str | None = None,
    values: np.ndarray | None = None,
) -> None:
    """Write ``index,label`` rows sorted by index, atomically; with ``value_name``, a third
    column of ``values`` (one per index, in the order given)."""
    indices = np.asarray(indices, dtype=np.int64)
    order = np.argsort(indices, kind="stable")
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        if value_name is None:
            writer.writerow(["index", "label"])
            writer.writerows((int(i), int(labels[i])) for i in indices[order])
            return
        writer.writerow(["index", "label", value_name])
        values = np.asarray(values, dtype=np.float64)[order]
        writer.writerows(
            (int(i), int(labels[i]), f"{v:.10g}")
            for i, v in zip(indices[order], values, strict=True)
        )


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
    if not rows or [cell.strip() for cell in rows[0][:2]] != ["index", "label"]:
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


def coreset_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Select a coreset of the training set.")
    add_data_argument(parser)
    parser.add_argument("--fraction", required=True, type=float)
    parser.add_argument("--coreset-method", required=True, choices=METHODS)
    parser.add_argument("--train-seed", required=True, type=int, help="the config's train.seed")
    extra = parser.add_argument_group("the non-random methods (config section 'coreset')")
    extra.add_argument("--scores", help="the selection run's results/coresets/selection/scores.csv")
    extra.add_argument("--embeddings", help="its embeddings.npy")
    extra.add_argument("--coreset-class-balanced", choices=("true", "false"))
    extra.add_argument("--coreset-ccs-score", choices=SCORE_METHODS)
    extra.add_argument("--coreset-ccs-beta", type=float)
    extra.add_argument("--coreset-ccs-strata", type=int)
    parser.add_argument("--out", required=True)
    return parser


def _method_inputs(args: argparse.Namespace) -> tuple[Selection | None, MethodOptions | None]:
    """The selection run's files and the options of a non-random method (ccs_* for ccs)."""
    if args.coreset_method == RANDOM:
        return None, None
    needed = ["scores", "embeddings", "coreset_class_balanced"]
    if args.coreset_method == "ccs":
        needed += ["coreset_ccs_score", "coreset_ccs_beta", "coreset_ccs_strata"]
    missing = [f"--{name.replace('_', '-')}" for name in needed if getattr(args, name) is None]
    if missing:
        raise CompRepsError(f"coreset method {args.coreset_method} needs {', '.join(missing)}")
    options = MethodOptions(
        args.coreset_class_balanced == "true",
        args.coreset_ccs_score,
        args.coreset_ccs_beta,
        args.coreset_ccs_strata,
    )
    return scores.read_selection(args.scores, args.embeddings), options


def main(argv: list[str]) -> int:
    """``coreset``: select a subset of the training set by one method and write its CSV."""
    args = coreset_parser(f"compreps {argv[0]}").parse_args(argv[1:])
    selection, options = _method_inputs(args)
    data = load_prepared(args.data, splits=("train",))
    labels = data.train_labels.numpy()
    if selection is not None and not np.array_equal(selection.scores["label"], labels):
        raise CompRepsError(
            f"{args.scores} does not score this training set (labels differ): rerun rule "
            "'coreset_scores'"
        )
    indices, name, values = select_with_values(
        labels, args.fraction, args.coreset_method, args.train_seed, selection, options
    )
    write_coreset(args.out, indices, labels, name, values)
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
