"""The ``accuracy-table`` step (Table 1, from the dumps) and the ``metrics-table`` step (every
per-model metrics CSV in one table).

Each accuracy carries its uncertainty: ``n_test`` test images, ``n_correct`` of them classified
right (argmax of the dump's logits, eq. 1 of 001), the Wilson score interval
(:func:`~compreps.analysis.statistics.inference.wilson_interval`, :data:`CONFIDENCE`) and
``drop`` = base accuracy − accuracy (0 for the base, NaN without a base in the inputs)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from compreps.analysis.statistics.inference import wilson_interval
from compreps.core.dump import read_attributes, read_dump
from compreps.core.files import CompRepsError, damaged_file_error, log, read_table, write_csv
from compreps.core.vocabulary import (
    ACCURACY_TABLE_COLUMNS,
    FAMILIES,
    METRIC_COLUMNS,
    family_sort_key,
)

CONFIDENCE = 0.95  # of the Wilson interval of every accuracy
FROM_ATTRIBUTES = ("model", "family", "level", "accuracy", "param_fraction", "macs")


def correct_predictions(path: str | os.PathLike) -> np.ndarray:
    """Per test image: is the argmax of the dump's logits its label (bool, test-set order)."""
    dump = read_dump(path, layers=[])
    return np.argmax(dump.logits, axis=1) == dump.labels


def _counts(path: str | os.PathLike, accuracy: float) -> dict:
    correct = correct_predictions(path)
    n_test, n_correct = int(correct.size), int(correct.sum())
    if n_test and abs(n_correct / n_test - float(accuracy)) > 0.5 / n_test:
        # the activations step computes the attribute from these logits: a mismatch is a
        # hand-made or foreign dump, reported but not fatal
        log(f"accuracy-table: {path}: accuracy attribute {accuracy}, logits {n_correct}/{n_test}")
    low, high = wilson_interval(n_correct, n_test, CONFIDENCE)
    return {"n_test": n_test, "n_correct": n_correct, "accuracy_low": low, "accuracy_high": high}


def _table_order(table: pd.DataFrame) -> pd.Index:
    """Table 1 order: family, then level (vocabulary.family_sort_key), stable."""
    keys = [family_sort_key(f, lv) for f, lv in zip(table["family"], table["level"], strict=True)]
    sort_key = pd.DataFrame(keys, columns=["family", "level"], index=table.index)
    return sort_key.sort_values(["family", "level"], kind="stable", na_position="first").index


def accuracy_table(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Table 1: ``model, family, level, accuracy, param_fraction, macs`` from the dumps'
    attributes, then the counts, Wilson interval and drop (module docstring); base first,
    then coresets by decreasing fraction, pruning by increasing ratio,
    quantisation by decreasing bits, the structured families by increasing level."""
    rows = []
    for path in paths:
        attrs = read_attributes(path)
        if attrs["family"] not in FAMILIES:
            raise damaged_file_error(path, f"unknown family {attrs['family']!r}")
        missing = [key for key in FROM_ATTRIBUTES if key not in attrs]
        if missing:
            raise CompRepsError(
                f"{path} has no attribute(s) {', '.join(missing)} (written by an older "
                f"compreps): rerun rule 'activations' (snakemake --forcerun {path})"
            )
        row = {key: attrs[key] for key in FROM_ATTRIBUTES}
        row["finetune_epochs"] = int(attrs.get("finetune_epochs", 0))
        rows.append({**row, **_counts(path, attrs["accuracy"])})
    if not rows:
        raise CompRepsError("accuracy-table needs at least one activation file")
    table = pd.DataFrame(rows, columns=list(ACCURACY_TABLE_COLUMNS))
    duplicated = table["model"][table["model"].duplicated()].tolist()
    if duplicated:
        raise CompRepsError(f"model(s) listed twice: {', '.join(duplicated)}")
    table["level"] = table["level"].astype(float)
    table["accuracy"] = table["accuracy"].astype(float)
    table["param_fraction"] = table["param_fraction"].astype(float)
    table["macs"] = table["macs"].astype("int64")
    base = table.loc[table["family"] == "base", "accuracy"]
    table["drop"] = (float(base.iloc[0]) if len(base) else np.nan) - table["accuracy"]
    return table.loc[_table_order(table)].reset_index(drop=True)


def read_metrics_csv(path: str | os.PathLike) -> pd.DataFrame:
    return read_table(path, "metrics file", METRIC_COLUMNS, rule="model_metrics")


def metrics_table(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-model metric CSVs, sorted by family, level, model, layer, metric."""
    frames = [read_metrics_csv(path) for path in paths]
    if not frames:
        raise CompRepsError("metrics-table needs at least one metrics CSV")
    table = pd.concat(frames, ignore_index=True)
    table["degenerate"] = table["degenerate"].astype(str).str.lower().eq("true")
    duplicated = table.duplicated(["model", "layer", "metric"])
    if duplicated.any():
        models = sorted(table.loc[duplicated, "model"].unique())
        raise CompRepsError(
            f"metrics of model(s) {', '.join(models)} appear in more than one input file"
        )
    rank = {family: i for i, family in enumerate(FAMILIES)}
    table["_rank"] = table["family"].map(rank).fillna(len(FAMILIES))
    table = table.sort_values(
        ["_rank", "level", "model", "layer", "metric"], kind="stable", na_position="first"
    )
    return table.drop(columns="_rank").reset_index(drop=True)


STEPS = {
    "accuracy-table": ("Collect the test accuracies (Table 1).", "--activations", accuracy_table),
    "metrics-table": ("Concatenate the per-model metric CSVs.", "--inputs", metrics_table),
}


def main(argv: list[str]) -> int:
    """``accuracy-table`` or ``metrics-table`` (``argv[0]`` is the step name)."""
    step = argv[0]
    if step not in STEPS:
        raise CompRepsError(f"compreps.analysis.tables has no step {step!r}")
    description, inputs, build = STEPS[step]
    parser = argparse.ArgumentParser(prog=f"compreps {step}", description=description)
    parser.add_argument(inputs, nargs="+", required=True, dest="inputs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    table = build(args.inputs)
    write_csv(table, args.out)
    log(f"{step}: {len(table)} rows from {len(args.inputs)} files -> {args.out}")
    return 0
