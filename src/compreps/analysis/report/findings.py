"""The report's findings: each qualitative claim of the paper
(:data:`compreps.analysis.paper.claims.CLAIMS`) and of the extension studies (folding, NEXP,
representation hierarchy), tested on this run.

Every claim is a stated test with one of three results (docs/metrics.md, "Verdicts"):
**holds** (the test separates the alternatives in the claim's favour), **does not hold** (it
separates them against the claim) or **undecided** (it cannot separate them); **not in this
run** when a model or metric the claim needs is absent. Significance level α = 1 − the run's
``correlation.confidence``. The tests:

- an accuracy is *kept* when its Wilson interval lies above the accuracy
  :data:`KEEP_SHARE` of the way from the base to chance, *lost* when it lies below;
  *collapsed* when it lies at or below chance + :data:`CHANCE_TOL`, *not collapsed* above;
- two models: the exact McNemar test on the same test images (Holm-adjusted over the pairs of
  a claim);
- the ranking of two metrics: the paired bootstrap of the difference of their coefficients
  over the same resampled models (its percentile interval excludes 0);
- a sign: the coefficient's bootstrap interval excludes 0;
- a threshold (Table 3's PLCC ≥ 0.96): every configuration's bootstrap interval lies above it
  (holds) or one lies below (does not hold).

The run's distance from the paper's scale is shown beside each verdict as context; it never
changes a verdict. Each correlation claim also states whether its result changes when the
coefficients are replaced by their confound-controlled counterparts (partial PLCC/SRCC
controlling for family, granulated Kendall).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compreps.analysis.paper import paper_values
from compreps.analysis.paper.claims import CLAIMS
from compreps.analysis.report.claim_tests import (
    ABSENT,
    FAILS,
    HOLDS,
    UNDECIDED,
    accuracy_states,
    combine,
    compare_models,
    exceeds,
    exceeds_claim,
    interval_text,
    join,
    threshold_check,
)
from compreps.analysis.report.evidence import Run, Scale, Significance
from compreps.analysis.statistics.inference import holm

KEEP_SHARE = 0.10
CHANCE_TOL = 0.05
DISTANCES = ("logits_l2", "kl_divergence", "wasserstein")
RULES = (
    "not in this run: a model or metric the claim needs is absent",
    "holds: the claim's test separates the alternatives in its favour (p < α, or the "
    "interval excludes the other side)",
    "does not hold: the test separates them against the claim",
    "undecided: the test cannot separate them",
    f"an accuracy is *kept* when its Wilson interval lies above the accuracy {KEEP_SHARE:.0%} "
    f"of the way from the base to chance (1/classes), *lost* when it lies below; *collapsed* "
    f"when it lies at or below chance + {CHANCE_TOL}; two models are compared by the exact "
    "McNemar test on the same test images (Holm-adjusted over a claim's pairs), two metrics by "
    "a paired bootstrap of the difference of their coefficients over the same resampled "
    "models; α = 1 − the configured confidence; the scale is context, never a verdict",
)

__all__ = ["ABSENT", "FAILS", "HOLDS", "RULES", "UNDECIDED", "Finding", "Run", "Scale"]


@dataclass(frozen=True)
class Finding:
    id: str
    claim: str
    run: str  # this run's deciding numbers
    verdict: str
    reason: str = ""  # the test: statistic and p-value or interval
    note: str = ""  # where the paper's own tables disagree with the claim
    context: str = ""  # the run's distance from the paper's scale
    confound: str = ""  # whether the result changes under confound control


def _acc_text(family: str, values: dict) -> str:
    return ", ".join(f"{family}-{level:g} {acc:.4f}" for level, acc in values.items())


def _kept_then_fallen(run: Run, family: str, kept: tuple, fallen: tuple, collapse: bool):
    rows = {level: run.row(family, level) for level in kept + fallen}
    if any(row is None for row in rows.values()) or run.row("base") is None:
        return ABSENT, "", f"needs {family} at {', '.join(f'{v:g}' for v in kept + fallen)}"
    threshold = run.keep_threshold(KEEP_SHARE)
    chance = run.chance + CHANCE_TOL
    states = accuracy_states(run, rows, kept, fallen, threshold, chance if collapse else None)
    text = f"base {run.scale.base_accuracy:.4f}; " + ", ".join(
        f"{family}-{level:g} {float(row['accuracy']):.4f} {interval_text(run.interval(row))}"
        for level, row in rows.items()
    )
    goal = f"≤ {chance:.2f} (collapsed)" if collapse else f"< {threshold:.4f} (lost)"
    reason = (
        f"95% Wilson intervals; kept (> {threshold:.4f}, {KEEP_SHARE:.0%} of the way to "
        f"chance) needed at {kept}, {goal} at {fallen}: "
        + ", ".join(f"{level:g} {state}" for level, (_, state) in states.items())
    )
    return combine([ok for ok, _ in states.values()]), text, reason


def check_prune(run):
    return _kept_then_fallen(run, "prune", (0.5,), (0.7, 0.9), collapse=False)


def check_quant(run):
    return _kept_then_fallen(run, "quant", (5,), (3,), collapse=True)


def check_coreset(run):
    rows = run.accuracy[run.accuracy["family"] == "coreset"].sort_values("level", ascending=False)
    if len(rows) < 3 or run.row("base") is None:
        return ABSENT, "", "needs at least 3 coreset models"
    ids = list(rows["model"])
    tests = [run.mcnemar(smaller, larger) for larger, smaller in zip(ids, ids[1:], strict=False)]
    if any(t is None for t in tests):
        return ABSENT, "", "needs the coreset models' per-image predictions (the dumps)"
    adjusted = holm([t.p for t in tests])
    alpha = run.testing.alpha
    rises = [
        f"{ids[i + 1]} > {ids[i]} (Holm p = {p:.2g})"
        for i, (t, p) in enumerate(zip(tests, adjusted, strict=True))
        if t.a_only > t.b_only and p < alpha
    ]
    smallest = rows.iloc[-1]
    low, high = run.interval(smallest)
    threshold = run.keep_threshold(KEEP_SHARE)
    lost = True if high < threshold else False if low >= threshold else None
    values = dict(zip(rows["level"].astype(float), rows["accuracy"].astype(float), strict=True))
    reason = (
        "McNemar (exact, Holm) between consecutive fractions: "
        + (f"significant rise(s) {', '.join(rises)}" if rises else "no significant rise")
        + f"; smallest fraction {interval_text((low, high))} vs kept threshold {threshold:.4f}"
    )
    return combine([False if rises else True, lost]), _acc_text("coreset", values), reason


def _table2_keys() -> set[str]:
    frame = paper_values()
    return {str(k) for k in frame.loc[(frame["table"] == 2) & (frame["key"] != ""), "key"]}


def _order(run: Run, coef: str, weakest: bool, controlled: bool = False) -> list:
    """Table 2 metrics of this run, best first (by |coef| lowest first when ``weakest``)."""
    found = {}
    for metric in sorted(set(run.corr.index) & _table2_keys()):
        value = run.controlled(metric, coef) if controlled else run.coef(metric, coef)
        value = value[0] if isinstance(value, tuple) else value
        if value is not None and np.isfinite(value):
            found[metric] = value
    key = (lambda m: abs(found[m])) if weakest else (lambda m: -found[m])
    return [(m, found[m]) for m in sorted(found, key=key)]


def _ranking(run: Run, best: tuple, coef: str, weakest: bool = False):
    """Is one of ``best`` first (by |coef| lowest when ``weakest``) among the Table 2 metrics:
    the claimed metric against its strongest rival by the paired bootstrap difference."""
    order = _order(run, coef, weakest)
    names = [m for m, _ in order]
    claimed = next((m for m in names if m in best), None)
    rival = next((m for m in names if m not in best), None)
    if claimed is None or rival is None:
        return ABSENT, "", f"needs {coef.upper()} of {', '.join(best)} and a rival"
    text = f"{coef.upper()}: " + ", ".join(
        f"{m} {v:+.3f}" for m, v in order if m in {*names[:3], claimed}
    )
    diff = run.difference(claimed, rival, coef, absolute=weakest)
    if diff is None:
        return ABSENT, text, "needs the metrics table to resample the models"
    # the weakest must have the smaller |coefficient|: its difference lies below 0
    verdict = exceeds(-diff.high, -diff.low) if weakest else exceeds(diff.low, diff.high)
    bars = "|" if weakest else ""
    reason = diff.text(claimed, rival, f"{bars}{coef.upper()}{bars}")
    controlled = [m for m, _ in _order(run, coef, weakest, controlled=True)]
    confound = _confound_first(names, controlled, best, coef)
    influence = run.influence((claimed, rival), coef)
    return verdict, text, reason, join(confound, influence and f"influence: {influence}")


def _confound_first(pooled: list, controlled: list, best: tuple, coef: str) -> str:
    """Whether the claimed metric's place (first or not) changes when the pooled coefficients
    are replaced by their confound-controlled counterparts."""
    if not controlled:
        return ""
    name = {"plcc": "partial PLCC", "srcc": "partial SRCC", "krcc": "granulated Kendall"}[coef]
    before, after = pooled[0] in best, controlled[0] in best
    word = "unchanged" if before == after else "changes"
    return f"{word} under {name}: {controlled[0]} first (pooled: {pooled[0]})"


def check_signs(run):
    metrics = sorted(set(run.corr.index) & _table2_keys())
    wrong, unsure, flips = [], [], []
    for metric in metrics:
        value = run.coef(metric)
        if value is None:
            continue
        sign = -1 if metric in DISTANCES else 1
        if value[1] <= 0 <= value[2]:
            unsure.append(f"{metric} {value[0]:+.3f}")
        elif sign * value[0] < 0:
            wrong.append(f"{metric} {value[0]:+.3f} {interval_text(value[1:])}")
        if run.controlled(metric, "plcc") * value[0] < 0:
            flips.append(metric)
    if not metrics:
        return ABSENT, "", "no Table 2 metric in this run"
    text = f"{len(metrics)} Table 2 metrics; sign against the claim: {', '.join(wrong) or 'none'}"
    verdict = FAILS if wrong else UNDECIDED if unsure else HOLDS
    reason = (
        "similarities positive, distances (logits L2, KL, Wasserstein) negative, by PLCC "
        "bootstrap intervals that exclude 0"
        + (f"; interval contains 0: {', '.join(unsure)}" if unsure else "")
    )
    confound = (
        f"changes under partial PLCC: sign flips for {', '.join(flips)}"
        if flips
        else "unchanged under partial PLCC (no sign flips)"
    )
    influence = run.influence([w.split()[0] for w in wrong], "plcc")
    return verdict, text, reason, join(confound, influence and f"influence: {influence}")


def check_sensitivity(run):
    return threshold_check(run, PLCC_FLOOR)


def check_reps_all(run):
    """REPS first on PLCC, SRCC and KRCC: holds when all three hold, does not hold when one
    does not."""
    results = [_ranking(run, ("reps_equal", "reps_weighted"), c) for c in ("plcc", "srcc", "krcc")]
    if any(r[0] == ABSENT for r in results):
        return next(r for r in results if r[0] == ABSENT)
    verdict = combine([{HOLDS: True, FAILS: False}.get(r[0]) for r in results])
    return (
        verdict,
        "; ".join(r[1] for r in results),
        "; ".join(f"{c.upper()}: {r[0]} ({r[2]})" for c, r in zip(COEFS, results, strict=True)),
        join(*(r[3] for r in results)),
    )


def check_gtfa(run):
    return exceeds_claim(run, "reps_equal", "gtfa", "plcc", paper_order=True)


def check_fold(run):
    return compare_models(run, "fold", "struct_l1", "level", "channels removed")


def check_nexp(run):
    # NEXP and L1 remove different channels, so their parameter fractions differ at one level:
    # each NEXP model meets the L1 model whose parameter fraction is nearest.
    return compare_models(run, "nexp", "struct_l1", "param_fraction", "parameters kept")


COEFS = ("plcc", "srcc", "krcc")
PLCC_FLOOR = 0.96
CHECKS = {
    "prune_stable_to_0.5": check_prune,
    "quant_holds_to_5_bits": check_quant,
    "coreset_smooth_decline": check_coreset,
    "reps_equal_best_plcc": lambda run: _ranking(run, ("reps_equal",), "plcc"),
    "reps_best_on_all_coefficients": check_reps_all,
    "weight_similarity_weakest": lambda run: _ranking(
        run, ("weight_similarity",), "plcc", weakest=True
    ),
    "table2_signs": check_signs,
    "gtfa_plcc": check_gtfa,
    "sensitivity_plcc_at_least_0.96": check_sensitivity,
}
EXTENSION_CLAIMS = {
    "fold_vs_struct_l1": (
        "Folding keeps more accuracy than structured L1 pruning at equal kept "
        "channels, level by level (003).",
        check_fold,
    ),
    "nexp_vs_l1": (
        "NEXP keeps more accuracy than structured L1 at equal parameters (002).",
        check_nexp,
    ),
    "kl_vs_hidden": (
        "The probability-space KL (τ = 1) tracks the accuracy drop better (|SRCC|) "
        "than the hidden-space deviation (004).",
        lambda run: exceeds_claim(run.over("all"), "kl_t1", "hidden_deviation", "srcc", True),
    ),
}


def _finding(claim_id, text, result, note="", context="") -> Finding:
    verdict, numbers, reason, *rest = result
    return Finding(claim_id, text, numbers, verdict, reason, note, context, *rest[:1])


def findings(
    accuracy, correlations, sensitivity, scale: Scale, metrics=None, correct=None,
    testing: Significance | None = None,
) -> list[Finding]:  # fmt: skip
    """Every tested claim of :data:`CHECKS` and :data:`EXTENSION_CLAIMS`, in that order.
    ``metrics``: the metrics table (paired bootstraps); ``correct``: model id -> per-image
    correctness (McNemar tests)."""
    run = Run(
        accuracy, correlations, sensitivity, scale, metrics, correct, testing or Significance()
    )
    context = scale.context()
    out = []
    for claim in CLAIMS:
        if claim.id in CHECKS:
            note = "" if claim.consistent else claim.note
            out.append(_finding(claim.id, claim.text, CHECKS[claim.id](run), note, context))
    for claim_id, (text, check) in EXTENSION_CLAIMS.items():
        out.append(_finding(claim_id, text, check(run)))
    return out
