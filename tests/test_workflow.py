"""The whole DAG on presets/ci.yaml through Snakemake, and what a config change reruns."""

from __future__ import annotations

import shutil
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, planned_jobs, run_snakemake, write_overlay

from compreps.core.vocabulary import ACCURACY_TABLE_COLUMNS

pytestmark = pytest.mark.workflow

STRUCTURED_MODELS = ["struct_l1-0.5", "nexp-0.5", "fold-0.5"]
CI_MODELS = [
    "base",
    "coreset-0.5",
    "coreset-0.1",
    "prune-0.5",
    "prune-0.9",
    "quant-4",
    "quant-2",
    *STRUCTURED_MODELS,
]
MODEL_RULES = {
    "train_base",
    "train_coreset",
    "import_base",
    "coreset",
    "prune",
    "quantize",
    "compress_structured",
}
ANALYSIS_RULES = {
    "model_metrics",
    "metrics_table",
    "accuracy_table",
    "correlations",
    "sensitivity",
    "figures",
    "report",
    "seeds",
    "all",
}


def test_ci_run_writes_every_output(ci_run):
    results = ci_run / "results" / "seed-42"  # train.seeds: [42]
    for model in CI_MODELS:
        assert (results / "checkpoints" / f"{model}.pt").stat().st_size > 0
        with h5py.File(results / "activations" / f"{model}.h5") as h5:
            assert h5.attrs["model"] == model
            assert set(h5["probe/layers"]) == {
                "layer4.1.conv2",
                "fc",
                "layer1",
                "layer2",
                "layer3",
                "layer4",
                "avgpool",  # probe.hidden_layer
            }
            assert h5["probe/indices"].shape == (60,)
        assert (results / "metrics" / f"{model}.csv").exists()
    accuracy = pd.read_csv(results / "tables" / "accuracy.csv")
    assert list(accuracy.columns) == list(ACCURACY_TABLE_COLUMNS)
    counts = accuracy.set_index("model")
    assert (counts["n_test"] == 1017).all()  # the shipped sample's test split
    assert np.allclose(counts["n_correct"] / counts["n_test"], counts["accuracy"], atol=5e-4)
    assert np.allclose(counts["drop"], counts.loc["base", "accuracy"] - counts["accuracy"])
    assert (counts["finetune_epochs"] == 0).all()
    assert accuracy["model"].tolist() == CI_MODELS  # Table 1 order: structured families last
    assert accuracy["accuracy"].between(0, 1).all()
    fractions = accuracy.set_index("model")["param_fraction"]
    assert (fractions.drop(STRUCTURED_MODELS) == 1.0).all()
    assert fractions[STRUCTURED_MODELS].between(0.05, 0.6).all()  # half the channels removed
    macs = accuracy.set_index("model")["macs"]
    assert (macs[STRUCTURED_MODELS] < macs["base"]).all() and (macs["quant-2"] == macs["base"])
    for model in STRUCTURED_MODELS:
        with (
            h5py.File(results / "activations" / f"{model}.h5") as h5,
            h5py.File(results / "activations" / "base.h5") as base,
        ):
            assert h5.attrs["dense_view"] in ("pruned-zeros", "fold-unfolded")
            for name in ("probe/layers/layer1", "weights/conv1", "weights/fc"):
                assert h5[name].shape == base[name].shape, (model, name)
    for table in ("metrics", "correlations", "sensitivity"):
        assert len(pd.read_csv(results / "tables" / f"{table}.csv")) > 0
    for name in (
        "fig1_weight_histograms",
        "fig2_representations",
        "accuracy_vs_level",
        "metric_vs_accuracy",
        "sensitivity_heatmap",
    ):
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"{name}.{ext}").stat().st_size > 0
    report = (results / "report.md").read_text()
    assert "Table 1" in report and "Table 2" in report
    findings = pd.read_csv(results / "tables" / "findings.csv")
    assert (
        findings["verdict"].isin(["holds", "does not hold", "undecided", "not in this run"]).all()
    )
    assert findings["id"].is_unique and len(findings) >= 10
    for log in ("train/base.log", "activations/base.log", "report.log"):
        assert (results / "logs" / log).exists(), log
    assert (ci_run / "results" / "logs" / "prepare_data.log").exists()
    assert not list(results.glob("train_state/*.pt")), "resume states are removed when done"
    summary = (ci_run / "results" / "report.md").read_text()
    assert "seed-42/report.md" in summary
    spread = pd.read_csv(ci_run / "results" / "tables" / "seeds_accuracy.csv")
    assert (spread["n_seeds"] == 1).all() and spread["accuracy_sd"].isna().all()
    assert np.allclose(spread["accuracy_mean"], accuracy["accuracy"])


def test_finished_run_plans_nothing(ci_run):
    assert planned_jobs(ci_run) == {}


def test_metric_weight_change_reruns_only_analysis(ci_run):
    overlay = write_overlay(
        ci_run,
        "weights.yaml",
        {
            "metrics": {
                "reps": {
                    "weights": {
                        "effective_rank": 0.25,
                        "alive": 0.25,
                        "separation": 0.25,
                        "decay": 0.25,
                    }
                }
            }
        },
    )
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert jobs["model_metrics"] == len(CI_MODELS)
    assert {"metrics_table", "correlations", "sensitivity", "figures", "report", "seeds"} <= set(
        jobs
    )
    assert set(jobs) <= ANALYSIS_RULES, jobs


