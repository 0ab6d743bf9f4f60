"""The class balance of every coreset selection of a run (``coreset-balance`` step).

One row per selection and class: how many of the class's training images the selection kept,
its share of the selection and the class's share of the whole training set, so a method that
drifts from the training set's class proportions shows (``coreset.class_balanced: false``).
Reads the selections' CSVs (:func:`compreps.model.data.coreset.write_coreset`) and the data
summary's class names and counts; no torch.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

from compreps.core import families
from compreps.core.files import CompRepsError, write_csv
from compreps.core.vocabulary import parse_model_id

BALANCE_COLUMNS = ("model", "family", "method", "level", "class", "count", "share", "train_share")


def selection_labels(path: Path) -> np.ndarray:
    """The ``label`` column of a selection CSV."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        if [cell.strip() for cell in rows[0][:2]] != ["index", "label"]:
            raise ValueError("header must start with 'index,label'")
        return np.array([int(row[1]) for row in rows[1:] if row], dtype=np.int64)
    except (OSError, IndexError, ValueError) as err:
        raise CompRepsError(f"cannot read coreset file {path}: {err}") from err


def balance_table(selections: dict[str, np.ndarray], classes, train_counts) -> pd.DataFrame:
    """The rows of :data:`BALANCE_COLUMNS` for ``{model id: selected labels}``."""
    train_counts = np.asarray(train_counts, dtype=np.float64)
    rows = []
    for model, labels in selections.items():
        family, level = parse_model_id(model)
        counts = np.bincount(labels, minlength=len(classes))
        for cls, name in enumerate(classes):
            rows.append(
                (model, family, families.coreset_method(family), level, name, int(counts[cls]))
                + (counts[cls] / labels.size, train_counts[cls] / train_counts.sum())
            )
    return pd.DataFrame(rows, columns=list(BALANCE_COLUMNS))


def main(argv: list[str]) -> int:
    """``coreset-balance``: class counts of the listed selections -> one CSV."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Class balance of the coreset selections."
    )
    parser.add_argument("--data", required=True, help="results/data/dataset.json")
    parser.add_argument("--inputs", required=True, nargs="+", help="results/coresets/<id>.csv")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    try:
        summary = json.loads(Path(args.data).read_text())
        classes = summary["classes"]
        train_counts = [summary["train_class_counts"][name] for name in classes]
    except (OSError, ValueError, KeyError) as err:
        raise CompRepsError(f"cannot read the data summary {args.data}: {err}") from err
    selections = {Path(path).stem: selection_labels(Path(path)) for path in args.inputs}
    write_csv(balance_table(selections, classes, train_counts), args.out)
    return 0
