"""Figures and the Markdown report from a small synthetic run (dumps and tables)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import fake_dump

from compreps.analysis.figures import dumps as figures_models
from compreps.analysis.figures import step as figures
from compreps.analysis.figures.style import find_model
from compreps.analysis.paper import paper_values
from compreps.analysis.report import step as report
from compreps.analysis.statistics import correlate, sensitivity
from compreps.core.dump import write_dump
from compreps.core.files import CompRepsError
from compreps.core.settings import CorrelationSettings
from compreps.core.vocabulary import ACCURACY_COLUMNS, FIGURE_NAMES, METRIC_COLUMNS

MODELS = ["base", "coreset-0.5", "coreset-0.1", "prune-0.5", "prune-0.9", "quant-4", "quant-2"]
LAYERS = ["layer1", "layer2", "layer3", "layer4", "layer4.1.conv2", "fc"]
PER_LAYER = [
    "s_e",
    "s_alive",
    "s_s",
    "s_d",
    "reps_equal",
    "reps_weighted",
    "gtfa",
    "cka_linear",
    "effective_rank",
    "alive_fraction",
    "class_separation",
]
MODEL_ONLY = ["prediction_agreement", "weight_similarity"]


NAMED = {"weighted": (0.15, 0.05, 0.35, 0.45), "equal": (0.25,) * 4}
TRAJECTORY = ["layer1", "layer2", "layer3", "layer4", "fc"]


def family_level(model):
    if model == "base":
        return "base", math.nan
    family, _, level = model.partition("-")
    return family, float(level)


def write_model_dump(path, model_id, rng, index):
    """A dump whose FC activations have a known decay and whose conv/linear weights shrink
    with ``index`` (Fig. 1 and Fig. 2's eigenvalue panel read them)."""
    dump = fake_dump("base" if model_id == "base" else "prune-0.5", seed=index, n_probe=40)
    scales = np.geomspace(1.0, 10.0 ** -(1 + index / 3), 10)
    dump.layers["fc"] = (rng.normal(size=(40, 10)) * scales).astype(np.float32)
    dump.weights = {k: (v * 0.1 / (index + 1)).astype(np.float32) for k, v in dump.weights.items()}
    dump.attrs["model"] = model_id
    write_dump(path, dump)


def write_run(root, models=MODELS, ids=None):
    """Tables and dumps for ``models`` under ``root``; ``ids`` renames the files/table entries
    (e.g. coreset-0.50) to check numeric level matching."""
    rng = np.random.default_rng(0)
    ids = ids or {}
    (root / "activations").mkdir(parents=True)
    metric_rows, accuracy_rows = [], []
    for i, model in enumerate(models):
        model_id = ids.get(model, model)
        family, level = family_level(model)
        drop = 0.0 if family == "base" else 0.05 * (i + 1)
        accuracy_rows.append((model_id, family, level, 0.9 - drop))
        for layer in [*LAYERS, "model"]:
            for metric in PER_LAYER + (MODEL_ONLY if layer == "model" else []):
                value = 1.0 - drop + 0.02 * rng.normal()
                metric_rows.append((model_id, family, level, layer, metric, value, False))
        write_model_dump(root / "activations" / f"{model_id}.h5", model_id, rng, i)
    metrics = pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS))
    accuracy = pd.DataFrame(accuracy_rows, columns=list(ACCURACY_COLUMNS))
    sens = sensitivity.sensitivity_table(metrics, accuracy, 0.25, NAMED)
    correlations = correlate.correlation_table(
        metrics, accuracy, CorrelationSettings(bootstrap=50, confidence=0.95, seed=42)
    )
    for name, frame in (
        ("metrics", metrics),
        ("accuracy", accuracy),
        ("sensitivity", sens),
        ("correlations", correlations),
    ):
        frame.to_csv(root / f"{name}.csv", index=False)
    return root


def table_args(root, *tables):
    """``--<table> <root>/<table>.csv`` for each table."""
    return [arg for table in tables for arg in (f"--{table}", str(root / f"{table}.csv"))]


def dumps_of(root):
    return sorted((root / "activations").glob("*.h5"))


def check_written(out_dir):
    for name in FIGURE_NAMES:
        png = (out_dir / f"{name}.png").read_bytes()
        pdf = (out_dir / f"{name}.pdf").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000, name
        assert pdf.startswith(b"%PDF") and len(pdf) > 1000, name
    assert not list(out_dir.glob(".*.tmp"))  # atomic writes left nothing behind


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("run"))


def test_figures_written_through_the_cli(full_run):
    out = full_run / "figures"
    assert (
        figures.main(
            [
                "figures",
                *table_args(full_run, "metrics", "accuracy", "correlations", "sensitivity"),
                "--dumps",
                *map(str, dumps_of(full_run)),
                "--out-dir",
                str(out),
                "--probe-size",
                "40",
                "--probe-seed",
                "0",
                "--probe-batch-size",
                "10",
                "--probe-metric-layers",
                "layer4.1.conv2",
                "fc",
                "--probe-trajectory-layers",
                *TRAJECTORY,
                "--probe-hidden-layer",
                "avgpool",
            ]  # fmt: skip
        )
        == 0
    )
    check_written(out)


