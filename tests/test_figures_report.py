"""Figures and the Markdown report from a small synthetic run (HDF5 files, checkpoints, tables)."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from compreps import correlate, figures, report
from compreps.files import CompRepsError, save_checkpoint

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


def family_level(model):
    if model == "base":
        return "base", math.nan
    family, _, level = model.partition("-")
    return family, float(level)


def tiny_state_dict(rng, scale):
    """A conv, a BN and a linear layer: only the conv and linear weights are histogrammed."""
    return {
        "conv1.weight": torch.tensor(rng.normal(0, scale, (4, 3, 3, 3)), dtype=torch.float32),
        "bn1.weight": torch.ones(4),
        "bn1.bias": torch.zeros(4),
        "fc.weight": torch.tensor(rng.normal(0, scale, (10, 4)), dtype=torch.float32),
        "fc.bias": torch.zeros(10),
    }


def write_run(root, models=MODELS, ids=None):
    """Tables, activation files and checkpoints for ``models`` under ``root``; ``ids`` renames
    the files/table entries (e.g. coreset-0.50) to check numeric level matching."""
    rng = np.random.default_rng(0)
    ids = ids or {}
    (root / "activations").mkdir(parents=True)
    (root / "checkpoints").mkdir()
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
        with h5py.File(root / "activations" / f"{model_id}.h5", "w") as handle:
            scales = np.geomspace(1.0, 10.0 ** -(1 + i / 3), 10)
            handle["probe/layers/fc"] = (rng.normal(size=(40, 10)) * scales).astype(np.float32)
            handle.attrs["accuracy"] = 0.9 - drop
        save_checkpoint(
            root / "checkpoints" / f"{model_id}.pt",
            tiny_state_dict(rng, 0.1 / (i + 1)),
            {"model_id": model_id},
        )
    metrics = pd.DataFrame(metric_rows, columns=correlate.METRIC_COLUMNS)
    accuracy = pd.DataFrame(accuracy_rows, columns=correlate.ACCURACY_COLUMNS)
    sensitivity = correlate.sensitivity_table(metrics, accuracy, grid_step=0.25)
    correlations = correlate.correlation_table(metrics, accuracy, n_bootstrap=50)
    for name, frame in (
        ("metrics", metrics),
        ("accuracy", accuracy),
        ("sensitivity", sensitivity),
        ("correlations", correlations),
    ):
        frame.to_csv(root / f"{name}.csv", index=False)
    return root


def check_written(out_dir):
    for name in figures.FIGURE_NAMES:
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
                "--metrics",
                str(full_run / "metrics.csv"),
                "--accuracy",
                str(full_run / "accuracy.csv"),
                "--sensitivity",
                str(full_run / "sensitivity.csv"),
                "--activations-dir",
                str(full_run / "activations"),
                "--checkpoints-dir",
                str(full_run / "checkpoints"),
                "--out-dir",
                str(out),
            ]
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
        root / "sensitivity.csv",
        root / "activations",
        root / "checkpoints",
        root / "figures",
    )
    assert len(paths) == 10
    check_written(root / "figures")
    err = capsys.readouterr().err
    assert "fig2_representations: not in this run, skipped: C10, P90, Q4" in err
    assert "fig1_weight_histograms: not in this run, skipped: Q4" in err
    assert "C50" not in err  # coreset-0.50 matched 0.5 numerically


def test_find_model_matches_levels_numerically():
    ids = ["base", "coreset-0.50", "prune-0.9", "quant-4"]
    assert figures.find_model(ids, "coreset", 0.5) == "coreset-0.50"
    assert figures.find_model(ids, "quant", 4) == "quant-4"
    assert figures.find_model(ids, "prune", 0.5) is None
    assert figures.find_model(ids, "base", None) == "base"


def test_model_weights_are_conv_and_linear_only(tmp_path):
    state = tiny_state_dict(np.random.default_rng(1), 1.0)
    save_checkpoint(tmp_path / "m.pt", state, {})
    weights = figures.model_weights(tmp_path / "m.pt")
    assert weights.size == 4 * 3 * 3 * 3 + 10 * 4
    np.testing.assert_array_equal(
        np.sort(weights),
        np.sort(
            np.concatenate(
                [state["conv1.weight"].numpy().ravel(), state["fc.weight"].numpy().ravel()]
            )
        ),
    )


def test_covariance_spectrum_of_known_covariance(tmp_path):
    # orthogonal zero-mean columns with norms s: covariance eigenvalues s^2/(n-1)
    basis = np.linalg.qr(np.random.default_rng(2).normal(size=(50, 4)))[0]
    basis -= basis.mean(axis=0)
    basis = np.linalg.qr(basis)[0]  # re-orthogonalise; centring keeps the columns in 1-perp
    basis -= basis.mean(axis=0)
    scales = np.array([4.0, 2.0, 1.0, 0.5])
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle["probe/layers/fc"] = basis * scales
    gram = (basis * scales).T @ (basis * scales)
    expected = np.sort(np.linalg.eigvalsh(gram))[::-1]
    got = figures.covariance_spectrum(tmp_path / "a.h5")
    np.testing.assert_allclose(got, expected / expected.sum(), atol=1e-10)
    np.testing.assert_allclose(got, scales**2 / np.sum(scales**2), atol=0.05)


def write_full_report(run, out, paper_values=None):
    config = {
        "correlation": {"bootstrap": 50, "confidence": 0.95, "seed": 42},
        "probe": {"size": 60},
    }
    return report.write_report(
        run / "accuracy.csv",
        run / "correlations.csv",
        run / "sensitivity.csv",
        run / "metrics.csv",
        run / "figures",
        config,
        out,
        paper_values,
    )


def test_report_contains_tables_paper_values_and_links(full_run):
    (full_run / "figures").mkdir(exist_ok=True)
    for name in figures.FIGURE_NAMES:  # links only point at existing PNGs
        (full_run / "figures" / f"{name}.png").write_bytes(b"\x89PNG")
    text = write_full_report(full_run, full_run / "report.md").read_text()
    for heading in (
        "## Table 1",
        "## Table 2",
        "## Table 3",
        "## Figures",
        "## Configuration",
        "## Software versions",
    ):
        assert heading in text
    assert "minus its accuracy drop" in text
    for model in MODELS:
        assert f"| {model} |" in text
    # the abstract's REPS value beside this run's reps_weighted (scope all), others unavailable
    reps_all = text.split("### Scope: all compressed models")[1].split("| reps_weighted |")[1]
    assert "0.988" in reps_all.split("\n")[0]
    assert "paper value not available in this repository" in text
    assert "| not available |" in text
    assert "![fig1_weight_histograms](figures/fig1_weight_histograms.png)" in text
    assert '"bootstrap": 50' in text
    assert f"| numpy | {np.__version__} |" in text
    assert "best grid point (max PLCC)" in text
    sens = pd.read_csv(full_run / "sensitivity.csv")
    best = sens[sens["config"] == "grid"]["plcc"].max()
    assert f"{best:.3f}" in text.split("best grid point (max PLCC)")[1].split("\n")[0]


def test_report_without_paper_values_invents_nothing(full_run, tmp_path):
    empty = tmp_path / "paper.csv"
    empty.write_text("table,row,column,value,source\n")
    text = write_full_report(full_run, tmp_path / "report.md", empty).read_text()
    assert "abstract" not in text.split("## Sources of the paper's values")[1]
    table2 = text.split("## Table 2")[1].split("## Table 3")[0]
    data_rows = [line for line in table2.splitlines() if line.startswith("| reps_weighted")]
    assert data_rows and all(
        line.endswith("| not available | not available | not available |") for line in data_rows
    )


def test_report_cli_rejects_bad_config_json(full_run, tmp_path):
    args = [
        "report",
        "--accuracy",
        str(full_run / "accuracy.csv"),
        "--correlations",
        str(full_run / "correlations.csv"),
        "--sensitivity",
        str(full_run / "sensitivity.csv"),
        "--metrics",
        str(full_run / "metrics.csv"),
        "--figures-dir",
        str(tmp_path),
        "--out",
        str(tmp_path / "r.md"),
    ]
    with pytest.raises(CompRepsError, match="config-json"):
        report.main([*args, "--config-json", "{not json"])
    assert report.main([*args, "--config-json", json.dumps({"a": 1})]) == 0
    assert "was not written in this run" in (tmp_path / "r.md").read_text()


def test_covariance_spectrum_without_the_layer_or_with_a_damaged_file(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle["probe/layers/layer1"] = np.ones((4, 3), dtype=np.float32)
    assert figures.covariance_spectrum(tmp_path / "a.h5").size == 0
    (tmp_path / "b.h5").write_bytes(b"not hdf5")
    with pytest.raises(CompRepsError, match="truncated or corrupt"):
        figures.covariance_spectrum(tmp_path / "b.h5")
