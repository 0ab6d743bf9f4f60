"""Table 1 from the dumps' attributes (accuracy-table) and the CLI's one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from compreps import cli
from compreps.analysis.statistics.inference import wilson_interval
from compreps.analysis.tables import accuracy_table
from compreps.core.dump import read_dump
from compreps.core.files import CompRepsError
from compreps.core.vocabulary import ACCURACY_TABLE_COLUMNS

MODELS = {  # model id -> accuracy
    "quant-2": 0.31,
    "prune-0.5": 0.80,
    "coreset-0.1": 0.55,
    "base": 0.93,
    "quant-8": 0.92,
    "prune-0.05": 0.93,
    "coreset-0.8": 0.91,
    "quant-4": 0.88,
    "prune-0.9": 0.12,
    "fold-0.5": 0.30,
    "struct_l1-0.5": 0.40,
    "nexp-0.1": 0.85,
    "struct_l1-0.1": 0.88,
}


def test_accuracy_table_order_values_and_cli(tmp_path, write_fake_dump):
    paths = [write_fake_dump(model, acc) for model, acc in MODELS.items()]
    table = accuracy_table(paths)
    assert list(table.columns) == list(ACCURACY_TABLE_COLUMNS)
    assert table["model"].tolist() == [
        "base",
        "coreset-0.8",
        "coreset-0.1",
        "prune-0.05",
        "prune-0.5",
        "prune-0.9",
        "quant-8",
        "quant-4",
        "quant-2",
        "struct_l1-0.1",
        "struct_l1-0.5",
        "nexp-0.1",
        "fold-0.5",
    ]
    fractions = dict(zip(table["model"], table["param_fraction"], strict=True))
    assert fractions["base"] == fractions["prune-0.9"] == fractions["quant-2"] == 1.0
    assert fractions["struct_l1-0.5"] == 0.25 and fractions["nexp-0.1"] == pytest.approx(0.81)
    assert (table["macs"] == 50_000).all()
    levels = {"base": math.nan, "coreset-0.8": 0.8, "prune-0.05": 0.05, "quant-2": 2.0}
    # counts from each dump's logits, their Wilson interval, the drop from the base's accuracy
    for path, row in zip(
        paths, table.set_index("model").loc[list(MODELS)].itertuples(), strict=True
    ):
        dump = read_dump(path, layers=[])
        n_correct = int((dump.logits.argmax(1) == dump.labels).sum())
        assert (row.n_test, row.n_correct) == (60, n_correct)
        assert (row.accuracy_low, row.accuracy_high) == pytest.approx(
            wilson_interval(n_correct, 60, 0.95)
        )
        assert row.drop == pytest.approx(MODELS["base"] - MODELS[row.Index])
    for row in table.itertuples():
        assert row.accuracy == MODELS[row.model] and row.model.startswith(row.family)
        if row.model in levels:
            level = levels[row.model]
            assert (math.isnan(row.level) and math.isnan(level)) or row.level == level

    out = tmp_path / "tables" / "accuracy.csv"
    argv = ["accuracy-table", "--activations", *map(str, reversed(paths)), "--out", str(out)]
    assert cli.main(argv) == 0
    written = pd.read_csv(out)
    assert written["model"].tolist() == table["model"].tolist()
    np.testing.assert_allclose(written["accuracy"], table["accuracy"])
    assert math.isnan(written["level"][0])
    assert written["level"][1:].tolist() == table["level"][1:].tolist()

    with pytest.raises(CompRepsError, match="listed twice: base"):
        accuracy_table([paths[3], paths[3]])


def test_accuracy_table_names_a_dump_without_costs(tmp_path):
    import h5py
    from conftest import fake_dump

    from compreps.core.dump import write_dump

    path = tmp_path / "prune-0.5.h5"
    write_dump(path, fake_dump("prune-0.5"))
    with h5py.File(path, "a") as h5:
        del h5.attrs["macs"]
    with pytest.raises(CompRepsError, match=r"no attribute\(s\) macs .*rule 'activations'"):
        accuracy_table([path])


def test_cli_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "base.h5"
    bad.write_bytes(b"not hdf5")
    argv = ["accuracy-table", "--activations", str(bad), "--out", str(tmp_path / "a.csv")]
    monkeypatch.delenv("COMPREPS_DEBUG", raising=False)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(bad) in err and "Traceback" not in err
    assert "rule 'activations'" in err
    assert not (tmp_path / "a.csv").exists()
    monkeypatch.setenv("COMPREPS_DEBUG", "1")
    with pytest.raises(CompRepsError, match="truncated or corrupt"):
        cli.main(argv)
