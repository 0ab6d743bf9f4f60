"""Per-example difficulty scores from training dynamics, and the selections made from them.

Pure numpy functions over what the selection run records (:mod:`compreps.model.data.selection_run`):
forgetting events (Toneva et al. 2019), the error L2 norm (Paul et al. 2021), the area under
the margin (Pleiss et al. 2020), and coverage-centric stratified sampling over one of them
(Zheng et al. 2023). Every score is turned into a *hardness*, larger = harder, so the methods
share one convention: a score method keeps the hardest examples, as its paper prunes the easy
ones.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from compreps.core.files import CompRepsError, atomic_write

SCORES = ("forgetting", "el2n", "aum")


def forgetting_counts(correct: np.ndarray) -> np.ndarray:
    """Forgetting events per example from a correctness trace (Toneva et al. 2019, Sec. 2).

    ``correct`` is T×N: whether example ``i`` was classified correctly at its ``t``-th
    presentation. A forgetting event is a transition from correct to incorrect,
    ``acc_i^t > acc_i^{t+1}``; the count sums them over the trace. An example never classified
    correctly counts as forgotten "infinitely often" in the paper; here it gets T, more than any
    learned example can reach (at most ``floor(T / 2)``), so it ranks hardest.
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2 or correct.shape[0] == 0:
        raise CompRepsError(f"a correctness trace must be T×N with T >= 1, got {correct.shape}")
    events = (correct[:-1] & ~correct[1:]).sum(axis=0)
    never_learned = ~correct.any(axis=0)
    return np.where(never_learned, correct.shape[0], events).astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum for stability."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def el2n_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The error L2 norm ``||p(w, x) − y||_2`` (Paul et al. 2021, Def. 2.2, eq. 2).

    ``p`` is the softmax of the logits, ``y`` the one-hot label. The paper averages over ten
    early-trained models; here one selection model scores, early in training (a fraction of
    the base's epochs).
    """
    probabilities = softmax(logits)
    labels = np.asarray(labels, dtype=np.int64)
    probabilities[np.arange(labels.size), labels] -= 1.0
    return np.linalg.norm(probabilities, axis=1)


def margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The margin ``z_y − max_{k≠y} z_k`` of each row (Pleiss et al. 2020, eq. 1)."""
    z = np.array(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(labels.size)
    assigned = z[rows, labels].copy()
    z[rows, labels] = -np.inf
    return assigned - z.max(axis=1)


def aum_scores(margin_sums: np.ndarray, presentations: np.ndarray) -> np.ndarray:
    """The area under the margin, ``AUM(x, y) = (1/T) Σ_t M^(t)(x, y)`` (Pleiss et al. 2020,
    eq. 2): the margins of :func:`margins` summed over an example's T presentations, averaged."""
    presentations = np.asarray(presentations, dtype=np.float64)
    if np.any(presentations <= 0):
        raise CompRepsError("AUM needs every example presented at least once")
    return np.asarray(margin_sums, dtype=np.float64) / presentations


def hardness(score: str, values: np.ndarray) -> np.ndarray:
    """Larger = harder: forgetting counts and EL2N as they are, AUM negated (a low margin is a
    hard or mislabelled example)."""
    if score not in SCORES:
        raise CompRepsError(f"unknown score {score!r}; allowed: {', '.join(SCORES)}")
    values = np.asarray(values, dtype=np.float64)
    return -values if score == "aum" else values


def hardest(values: np.ndarray, n_select: int) -> np.ndarray:
    """Positions of the ``n_select`` largest hardness values; ties go to the lower position."""
    order = np.lexsort((np.arange(values.size), -np.asarray(values, dtype=np.float64)))
    return np.sort(order[:n_select])


def ccs_strata(values: np.ndarray, n_strata: int) -> np.ndarray:
    """The stratum of each value: ``n_strata`` equal-width bins over ``[min, max]`` (the
    maximum falls into the last bin); all values in bin 0 when they are all equal."""
    values = np.asarray(values, dtype=np.float64)
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros(values.size, dtype=np.int64)
    width = (high - low) / n_strata
    return np.minimum(((values - low) // width).astype(np.int64), n_strata - 1)


def ccs_select(
    values: np.ndarray, n_select: int, beta: float, n_strata: int, rng: np.random.Generator
) -> np.ndarray:
    """Coverage-centric coreset selection (Zheng et al. 2023, Algorithm 1) over hardness values.

    1. Hard cut-off: drop the ``floor(β·N)`` hardest examples (fewer when fewer than
       ``n_select`` examples would remain).
    2. Split the remaining hardness range into ``n_strata`` equal-width strata.
    3. Budget ``m = n_select``; while strata remain: take the stratum ``B`` with the fewest
       examples, draw ``m_B = min(|B|, floor(m / #strata left))`` of it uniformly at random,
       ``m -= m_B``, drop ``B``.
    Returns sorted positions, exactly ``n_select`` of them.
    """
    values = np.asarray(values, dtype=np.float64)
    if not 1 <= n_select <= values.size:
        raise CompRepsError(f"cannot select {n_select} of {values.size} examples")
    cut = min(int(np.floor(beta * values.size)), values.size - n_select)
    kept = np.sort(hardest(-values, values.size - cut))  # all but the `cut` hardest
    strata = ccs_strata(values[kept], n_strata)
    members = [kept[strata == s] for s in range(n_strata)]
    members = sorted((m for m in members if m.size), key=lambda m: (m.size, m[0]))
    chosen, budget = [], n_select
    for left, stratum in zip(range(len(members), 0, -1), members, strict=True):
        take = min(stratum.size, budget // left)
        chosen.append(rng.choice(stratum, size=take, replace=False))
        budget -= take
    if budget:
        raise CompRepsError(f"CCS left {budget} of {n_select} examples unselected")
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# --------------------------------------------------------------------------- the selection files
SCORE_COLUMNS = ("index", "label", "forgetting", "el2n", "aum", "presentations")
RERUN = "rerun rule 'coreset_scores'"


@dataclass(frozen=True)
class Selection:
    """What the selection run recorded for every training image: ``scores`` (the columns of
    :data:`SCORE_COLUMNS` but ``index``; N each) and the penultimate ``embeddings`` (N×D)."""

    scores: dict[str, np.ndarray]
    embeddings: np.ndarray


def write_selection(scores_path, embeddings_path, table: dict, embeddings: np.ndarray) -> None:
    """The selection run's files: ``scores.csv`` (:data:`SCORE_COLUMNS`, one row per training
    image) and ``embeddings.npy`` (float32 N×D), each written atomically."""
    with atomic_write(scores_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCORE_COLUMNS)
        columns = [np.asarray(table[name]) for name in SCORE_COLUMNS]
        for row in zip(*columns, strict=True):
            writer.writerow([f"{v:.10g}" if isinstance(v, np.floating) else int(v) for v in row])
    with atomic_write(embeddings_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(embeddings, dtype=np.float32))


def read_selection(scores_path, embeddings_path):
    """The selection run's files as a :class:`Selection`."""
    try:
        table = np.genfromtxt(scores_path, delimiter=",", names=True, dtype=np.float64)
        embeddings = np.load(embeddings_path)
    except (OSError, ValueError) as err:
        raise CompRepsError(
            f"cannot read the selection run's files {scores_path}, {embeddings_path} ({err}): "
            + RERUN
        ) from err
    if tuple(table.dtype.names or ()) != SCORE_COLUMNS or embeddings.ndim != 2:
        raise CompRepsError(f"{scores_path}: unexpected columns or embedding shape; {RERUN}")
    table = np.atleast_1d(table)
    if not np.array_equal(table["index"], np.arange(table.size)) or len(embeddings) != table.size:
        raise CompRepsError(f"{scores_path}: rows are not the training images in order; {RERUN}")
    values = {name: table[name] for name in SCORE_COLUMNS[1:]}
    values["label"] = values["label"].astype(np.int64)
    return Selection(values, embeddings.astype(np.float64))
