"""Replicate seeds (train.seeds) as a dimension of the DAG, on presets/ci.yaml: a seed added
to a finished run trains and analyses that seed only, leaves the other seed's files as they
were, and its removal reruns the summary across seeds only."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from conftest import (
    planned_jobs,
    planned_outputs,
    run_snakemake,
    snakemake_env,
    write_overlay,
)

from compreps.core.config import read_config
from compreps.core.settings import config_arguments
from compreps.core.vocabulary import ACCURACY_TABLE_COLUMNS

pytestmark = pytest.mark.workflow

CI_MODELS = 10  # presets/ci.yaml: base + 2 coreset + 2 prune + 2 quant + 3 structured
SUMMARY_RULES = {"seeds", "all"}  # the jobs across seeds


def seed_files(results) -> dict[str, int]:
    """Every file of one seed's folder with its modification time."""
    return {str(p.relative_to(results)): p.stat().st_mtime_ns for p in results.rglob("*.*")}


@pytest.fixture(scope="module")
def two_seeds(ci_run, tmp_path_factory):
    """The finished ci run (seed 42) with seed 7 added: (workdir, planned jobs, seed-42 files
    before the second seed ran)."""
    workdir = tmp_path_factory.mktemp("two_seeds") / "wf"
    shutil.copytree(ci_run, workdir, symlinks=True)
    overlay = write_overlay(workdir, "seeds.yaml", {"train": {"seeds": [42, 7]}})
    args = ("--configfile", "presets/ci.yaml", overlay)
    planned = planned_outputs(workdir, *args)
    before = seed_files(workdir / "results" / "seed-42")
    run_snakemake(workdir, *args, timeout=1500)
    return workdir, planned, before


def test_adding_a_seed_plans_only_its_jobs_and_the_summary(two_seeds):
    _, planned, _ = two_seeds
    counts = Counter(rule for rule, _ in planned)
    assert counts["train_base"] == 1 and counts["train_coreset"] == 2 and counts["coreset"] == 2
    assert counts["prune"] == 2 and counts["quantize"] == 2 and counts["compress_structured"] == 3
    assert counts["activations"] == counts["model_metrics"] == CI_MODELS
    assert counts["report"] == 1 and counts["seeds"] == 1
    assert "prepare_data" not in counts  # the data are shared
    for rule, outputs in planned:
        if rule not in SUMMARY_RULES:
            assert all(path.startswith("results/seed-7/") for path in outputs), (rule, outputs)


def test_the_first_seed_is_left_as_it_was(two_seeds):
    workdir, _, before = two_seeds
    assert seed_files(workdir / "results" / "seed-42") == before
    assert planned_jobs(workdir, "--configfile", "presets/ci.yaml", "seeds.yaml") == {}


def test_the_seeds_differ_and_the_spread_is_theirs(two_seeds):
    workdir, _, _ = two_seeds
    results = workdir / "results"
    tables = {s: pd.read_csv(results / f"seed-{s}/tables/accuracy.csv") for s in (42, 7)}
    for table in tables.values():
        assert list(table.columns) == list(ACCURACY_TABLE_COLUMNS)
    a, b = (tables[s].set_index("model")["accuracy"] for s in (42, 7))
    assert not np.allclose(a, b), "seed 7 trained the same networks as seed 42"
    spread = pd.read_csv(results / "tables/seeds_accuracy.csv").set_index("model")
    assert (spread["n_seeds"] == 2).all()
    assert np.allclose(spread["accuracy_mean"], (a + b) / 2)
    assert np.allclose(spread["accuracy_sd"], np.abs(a - b) / np.sqrt(2))  # sd of two values
    assert np.allclose(spread["accuracy_min"], np.minimum(a, b))
    report = (results / "report.md").read_text()
    assert "seed-42/report.md" in report and "seed-7/report.md" in report
    # each seed's own report shows its own configuration: train.seeds = [that seed]
    assert re.search(r'"seeds": \[\s*7\s*\]', (results / "seed-7/report.md").read_text())
    correlations = {s: pd.read_csv(results / f"seed-{s}/tables/correlations.csv") for s in (42, 7)}
    for metric in correlations[42]["metric"].unique():
        assert metric in report, metric


def test_removing_a_seed_reruns_only_the_summary(two_seeds):
    workdir, _, _ = two_seeds
    jobs = planned_jobs(workdir)  # presets/ci.yaml alone: train.seeds [42]
    assert set(jobs) == SUMMARY_RULES, jobs


def test_a_third_seed_plans_only_its_jobs(two_seeds):
    workdir, _, _ = two_seeds
    overlay = write_overlay(workdir, "three.yaml", {"train": {"seeds": [42, 7, 8]}})
    planned = planned_outputs(workdir, "--configfile", "presets/ci.yaml", overlay)
    counts = Counter(rule for rule, _ in planned)
    assert counts["train_base"] == 1 and counts["activations"] == CI_MODELS, counts
    for rule, outputs in planned:
        if rule not in SUMMARY_RULES:
            assert all(path.startswith("results/seed-8/") for path in outputs), (rule, outputs)


def test_one_seed_is_the_run_before_seeds(ci_run, tmp_path):
    """The ci run's seed-42 base is the network `compreps train` makes from the config's model
    and train sections with seed 42, run as the rule did before seeds: same weights, bit for
    bit (the seed list and its wiring change nothing of a one-seed run)."""
    import torch

    from compreps.model.checkpoints import load_checkpoint

    config, _ = read_config([ci_run / "config.yaml", ci_run / "presets/ci.yaml"])
    assert config["train"]["seeds"] == [42]
    out = tmp_path / "base.pt"
    command = [sys.executable, "-m", "compreps", "train", "--model-id", "base"]
    command += ["--data", "results/data/dataset.json"]
    command += shlex.split(config_arguments(config, "model", "train"))
    command += ["--eval-batch-size", str(config["probe"]["batch_size"]), "--out", str(out)]
    # the job's thread count, as Snakemake sets it: CPU kernels sum in a thread-dependent order
    env = {**snakemake_env(), "OMP_NUM_THREADS": str(config["resources"]["train"]["threads"])}
    subprocess.run(command, cwd=ci_run, env=env, check=True, capture_output=True)
    direct, _ = load_checkpoint(out)
    workflow, meta = load_checkpoint(ci_run / "results/seed-42/checkpoints/base.pt")
    assert meta["seed"] == meta["init_seed"] == 42
    assert direct.keys() == workflow.keys()
    assert all(torch.equal(direct[key], workflow[key]) for key in workflow)