def test_gtfa_and_correlation_settings_reach_only_analysis(ci_run):
    overlay = write_overlay(
        ci_run, "gtfa.yaml", {"metrics": {"gtfa": {"beta": 0.5}}, "correlation": {"bootstrap": 50}}
    )
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert "model_metrics" in jobs and "correlations" in jobs
    assert set(jobs) <= ANALYSIS_RULES, jobs


def test_probe_change_reruns_activations_and_analysis_no_training(ci_run):
    overlay = write_overlay(ci_run, "probe.yaml", {"probe": {"size": 50}})
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert jobs.get("activations") == len(CI_MODELS)
    assert "report" in jobs and not set(jobs) & MODEL_RULES, jobs
    overlay = write_overlay(
        ci_run,
        "layers.yaml",
        {
            "probe": {
                "trajectory_layers": ["layer1", "layer2", "layer3", "layer4", "layer4.1", "fc"]
            }
        },
    )
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert jobs.get("activations") == len(CI_MODELS) and not set(jobs) & MODEL_RULES, jobs


def test_new_pruning_ratio_adds_only_its_jobs(ci_run):
    overlay = write_overlay(ci_run, "ratios.yaml", {"prune": {"ratios": [0.5, 0.9, 0.3]}})
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert jobs["prune"] == 1 and jobs["activations"] == 1 and jobs["model_metrics"] == 1
    assert not set(jobs) & {"train_base", "train_coreset", "quantize", "coreset"}, jobs
    assert set(jobs) - {"prune", "activations"} <= ANALYSIS_RULES, jobs


def test_new_structured_level_adds_only_its_jobs(ci_run):
    overlay = write_overlay(ci_run, "nexp.yaml", {"nexp": {"levels": [0.5, 0.3]}})
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert jobs["compress_structured"] == 1 and jobs["activations"] == 1
    assert jobs["model_metrics"] == 1
    assert set(jobs) - {"compress_structured", "activations"} <= ANALYSIS_RULES, jobs


def test_structured_option_change_reruns_only_that_family(ci_run):
    overlay = write_overlay(ci_run, "fold.yaml", {"fold": {"bn_repair": "none"}})
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert jobs["compress_structured"] == 1 and jobs["activations"] == 1
    assert set(jobs) - {"compress_structured", "activations"} <= ANALYSIS_RULES, jobs


def test_training_change_reruns_every_training(ci_run):
    overlay = write_overlay(ci_run, "lr.yaml", {"train": {"lr": 0.05}})
    jobs = planned_jobs(ci_run, "--configfile", "presets/ci.yaml", overlay)
    assert jobs["train_base"] == 1 and jobs["train_coreset"] == 2
    assert jobs["prune"] == 2 and jobs["quantize"] == 2 and jobs["compress_structured"] == 3
    assert jobs["activations"] == len(CI_MODELS)


def test_html_report(ci_run):
    run_snakemake(ci_run, "--report", "report.html")
    html = (ci_run / "report.html").read_text(errors="replace")
    assert len(html) > 10_000 and "correlations.csv" in html


def test_user_base_checkpoint(ci_run, tmp_path):
    """base_checkpoint (on the ci DAG cut to 5 models): analyses the given weights; replacing
    the file reruns everything downstream of it, but no coreset training."""
    workdir = tmp_path / "wf"
    shutil.copytree(ci_run, workdir, symlinks=True)
    user_weights = workdir / "user_base.pt"
    import torch

    from compreps.model.checkpoints import load_checkpoint

    state_dict, _ = load_checkpoint(workdir / "results/seed-42/checkpoints/base.pt")
    torch.save(state_dict, user_weights)  # a plain state dict, as users have them
    small = yaml.safe_load((ROOT / "tests" / "small-dag.yaml").read_text())  # 5 models
    overlay = write_overlay(workdir, "user.yaml", {**small, "base_checkpoint": "user_base.pt"})
    args = ("--configfile", "presets/ci.yaml", overlay)
    jobs = planned_jobs(workdir, *args)
    assert jobs.get("import_base") == 1 and "train_coreset" not in jobs, jobs
    run_snakemake(workdir, *args)
    assert planned_jobs(workdir, *args) == {}

    time.sleep(1.1)  # a replaced file is newer
    state_dict = {k: v * 1.01 if v.is_floating_point() else v for k, v in state_dict.items()}
    torch.save(state_dict, user_weights)
    jobs = planned_jobs(workdir, *args)
    assert jobs["import_base"] == 1 and jobs["prune"] == 1 and jobs["quantize"] == 1
    assert jobs["compress_structured"] == 1
    assert jobs["activations"] == 4  # base and its 3 compressions: coreset-0.5 keeps its own
    assert jobs["model_metrics"] == 5  # all compare with the new base
    assert "train_coreset" not in jobs and "train_base" not in jobs and "coreset" not in jobs
    meta = yaml.safe_dump(jobs)
    assert "report" in meta
