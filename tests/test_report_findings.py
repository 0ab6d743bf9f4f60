"""The report's findings: each claim's test on small hand-made tables where it holds, does not
hold and is undecided (docs/metrics.md, "Verdicts")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from compreps.analysis.paper import NAMED_REPS_CONFIGS
from compreps.analysis.report import findings as rf
from compreps.analysis.report.evidence import Significance
from compreps.analysis.report.findings import FAILS, HOLDS, UNDECIDED, Scale
from compreps.analysis.report.paper_side import NOT_IN_PAPER, PaperCells
from compreps.analysis.statistics.correlate import correlation_table
from compreps.analysis.statistics.inference import wilson_interval
from compreps.core.settings import CorrelationSettings
from compreps.core.vocabulary import CORRELATION_COLUMNS

AT_SCALE = Scale(n_train=50000, width=64, epochs=50, base_accuracy=0.93)
SMALL = Scale(n_train=5085, width=8, epochs=15, base_accuracy=0.57)
TESTING = Significance(confidence=0.95, bootstrap=400, seed=0)
NO_SENS = pd.DataFrame(columns=["config", "n", "plcc"])


def accuracy_table(base, levels, n_test=10000):
    """``levels``: ``{(family, level): accuracy}``, with counts and Wilson intervals."""
    rows = [("base", "base", float("nan"), base)]
    rows += [(f"{f}-{lv:g}", f, float(lv), a) for (f, lv), a in levels.items()]
    table = pd.DataFrame(rows, columns=["model", "family", "level", "accuracy"])
    table["n_test"] = n_test
    table["n_correct"] = (table["accuracy"] * n_test).round().astype(int)
    bounds = [wilson_interval(k, n_test) for k in table["n_correct"]]
    table["accuracy_low"], table["accuracy_high"] = zip(*bounds, strict=True)
    return table


def corr_table(values, n=24):
    """``values``: ``{metric: (r, low, high)}``, the same for PLCC, SRCC and KRCC."""
    rows = []
    for metric, (r, low, high) in values.items():
        row = {"metric": metric, "scope": "all", "n": n, "n_excluded": 0}
        for coef in ("plcc", "srcc", "krcc"):
            row.update({coef: r, f"{coef}_low": low, f"{coef}_high": high, f"{coef}_p": 0.01})
        row.update({"plcc_partial": r, "srcc_partial": r, "krcc_granulated": r})
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def run_of(scale, accuracy=None, corr=None, sens=None, metrics=None, correct=None):
    accuracy = accuracy if accuracy is not None else accuracy_table(scale.base_accuracy, {})
    corr = corr if corr is not None else corr_table({})
    sens = sens if sens is not None else NO_SENS
    return rf.Run(accuracy, corr, sens, scale, metrics, correct, TESTING)


# base 0.93, chance 0.1: kept above 0.93 − 0.1·0.83 = 0.847, lost below it
PRUNE_OK = {("prune", 0.5): 0.92, ("prune", 0.7): 0.80, ("prune", 0.9): 0.23}


def test_prune_claim_holds_fails_and_is_undecided():
    assert rf.check_prune(run_of(AT_SCALE, accuracy_table(0.93, PRUNE_OK)))[0] == HOLDS
    worse = {**PRUNE_OK, ("prune", 0.5): 0.70}
    verdict, _, reason = rf.check_prune(run_of(AT_SCALE, accuracy_table(0.93, worse)))
    assert verdict == FAILS and "0.5 lost" in reason
    # 0.85 on 10,000 images: [0.843, 0.857] straddles 0.847 -> undecided
    near = {**PRUNE_OK, ("prune", 0.5): 0.85}
    verdict, _, reason = rf.check_prune(run_of(AT_SCALE, accuracy_table(0.93, near)))
    assert verdict == UNDECIDED and "0.5 unclear" in reason
    # the same accuracies on 50 images: every interval is too wide to decide
    few = accuracy_table(0.93, PRUNE_OK, n_test=50)
    assert rf.check_prune(run_of(AT_SCALE, few))[0] == UNDECIDED
    assert rf.check_prune(run_of(AT_SCALE, accuracy_table(0.93, {})))[0] == rf.ABSENT


def test_quant_claim_collapse_by_wilson_interval():
    levels = {("quant", 5): 0.92, ("quant", 3): 0.10}
    assert rf.check_quant(run_of(AT_SCALE, accuracy_table(0.93, levels)))[0] == HOLDS
    levels[("quant", 3)] = 0.30  # far above chance + 0.05
    assert rf.check_quant(run_of(AT_SCALE, accuracy_table(0.93, levels)))[0] == FAILS
    levels[("quant", 3)] = 0.15  # [0.143, 0.157] straddles 0.15
    assert rf.check_quant(run_of(AT_SCALE, accuracy_table(0.93, levels)))[0] == UNDECIDED


def correctness(accuracies: dict, n=2000, seed=0):
    """Independent per-image correctness with the given accuracies."""
    rng = np.random.default_rng(seed)
    return {m: rng.random(n) < a for m, a in accuracies.items()}


def test_fold_against_l1_by_mcnemar():
    acc = accuracy_table(0.93, {("fold", 0.5): 0.8, ("struct_l1", 0.5): 0.7})
    correct = correctness({"fold-0.5": 0.8, "struct_l1-0.5": 0.7})
    verdict, text, reason = rf.check_fold(run_of(AT_SCALE, acc, correct=correct))
    assert verdict == HOLDS and "exact McNemar p = " in text and "McNemar" in reason
    correct = correctness({"fold-0.5": 0.6, "struct_l1-0.5": 0.7})
    assert rf.check_fold(run_of(AT_SCALE, acc, correct=correct))[0] == FAILS
    correct = correctness({"fold-0.5": 0.70, "struct_l1-0.5": 0.70}, n=200)
    assert rf.check_fold(run_of(AT_SCALE, acc, correct=correct))[0] == UNDECIDED
    # without per-image predictions the claim is not in this run
    assert rf.check_fold(run_of(AT_SCALE, acc))[0] == rf.ABSENT


def test_nexp_meets_the_l1_model_of_nearest_parameter_fraction():
    acc = accuracy_table(
        0.93, {("struct_l1", 0.1): 0.8, ("struct_l1", 0.5): 0.4, ("nexp", 0.2): 0.7}
    )
    acc["param_fraction"] = [1.0, 0.9, 0.5, 0.6]
    correct = correctness({"struct_l1-0.1": 0.8, "struct_l1-0.5": 0.4, "nexp-0.2": 0.7})
    verdict, text, _ = rf.check_nexp(run_of(AT_SCALE, acc, correct=correct))
    assert verdict == HOLDS and "nexp-0.2 0.7000 vs struct_l1-0.5 0.4000" in text


def metric_tables(noise: dict, n_models=24, seed=0):
    """Metrics and accuracy of ``n_models`` compressed models: each metric is accuracy plus
    Gaussian noise of the given scale."""
    rng = np.random.default_rng(seed)
    families = ["coreset", "prune", "quant"] * (n_models // 3)
    levels = {f: 0.0 for f in families}
    rows, acc_rows = [], [("base", "base", float("nan"), 0.93)]
    for family in families:
        levels[family] += 1
        model, accuracy = f"{family}-{levels[family]:g}", rng.uniform(0.1, 0.9)
        acc_rows.append((model, family, levels[family], accuracy))
        for metric, scale in noise.items():
            value = accuracy + rng.normal(0, scale)
            rows.append((model, family, levels[family], "model", metric, value, False))
    metrics = pd.DataFrame(
        rows, columns=["model", "family", "level", "layer", "metric", "value", "degenerate"]
    )
    accuracy = pd.DataFrame(acc_rows, columns=["model", "family", "level", "accuracy"])
    corr = correlation_table(metrics, accuracy, CorrelationSettings(200, 0.95, 0))
    return metrics, accuracy, corr


def ranking_verdict(noise, claim="reps_equal_best_plcc", n_models=24):
    metrics, accuracy, corr = metric_tables(noise, n_models)
    run = run_of(AT_SCALE, accuracy, corr, metrics=metrics)
    return rf.CHECKS[claim](run)


def test_reps_ranking_holds_fails_and_is_undecided_by_paired_bootstrap():
    verdict, _, reason, *_ = ranking_verdict({"reps_equal": 0.01, "gtfa": 0.3})
    assert verdict == HOLDS and "(paired bootstrap over the same resampled models" in reason
    assert ranking_verdict({"reps_equal": 0.3, "gtfa": 0.01})[0] == FAILS
    assert ranking_verdict({"reps_equal": 0.2, "gtfa": 0.2}, n_models=6)[0] == UNDECIDED


def test_gtfa_claim_states_the_paired_test_and_the_reversed_order():
    verdict, text, reason, _ = ranking_verdict({"reps_equal": 0.3, "gtfa": 0.01}, "gtfa_plcc")
    assert verdict == FAILS and "reverse the paper's 0.9878 > 0.8059" in text
    assert "PLCC(reps_equal) − PLCC(gtfa)" in reason


def test_weight_similarity_weakest_by_absolute_coefficient():
    noise = {"weight_similarity": 2.0, "gtfa": 0.05}
    assert ranking_verdict(noise, "weight_similarity_weakest")[0] == HOLDS
    noise = {"weight_similarity": 0.05, "gtfa": 2.0}
    assert ranking_verdict(noise, "weight_similarity_weakest")[0] == FAILS


def test_signs_hold_fail_and_undecided():
    values = {"gtfa": (0.8, 0.6, 0.9), "kl_divergence": (-0.7, -0.9, -0.4)}
    assert rf.check_signs(run_of(AT_SCALE, corr=corr_table(values)))[0] == HOLDS
    values["wasserstein"] = (0.5, 0.2, 0.7)
    verdict, text, *_ = rf.check_signs(run_of(AT_SCALE, corr=corr_table(values)))
    assert verdict == FAILS and "wasserstein +0.500" in text
    values["wasserstein"] = (-0.1, -0.4, 0.2)
    assert rf.check_signs(run_of(AT_SCALE, corr=corr_table(values)))[0] == UNDECIDED


def sensitivity_tables(noise):
    components = {name: noise for name in ("s_e", "s_alive", "s_s", "s_d")}
    metrics, accuracy, _ = metric_tables(components)
    sens = pd.DataFrame(
        [(name, *w, 24, 0.97) for name, w in NAMED_REPS_CONFIGS.items()],
        columns=["config", "w_effective_rank", "w_alive", "w_separation", "w_decay", "n", "plcc"],
    )
    return run_of(AT_SCALE, accuracy, sens=sens, metrics=metrics)


def test_sensitivity_threshold_by_bootstrap_of_every_configuration():
    assert rf.check_sensitivity(sensitivity_tables(0.001))[0] == HOLDS
    verdict, _, reason = rf.check_sensitivity(sensitivity_tables(0.3))
    assert verdict == FAILS and "bootstrap intervals" in reason


def test_the_scale_is_context_never_a_verdict():
    worse = {**PRUNE_OK, ("prune", 0.5): 0.70}
    small = rf.findings(accuracy_table(0.93, worse), corr_table({}), NO_SENS, SMALL)
    at_scale = rf.findings(accuracy_table(0.93, worse), corr_table({}), NO_SENS, AT_SCALE)
    assert [f.verdict for f in small] == [f.verdict for f in at_scale]
    by_id = {f.id: f for f in small}
    assert by_id["prune_stable_to_0.5"].verdict == FAILS
    assert "8/64 width, 15/50 epochs" in by_id["prune_stable_to_0.5"].context
    assert {f.context for f in at_scale if f.context} == {"at the paper's scale"}
    assert all("cannot be judged" not in f.verdict for f in small)


def test_scale_gaps_name_both_numbers():
    assert AT_SCALE.gaps() == []
    gaps = SMALL.gaps()
    assert gaps[0] == "training images 5,085 (paper 50,000)"
    assert gaps[-1] == "base accuracy 0.5700 (paper 0.9277)"


def test_paper_cell_shows_both_versions_where_they_differ(monkeypatch):
    cells = PaperCells()
    assert cells.cell(2, "cka_linear", "plcc") == NOT_IN_PAPER
    assert cells.cell(2, "gtfa", "plcc") == "0.8059"
    two = [(0.1, "000, Table 9, row 'x'"), (0.2, "001, Table 9, row 'x'")]
    monkeypatch.setattr("compreps.analysis.report.paper_side.paper_value", lambda *a: two)
    assert cells.cell(9, "x", "plcc") == "0.1000 (000) / 0.2000 (001)"
    section = cells.section()
    assert "- Table 2, `gtfa`, plcc: 0.8059 — 000, Table 2" in section
    assert "0.2000 — 001, Table 9, row 'x'" in section
    assert "cka_linear" not in section


@pytest.mark.parametrize("scale", [AT_SCALE, SMALL])
def test_every_claim_with_a_check_gets_a_finding(scale):
    found = rf.findings(accuracy_table(0.9, {}), corr_table({}), NO_SENS, scale)
    assert [f.id for f in found] == [*rf.CHECKS, *rf.EXTENSION_CLAIMS]


def test_coreset_decline_by_mcnemar_between_consecutive_fractions():
    def verdict(accuracies):
        levels = {("coreset", f): a for f, a in zip((0.8, 0.5, 0.1), accuracies, strict=True)}
        correct = correctness({f"coreset-{f:g}": a for (_, f), a in levels.items()}, n=4000)
        return rf.check_coreset(run_of(AT_SCALE, accuracy_table(0.93, levels), correct=correct))

    assert verdict((0.92, 0.85, 0.40))[0] == HOLDS
    result, _, reason = verdict((0.92, 0.60, 0.80))  # 0.1 significantly above 0.5
    assert result == FAILS and "coreset-0.1 > coreset-0.5" in reason
    # the smallest fraction's interval [0.838, 0.852] straddles the keep threshold 0.847
    assert verdict((0.92, 0.90, 0.845))[0] == UNDECIDED


def test_gtfa_claim_holds_and_is_undecided():
    verdict, text, *_ = ranking_verdict({"reps_equal": 0.01, "gtfa": 0.3}, "gtfa_plcc")
    assert verdict == HOLDS and "reverse" not in text
    metrics, accuracy, corr = metric_tables({"reps_equal": 0.2, "gtfa": 0.2}, 6)
    assert rf.check_gtfa(run_of(AT_SCALE, accuracy, corr, metrics=metrics))[0] == UNDECIDED
