"""Coreset selection, its CSV file and the ``coreset`` step."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compreps import cli
from compreps.core.files import CompRepsError
from compreps.model.data.coreset import read_coreset, select_coreset, write_coreset
from compreps.model.data.datasets import load_dataset

SAMPLE_ROOT = Path(__file__).resolve().parents[1] / "data" / "cifar10-sample"
LABELS = np.repeat(np.arange(10), [120, 110, 100, 100, 100, 100, 100, 90, 90, 90])  # N = 1000


@pytest.mark.parametrize(
    ("fraction", "size"),
    [(0.8, 800), (0.5, 500), (0.05, 50), (0.01, 10), (0.0123, 12), (0.0004, 1)],
)
def test_size_is_rounded_fraction(fraction, size):
    chosen = select_coreset(LABELS, fraction, "random", seed=42)
    assert chosen.size == size and np.unique(chosen).size == size
    assert chosen.dtype == np.int64 and np.all(np.diff(chosen) > 0)
    assert chosen.min() >= 0 and chosen.max() < LABELS.size


def test_class_proportions_within_one():
    chosen = select_coreset(LABELS, 0.3, "random", 1)
    counts = np.bincount(LABELS[chosen], minlength=10)
    expected = 0.3 * np.bincount(LABELS)  # 36, 33, 30, ..., 27
    assert np.all(np.abs(counts - expected) <= 1) and counts.sum() == 300


def test_full_fraction_returns_everything():
    assert np.array_equal(select_coreset(LABELS, 1.0, "random", 42), np.arange(1000))


def test_seed_controls_the_subset():
    a = select_coreset(LABELS, 0.2, "random", 42)
    assert np.array_equal(a, select_coreset(LABELS, 0.2, "random", 42))
    assert not np.array_equal(a, select_coreset(LABELS, 0.2, "random", 43))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_fraction_out_of_range(fraction):
    with pytest.raises(CompRepsError, match=r"fraction must be in \(0, 1\]"):
        select_coreset(LABELS, fraction, "random", 42)


def test_unknown_method_lists_allowed():
    allowed = "random, forgetting, el2n, aum, ccs, kcenter, moderate"
    with pytest.raises(CompRepsError, match=rf"unknown coreset method 'craig'; allowed: {allowed}"):
        select_coreset(LABELS, 0.5, "craig", 42)


def test_other_methods_need_the_selection_run():
    with pytest.raises(CompRepsError, match="el2n needs the selection run's scores"):
        select_coreset(LABELS, 0.5, "el2n", 42)


def test_csv_round_trip(tmp_path):
    chosen = select_coreset(LABELS, 0.05, "random", 3)
    path = tmp_path / "coresets" / "coreset-0.05.csv"
    write_coreset(path, chosen[::-1], LABELS)  # any order in, sorted rows out
    table = pd.read_csv(path)  # independent reader
    assert list(table.columns) == ["index", "label"]
    assert table["index"].tolist() == chosen.tolist()
    assert table["label"].tolist() == LABELS[chosen].tolist()
    assert np.array_equal(read_coreset(path), chosen)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("idx,label\n1,0\n", "header must be 'index,label'"),
        ("index,label\n1,0\nabc,1\n", "malformed"),
        ("index,label\n", "lists no examples"),
        ("index,label\n3,0\n3,0\n", "negative or repeated"),
        ("index,label\n-1,0\n", "negative or repeated"),
        ("", "header must be 'index,label'"),
    ],
)
def test_read_coreset_rejects_malformed(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CompRepsError, match=message) as info:
        read_coreset(path)
    assert str(path) in str(info.value)


def test_read_coreset_missing_file(tmp_path):
    with pytest.raises(CompRepsError, match=r"does not exist \(rule 'coreset' writes it\)"):
        read_coreset(tmp_path / "coreset-0.5.csv")


@pytest.mark.filterwarnings("ignore:.*not the full")
def test_coreset_step_on_sample(tmp_path, capsys, sample_summary):
    out = tmp_path / "coreset-0.05.csv"
    argv = [
        "coreset",
        "--data",
        str(sample_summary),
        "--fraction",
        "0.05",
        "--coreset-method",
        "random",
        "--train-seed",
        "42",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = load_dataset("cifar10", SAMPLE_ROOT).train_labels.numpy()
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["index", "label"] and len(rows) == 1 + 254  # round(0.05 * 5085)
    indices = np.array([int(r[0]) for r in rows[1:]])
    assert [int(r[1]) for r in rows[1:]] == labels[indices].tolist()
    assert np.array_equal(indices, read_coreset(out))
    assert np.array_equal(indices, select_coreset(labels, 0.05, "random", 42))
    counts = np.bincount(labels[indices], minlength=10)
    assert np.all(np.abs(counts - 0.05 * np.bincount(labels)) <= 1)
    err = capsys.readouterr().err
    assert "254 of 5085" in err and "airplane=" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, sample_summary.name]