def test_figures_with_missing_models_and_odd_level_spelling(tmp_path, capsys):
    models = [m for m in MODELS if m not in ("coreset-0.1", "quant-4", "prune-0.9")]
    root = write_run(tmp_path / "run", models, ids={"coreset-0.5": "coreset-0.50"})
    paths = figures.make_figures(
        root / "metrics.csv",
        root / "accuracy.csv",
        root / "correlations.csv",
        root / "sensitivity.csv",
        dumps_of(root),
        root / "figures",
        TRAJECTORY,
    )
    assert len(paths) == 2 * len(FIGURE_NAMES)
    check_written(root / "figures")
    err = capsys.readouterr().err
    # an accuracy table without param_fraction and a run without hierarchy metrics or the
    # structured families: notes, no error
    assert "accuracy_vs_params: no param_fraction column in the accuracy table" in err
    assert "hierarchy_deviation: not in this run, skipped: metric hidden_deviation*" in err
    assert "fig2_representations: not in this run, skipped: C10, P90, Q4" in err
    assert "fig1_weight_histograms: not in this run, skipped: Q4" in err
    assert "C50" not in err  # coreset-0.50 matched 0.5 numerically


def test_find_model_matches_levels_numerically():
    ids = ["base", "coreset-0.50", "prune-0.9", "quant-4"]
    assert find_model(ids, "coreset", 0.5) == "coreset-0.50"
    assert find_model(ids, "quant", 4) == "quant-4"
    assert find_model(ids, "prune", 0.5) is None
    assert find_model(ids, "base", None) == "base"


def test_model_weights_are_every_stored_conv_and_linear_weight(tmp_path):
    dump = fake_dump("quant-4")
    write_dump(tmp_path / "quant-4.h5", dump)
    weights = figures_models.model_weights(tmp_path / "quant-4.h5")
    np.testing.assert_array_equal(weights, np.concatenate(list(dump.weights.values())))


def test_covariance_spectrum_of_known_covariance(tmp_path):
    # orthogonal zero-mean columns with norms s: covariance eigenvalues s^2/(n-1)
    basis = np.linalg.qr(np.random.default_rng(2).normal(size=(50, 4)))[0]
    basis -= basis.mean(axis=0)
    basis = np.linalg.qr(basis)[0]  # re-orthogonalise; centring keeps the columns in 1-perp
    basis -= basis.mean(axis=0)
    scales = np.array([4.0, 2.0, 1.0, 0.5])
    dump = fake_dump("base", n_test=60, n_probe=50)
    dump.layers["fc"] = np.hstack([basis * scales, np.zeros((50, 6))]).astype(np.float32)
    write_dump(tmp_path / "a.h5", dump)
    gram = (basis * scales).T @ (basis * scales)
    expected = np.sort(np.linalg.eigvalsh(gram))[::-1]
    got = figures_models.covariance_spectrum(tmp_path / "a.h5")
    np.testing.assert_allclose(got[:4], expected / expected[0], atol=1e-6)
    np.testing.assert_allclose(got[4:], 0.0, atol=1e-6)
    # divided by the largest: starts at 1 (the paper's Fig. 2e), then (s_i / s_0)^2
    np.testing.assert_allclose(got[:4], [1.0, 0.25, 0.0625, 0.015625], atol=0.02)


def write_full_report(run, out, dataset=None):
    config = {
        "correlation": {"bootstrap": 50, "confidence": 0.95, "seed": 42},
        "probe": {"size": 60},
        "model": {"width": 8},
        "train": {"epochs": 15},
    }
    return report.write_report(
        run / "accuracy.csv",
        run / "correlations.csv",
        run / "sensitivity.csv",
        run / "metrics.csv",
        sorted((run / "figures").glob("*.p*")),
        config,
        out,
        dataset,
    )


