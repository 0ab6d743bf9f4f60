"""Coreset methods in the config and the workflow: model ids, config checks, the jobs a method
adds, and what reruns when one is added (a private copy of the workflow, presets/ci.yaml)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from conftest import ROOT, copy_workflow, planned_jobs, run_snakemake, write_overlay

from compreps.core import config as core_config
from compreps.core import families, vocabulary
from compreps.model.data.selection import stratified_indices

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
METHODS = ["random", "el2n", "kcenter"]


def with_methods(methods, base=CONFIG):
    config = copy.deepcopy(base)
    config["coreset"]["methods"] = list(methods)
    return config


def test_the_default_keeps_the_study_ids():
    ids = vocabulary.model_ids(CONFIG)
    assert [i for i in ids if i.startswith("coreset")] == [
        f"coreset-{f}" for f in CONFIG["coreset"]["fractions"]
    ]


def test_each_method_is_a_family_with_the_coreset_fractions():
    ids = vocabulary.model_ids(with_methods(METHODS))
    fractions = CONFIG["coreset"]["fractions"]
    for method in METHODS:
        family = families.coreset_family(method)
        assert [i for i in ids if i.rpartition("-")[0] == family] == [
            f"{family}-{f}" for f in fractions
        ]
        assert vocabulary.parse_model_id(f"{family}-0.1") == (family, 0.1)
    assert not any(i.startswith("coreset_ccs") for i in ids)
    only = vocabulary.model_ids(with_methods(["moderate"]))
    assert not any(i.startswith("coreset-") for i in only)
    assert sum(i.startswith("coreset_moderate-") for i in only) == len(fractions)


def test_method_families_are_not_the_papers():
    assert vocabulary.PAPER_FAMILIES == ("coreset", "prune", "quant")
    assert families.family("coreset_el2n").step == "train"
    assert [families.coreset_method(f) for f in ("coreset", "coreset_aum", "prune")] == [
        "random",
        "aum",
        None,
    ]


def test_config_accepts_methods_and_rejects_bad_ones():
    assert core_config.config_problems(with_methods(METHODS), check_files=False) == []
    assert core_config.config_problems(with_methods(["ccs"]), check_files=False) == []
    bad = core_config.config_problems(with_methods(["craig"]), check_files=False)
    assert len(bad) == 1 and "coreset/methods/0" in bad[0] and "kcenter" in bad[0]
    listed = with_methods(METHODS)
    listed["families"] = [*listed["families"], "coreset_el2n"]
    problems = core_config.config_problems(listed, check_files=False)
    assert problems == [
        "config key families/6 = 'coreset_el2n' is not allowed; allowed: one of: coreset, "
        "prune, quant, struct_l1, nexp, fold"
    ]
    beta = with_methods(["ccs"])
    beta["coreset"]["ccs_beta"] = 1.0
    assert any(
        "coreset/ccs_beta" in line for line in core_config.config_problems(beta, check_files=False)
    )


def test_a_method_adds_its_selection_and_models(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    default = planned_jobs(workdir)
    assert "coreset_scores" not in default and "coreset_method" not in default
    overlay = write_overlay(workdir, "methods.yaml", {"coreset": {"methods": METHODS}})
    jobs = planned_jobs(workdir, "--configfile", "presets/ci.yaml", overlay)
    # ci: fractions 0.5 and 0.1; one selection run serves both methods
    assert jobs["coreset_scores"] == 1 and jobs["coreset_method"] == 4
    assert jobs["coreset"] == 2 and jobs["train_coreset"] == 6
    assert jobs["activations"] == default["activations"] + 4


CSVS = [
    f"results/seed-42/coresets/{c}-{f}.csv" for c in ("coreset", "coreset_el2n") for f in (0.5, 0.1)
]


@pytest.mark.filterwarnings("ignore:.*not the full")
def test_adding_a_method_reruns_its_selections_only(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    first = {"coreset": {"methods": ["random", "el2n"], "selection_epochs": 1}}
    overlay = write_overlay(workdir, "first.yaml", first)
    # a flag after the config files ends their list (--configfile takes several)
    run_snakemake(workdir, "--configfile", "presets/ci.yaml", overlay, "--keep-going", *CSVS)
    # random's selections are the study's: class-stratified, seeded by the replicate seed
    labels = np.loadtxt(
        workdir / "results/coresets/selection/scores.csv",
        delimiter=",",
        skiprows=1,
        usecols=1,
        dtype=np.int64,
    )
    for fraction in (0.5, 0.1):
        rows = stratified_indices(labels, round(fraction * labels.size), 42)
        expected = "index,label\n" + "".join(f"{i},{labels[i]}\n" for i in rows)
        text = (workdir / f"results/seed-42/coresets/coreset-{fraction}.csv").read_text()
        assert text.replace("\r\n", "\n") == expected
    more = copy.deepcopy(first)
    more["coreset"]["methods"].append("kcenter")
    more["coreset"]["ccs_beta"] = 0.3  # an option of a method not listed: reruns nothing
    overlay = write_overlay(workdir, "more.yaml", more)
    kcenter = [f"results/seed-42/coresets/coreset_kcenter-{f}.csv" for f in (0.5, 0.1)]
    jobs = planned_jobs(
        workdir, "--configfile", "presets/ci.yaml", overlay, "--keep-going", *CSVS, *kcenter
    )
    assert jobs == {"coreset_method": 2}, jobs
    longer = copy.deepcopy(first)
    longer["coreset"]["selection_epochs"] = 2
    overlay = write_overlay(workdir, "longer.yaml", longer)
    jobs = planned_jobs(workdir, "--configfile", "presets/ci.yaml", overlay, "--keep-going", *CSVS)
    assert jobs == {"coreset_scores": 1, "coreset_method": 2}, jobs
