"""The report's findings: verdicts on small hand-made tables, by the documented rules."""

from __future__ import annotations

import pandas as pd
import pytest

from compreps.analysis.report import findings as rf
from compreps.analysis.report.findings import FAILS, HOLDS, SCALE, UNJUDGED, Scale
from compreps.analysis.report.paper_side import NOT_IN_PAPER, PaperCells
from compreps.core.vocabulary import CORRELATION_COLUMNS

AT_SCALE = Scale(n_train=50000, width=64, epochs=50, base_accuracy=0.93)
SMALL = Scale(n_train=5085, width=8, epochs=15, base_accuracy=0.57)


def accuracy_table(base, levels):
    """``levels``: ``{(family, level): accuracy}``."""
    rows = [("base", "base", float("nan"), base)]
    rows += [(f"{f}-{lv:g}", f, float(lv), a) for (f, lv), a in levels.items()]
    return pd.DataFrame(rows, columns=["model", "family", "level", "accuracy"])


def corr_table(values, n=24):
    """``values``: ``{metric: (r, low, high)}``, the same for PLCC, SRCC and KRCC."""
    rows = []
    for metric, (r, low, high) in values.items():
        row = {"metric": metric, "scope": "all", "n": n, "n_excluded": 0}
        for coef in ("plcc", "srcc", "krcc"):
            row.update({coef: r, f"{coef}_low": low, f"{coef}_high": high, f"{coef}_p": 0.01})
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def run_of(scale, accuracy=None, corr=None, sens=None):
    accuracy = accuracy if accuracy is not None else accuracy_table(scale.base_accuracy, {})
    corr = corr if corr is not None else corr_table({})
    sens = sens if sens is not None else pd.DataFrame(columns=["config", "n", "plcc"])
    return rf.Run(accuracy, corr, sens, scale)


PRUNE_OK = {("prune", 0.5): 0.92, ("prune", 0.7): 0.80, ("prune", 0.9): 0.23}
# base 0.93, chance 0.1: share of 0.92 = 0.01/0.83 = 1.2% kept; 0.80 = 15.7% fallen


def test_pruning_claim_holds_fails_and_depends_on_scale():
    assert rf.check_prune(run_of(AT_SCALE, accuracy_table(0.93, PRUNE_OK)))[0] == HOLDS
    # prune-0.5 at 0.80: share 15.7% > 10%, not kept
    worse = {**PRUNE_OK, ("prune", 0.5): 0.80}
    assert rf.check_prune(run_of(AT_SCALE, accuracy_table(0.93, worse)))[0] == FAILS
    verdict, _, reason = rf.check_prune(run_of(SMALL, accuracy_table(0.93, worse)))
    assert verdict == SCALE and "width 8 (paper 64)" in reason and "epochs 15" in reason
    assert rf.check_prune(run_of(AT_SCALE, accuracy_table(0.93, {})))[0] == rf.ABSENT


def test_quantization_collapse_is_within_chance_tolerance():
    levels = {("quant", 5): 0.925, ("quant", 3): 0.14}  # 0.14 <= 0.1 + 0.05
    assert rf.check_quant(run_of(AT_SCALE, accuracy_table(0.93, levels)))[0] == HOLDS
    levels[("quant", 3)] = 0.16
    assert rf.check_quant(run_of(AT_SCALE, accuracy_table(0.93, levels)))[0] == FAILS


def test_coreset_decline_tolerates_a_small_rise_only():
    paper = {("coreset", 0.8): 0.9215, ("coreset", 0.1): 0.4668, ("coreset", 0.05): 0.4717}
    assert rf.check_coreset(run_of(AT_SCALE, accuracy_table(0.93, paper)))[0] == HOLDS
    paper[("coreset", 0.05)] = 0.50  # rises 0.033 > 0.01
    verdict, _, reason = rf.check_coreset(run_of(AT_SCALE, accuracy_table(0.93, paper)))
    assert verdict == FAILS and "+0.0332" in reason


def test_ranking_needs_models_and_separated_intervals():
    best = {"reps_equal": (0.99, 0.98, 1.0), "gtfa": (0.80, 0.70, 0.90)}
    check = rf.CHECKS["reps_equal_best_plcc"]
    assert check(run_of(AT_SCALE, corr=corr_table(best)))[0] == HOLDS
    assert check(run_of(AT_SCALE, corr=corr_table(best, n=9)))[0] == UNJUDGED
    overlap = {**best, "gtfa": (0.95, 0.90, 0.985)}
    verdict, _, reason = check(run_of(AT_SCALE, corr=corr_table(overlap)))
    assert verdict == UNJUDGED and "overlap" in reason
    beaten = {"reps_equal": (0.876, 0.80, 0.93), "gtfa": (0.979, 0.96, 0.99)}  # the demo's
    assert check(run_of(AT_SCALE, corr=corr_table(beaten)))[0] == FAILS
    assert check(run_of(SMALL, corr=corr_table(beaten)))[0] == SCALE