def table_rows(text, heading):
    """``{first cell: [cells]}`` of the Markdown table rows under ``heading``."""
    body = text.split(heading)[1].split("\n## ")[0].split("\n### ")[0]
    rows = [line.strip("|").split(" | ") for line in body.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def test_report_contains_tables_paper_values_and_links(full_run):
    (full_run / "figures").mkdir(exist_ok=True)
    for name in FIGURE_NAMES:  # links only point at existing PNGs
        (full_run / "figures" / f"{name}.png").write_bytes(b"\x89PNG")
    text = write_full_report(full_run, full_run / "report.md").read_text()
    for heading in (
        "## Table 1",
        "## Table 2",
        "## Table 3",
        "## Findings",
        "## Figures",
        "## Configuration",
        "## Software versions",
        "## Sources of the paper's values",
    ):
        assert heading in text
    assert "minus its accuracy drop" in text
    assert "This run is far from the paper's scale** (width 8 (paper 64); epochs 15" in text
    for model in MODELS:
        assert f"| {model} |" in text
    assert "![fig1_weight_histograms](figures/fig1_weight_histograms.png)" in text
    assert '"bootstrap": 50' in text
    assert f"| numpy | {np.__version__} |" in text
    assert "best grid point (max PLCC)" in text
    sens = pd.read_csv(full_run / "sensitivity.csv")
    best = sens[sens["config"] == "grid"]["plcc"].max()
    assert f"{best:.3f}" in text.split("best grid point (max PLCC)")[1].split("\n")[0]


def test_report_sets_the_paper_value_beside_every_table_row(full_run, tmp_path):
    (full_run / "figures").mkdir(exist_ok=True)
    text = write_full_report(full_run, tmp_path / "report.md").read_text()
    table1 = table_rows(text, "## Table 1")
    table2 = table_rows(text, "### Scope: all compressed models")
    table3 = table_rows(text, "## Table 3")
    # hand-copied from the papers' tables (000/001 Table 1, 000 Table 2, 001 Table 3)
    assert table1["base"][-1] == "0.9277"
    assert table1["prune-0.9"][-1] == "0.2336"  # in the run: the run's accuracy beside it
    assert table1["prune-0.9"][2] == "0.6500"
    # the paper's rows this run lacks: one line, not rows of "not in this run"
    assert "coreset-0.01" not in table1
    missing = text.split("Paper rows not in this run (paper accuracy): ")[1].split("\n")[0]
    assert "coreset-0.01 0.1059" in missing and "quant-1 0.1000" in missing
    assert table2["gtfa"][-5:-2] == ["0.8059", "0.7868", "0.7323"]
    assert table2["logits_l2"][-5:-2] == ["0.3539", "0.8407", "0.8051"]  # not in the fake run
    assert table2["cka_linear"][-5:-2] == ["not in the paper"] * 3  # the paper has no CKA
    assert table3["equal"][-1] == "0.9878" and table3["no_aliveness"][-1] == "0.9741"
    assert table3["best grid point (max PLCC)"][-1] == "not in the paper"
    frame = paper_values()
    table1 = {**table1, **{k.split()[0]: [] for k in missing.rstrip(".").split(", ")}}
    for number, table in ((1, table1), (2, table2), (3, table3)):
        keys = set(frame.loc[(frame["table"] == number) & (frame["key"] != ""), "key"])
        assert keys <= set(table), number
    # per-family scopes: the paper reports none, so no paper columns
    # per-family scopes: two models per family give no coefficient, so no table of empty rows
    assert "No family has a coefficient" in text.split("### Per family")[1]
    sources = text.split("## Sources of the paper's values")[1]
    assert "- Table 2, `gtfa`, plcc: 0.8059 — 000, Table 2, row 'GTFA'" in sources


def test_report_reads_the_training_size_from_the_data_summary(full_run, tmp_path):
    (full_run / "figures").mkdir(exist_ok=True)
    summary = tmp_path / "dataset.json"
    counts = {str(label): 1 for label in range(10)}
    summary.write_text(json.dumps({"n_train": 5085, "train_class_counts": counts}))
    text = write_full_report(full_run, tmp_path / "report.md", summary).read_text()
    assert "training images 5,085 (paper 50,000)" in text
    assert "This run: 5,085 training images, width 8, 15 epochs, base accuracy 0.9000" in text
    summary.write_text("{broken")
    with pytest.raises(CompRepsError, match="prepare_data"):
        write_full_report(full_run, tmp_path / "report.md", summary)


def test_report_cli_rejects_bad_config_json(full_run, tmp_path):
    args = [
        "report",
        *table_args(full_run, "accuracy", "correlations", "sensitivity", "metrics"),
        "--figures",
        str(tmp_path / "fig1_weight_histograms.png"),
        "--out",
        str(tmp_path / "r.md"),
    ]
    with pytest.raises(CompRepsError, match="config-json"):
        report.main([*args, "--config-json", "{not json"])
    dumps = ["--dumps", *map(str, dumps_of(full_run))]  # per-image predictions (McNemar)
    assert report.main([*args, *dumps, "--config-json", json.dumps({"a": 1})]) == 0
    assert "was not written in this run" in (tmp_path / "r.md").read_text()


def test_covariance_spectrum_without_the_layer_or_with_a_damaged_file(tmp_path):
    dump = fake_dump("base")
    del dump.layers["fc"]
    write_dump(tmp_path / "a.h5", dump)
    assert figures_models.covariance_spectrum(tmp_path / "a.h5").size == 0
    (tmp_path / "b.h5").write_bytes(b"not hdf5")
    with pytest.raises(CompRepsError, match="truncated or corrupt"):
        figures_models.covariance_spectrum(tmp_path / "b.h5")


def test_report_names_its_seed_and_the_coreset_initialisation(full_run, tmp_path):
    config = {"train": {"seeds": [43]}, "coreset": {"init": "independent"}}
    line = report.replicate_line(config)
    assert "Training seed 43" in line and "(`coreset.init`): independent" in line
    assert "not recorded" in report.replicate_line({}).split(";")[0]
    text = write_full_report(full_run, tmp_path / "report.md").read_text()
    assert "coreset models' initial weights (`coreset.init`): not recorded" in text
