"""The ci DAG (cut to one model per family, tests/small-dag.yaml) with every path odd: the
working directory, the data root and the base checkpoint under names with spaces and non-ASCII
characters; then the data replaced after the run."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
import yaml
from conftest import (
    ROOT,
    copy_workflow,
    planned_jobs,
    random_bn_model,
    run_snakemake,
    write_overlay,
)

pytestmark = pytest.mark.workflow
DATA_ROOT = "dätä root/CIFAR sample é"
BASE = "wëights dir/base model (1).pt"


def test_odd_paths_run_and_a_replaced_batch_reruns_everything(tmp_path):
    workdir = copy_workflow(tmp_path / "wörk dir" / "wf")
    shutil.copytree(ROOT / "data" / "cifar10-sample", workdir / DATA_ROOT)
    (workdir / BASE).parent.mkdir()
    torch.save(random_bn_model(seed=2).eval().state_dict(), workdir / BASE)
    small = yaml.safe_load((ROOT / "tests" / "small-dag.yaml").read_text())  # 5 models
    overlay = write_overlay(
        workdir, "odd.yaml", {**small, "data": {"root": DATA_ROOT}, "base_checkpoint": BASE}
    )
    args = ("--configfile", "presets/ci.yaml", overlay)
    run_snakemake(workdir, *args, timeout=1500)
    assert (workdir / "results" / "report.md").is_file()
    assert len(list((workdir / "results" / "seed-42" / "activations").glob("*.h5"))) == 5
    assert planned_jobs(workdir, *args) == {}

    batches = workdir / DATA_ROOT / "cifar-10-batches-py"
    os.utime(batches / "test_batch")  # touched, same bytes: nothing to do
    assert planned_jobs(workdir, *args) == {}

    shutil.copy2(batches / "data_batch_1", batches / "test_batch")  # keeps the old mtime
    jobs = planned_jobs(workdir, *args)
    assert jobs["prepare_data"] == 1 and jobs["import_base"] == 1
    assert jobs["train_coreset"] == 1 and jobs["activations"] == 5 and jobs["report"] == 1
    proc = run_snakemake(workdir, "--until", "prepare_data", *args, check=False)
    assert proc.returncode != 0
    log = (workdir / "results/logs/prepare_data.log").read_text()
    folder = f"{DATA_ROOT}/cifar-10-batches-py"
    assert f"{folder}/test_batch is identical to {folder}/data_batch_1" in log, log[-2000:]