def test_weakest_compares_absolute_values():
    values = {
        "weight_similarity": (0.14, -0.2, 0.4),  # |r| in [0, 0.4]
        "kl_divergence": (-0.67, -0.8, -0.5),  # |r| in [0.5, 0.8]: strong, though negative
    }
    check = rf.CHECKS["weight_similarity_weakest"]
    assert check(run_of(AT_SCALE, corr=corr_table(values)))[0] == HOLDS
    values["kl_divergence"] = (-0.05, -0.3, 0.2)
    assert check(run_of(AT_SCALE, corr=corr_table(values)))[0] == UNJUDGED


def test_signs_of_similarities_and_distances():
    values = {"reps_equal": (0.9, 0.8, 1.0), "kl_divergence": (-0.6, -0.8, -0.4)}
    assert rf.check_signs(run_of(AT_SCALE, corr=corr_table(values)))[0] == HOLDS
    values["logits_l2"] = (0.35, 0.1, 0.6)  # a distance with a positive sign, as the paper's
    verdict, text, _ = rf.check_signs(run_of(AT_SCALE, corr=corr_table(values)))
    assert verdict == FAILS and "logits_l2 +0.350" in text
    values["logits_l2"] = (0.05, -0.2, 0.3)
    assert rf.check_signs(run_of(AT_SCALE, corr=corr_table(values)))[0] == UNJUDGED


def test_sensitivity_floor():
    sens = pd.DataFrame({"config": ["weighted", "equal", "grid"], "n": 24,
                         "plcc": [0.97, 0.961, 0.2]})  # fmt: skip
    assert rf.check_sensitivity(run_of(AT_SCALE, sens=sens))[0] == HOLDS  # grid ignored
    sens.loc[1, "plcc"] = 0.95
    assert rf.check_sensitivity(run_of(AT_SCALE, sens=sens))[0] == FAILS


def test_extension_claims_not_in_this_run_and_paired_levels():
    found = rf.findings(accuracy_table(0.93, PRUNE_OK), corr_table({}), pd.DataFrame(
        columns=["config", "n", "plcc"]), AT_SCALE)  # fmt: skip
    by_id = {f.id: f for f in found}
    for claim in ("fold_vs_struct_l1", "nexp_vs_l1", "kl_vs_hidden"):
        assert by_id[claim].verdict == rf.ABSENT
    assert by_id["prune_stable_to_0.5"].verdict == HOLDS
    acc = accuracy_table(
        0.93,
        {
            ("fold", 0.5): 0.8,
            ("struct_l1", 0.5): 0.7,
            ("fold", 0.3): 0.6,
            ("struct_l1", 0.3): 0.65,
        },  # fmt: skip
    )
    verdict, text, reason = rf.check_fold(run_of(AT_SCALE, acc))
    assert verdict == FAILS and reason.endswith("1/2") and "fold 0.8000 vs struct_l1 0.7000" in text


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
    found = rf.findings(accuracy_table(0.9, {}), corr_table({}), pd.DataFrame(
        columns=["config", "n", "plcc"]), scale)  # fmt: skip
    assert [f.id for f in found] == [*rf.CHECKS, *rf.EXTENSION_CLAIMS]


def test_nexp_against_l1_interpolated_at_equal_parameters():
    # L1 at parameter fractions 0.9 and 0.5 has accuracy 0.80 and 0.40; NEXP keeps 0.7 of the
    # parameters: L1 interpolated there = 0.40 + (0.7 - 0.5) / (0.9 - 0.5) * 0.40 = 0.60.
    # NEXP at 0.3 lies outside L1's range [0.5, 0.9] and is not compared.
    acc = accuracy_table(0.93, {("struct_l1", 0.1): 0.80, ("struct_l1", 0.5): 0.40})
    acc["param_fraction"] = [1.0, 0.9, 0.5]
    nexp = pd.DataFrame(
        [("nexp-0.2", "nexp", 0.2, 0.65, 0.7), ("nexp-0.6", "nexp", 0.6, 0.5, 0.3)],
        columns=["model", "family", "level", "accuracy", "param_fraction"],
    )
    verdict, text, reason = rf.check_nexp(run_of(AT_SCALE, pd.concat([acc, nexp])))
    assert verdict == HOLDS and reason.endswith("1/1")
    assert "parameters kept 0.7: nexp 0.6500 vs struct_l1 0.6000" in text
    nexp.loc[0, "accuracy"] = 0.55
    verdict, _, reason = rf.check_nexp(run_of(AT_SCALE, pd.concat([acc, nexp])))
    assert verdict == FAILS and reason.endswith("0/1")
