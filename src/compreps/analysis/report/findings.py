"""The report's findings: each qualitative claim of the paper
(:data:`compreps.analysis.paper.claims.CLAIMS`)
and of the extension studies (folding, NEXP, representation hierarchy), checked on this run.

Every finding gets one verdict, decided by these rules, in this order (the report prints them):

1. **not in this run**: a model or metric the claim needs is absent.
2. **cannot be judged** (too few models): a correlation claim over fewer than
   :data:`MIN_MODELS` compressed models.
3. **cannot be judged** (intervals overlap): a ranking claim ("X has the highest PLCC") whose
   decisive metrics' bootstrap intervals overlap, or a sign whose interval contains 0.
4. **cannot be judged at this scale**: the claim fails on this run, but the run is far from the
   paper's scale (fewer training images, a narrower network, fewer epochs, or a base accuracy
   more than :data:`BASE_ACCURACY_TOL` below the paper's): the failure may be the scale's.
5. otherwise **holds** / **does not hold**.

Accuracy claims measure a drop as the share of the way from the base to chance:
``(base − acc) / (base − 1/classes)``; a model *keeps* its accuracy when that share is at most
:data:`KEEP_SHARE`, *collapses* when its accuracy is within :data:`CHANCE_TOL` of chance.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from compreps.analysis.paper import paper_value, paper_values
from compreps.analysis.paper.claims import CLAIMS, PROTOCOL
from compreps.core.vocabulary import comparable_scope

HOLDS, FAILS, UNJUDGED, ABSENT = (
    "holds",
    "does not hold",
    "cannot be judged",
    "not in this run",
)
SCALE = "cannot be judged at this scale"
MIN_MODELS = 10
BASE_ACCURACY_TOL = 0.05
KEEP_SHARE = 0.10
CHANCE_TOL = 0.05
MONOTONE_TOL = 0.01  # accuracy may rise this much as the coreset shrinks and still be "smooth"
DISTANCES = ("logits_l2", "kl_divergence", "wasserstein")
RULES = (
    "not in this run: a model or metric the claim needs is absent",
    f"cannot be judged: a correlation claim over fewer than {MIN_MODELS} compressed models",
    "cannot be judged: the decisive bootstrap intervals overlap (a ranking), or contain 0 (a sign)",
    "cannot be judged at this scale: the claim fails, but the run is far from the paper's scale "
    f"(fewer training images, narrower, fewer epochs, or base accuracy > {BASE_ACCURACY_TOL} "
    "below the paper's), so the failure may be the scale's",
    "holds / does not hold: otherwise",
    f"an accuracy is *kept* when its drop is at most {KEEP_SHARE:.0%} of the way from the base "
    f"to chance (1/classes), *collapsed* within {CHANCE_TOL} of chance",
)


@dataclass(frozen=True)
class Scale:
    """This run's scale beside the paper's protocol (None: unknown)."""

    n_train: int | None
    width: int | None
    epochs: int | None
    base_accuracy: float
    n_classes: int = 10

    def gaps(self) -> list[str]:
        """Each way this run is far from the paper's scale, as a phrase with both numbers."""
        paper_base = paper_value(1, "base", "accuracy")[0][0]
        checks = (
            ("training images", self.n_train, PROTOCOL["train_size"].value),
            ("width", self.width, PROTOCOL["width"].value),
            ("epochs", self.epochs, PROTOCOL["epochs"].value),
        )
        gaps = [
            f"{name} {ours:,} (paper {theirs:,})"
            for name, ours, theirs in checks
            if ours is not None and ours < theirs
        ]
        if not self.base_accuracy >= paper_base - BASE_ACCURACY_TOL:
            gaps.append(f"base accuracy {self.base_accuracy:.4f} (paper {paper_base:.4f})")
        return gaps


@dataclass(frozen=True)
class Finding:
    id: str
    claim: str
    run: str  # this run's deciding numbers
    verdict: str
    reason: str = ""
    note: str = ""  # where the paper's own tables disagree with the claim


class Run:
    """This run's tables, with the lookups the checks need."""

    def __init__(self, accuracy: pd.DataFrame, correlations: pd.DataFrame, sensitivity, scale):
        self.accuracy = accuracy
        self.correlations = correlations
        # the paper's claims are checked on the models its Table 2 pools (scope "paper")
        self.corr = self._scope(comparable_scope(correlations["scope"]))
        self.sensitivity = sensitivity
        self.scale = scale
        self.chance = 1.0 / scale.n_classes

    def acc(self, family: str, level: float) -> float | None:
        rows = self.accuracy[self.accuracy["family"] == family]
        if family != "base":
            rows = rows[[math.isclose(float(v), float(level)) for v in rows["level"]]]
        return float(rows["accuracy"].iloc[0]) if len(rows) else None

    def share(self, accuracy: float) -> float:
        """The drop as a share of the way from the base to chance."""
        return (self.scale.base_accuracy - accuracy) / (self.scale.base_accuracy - self.chance)

    def _scope(self, scope: str) -> pd.DataFrame:
        return self.correlations[self.correlations["scope"] == scope].set_index("metric")

    def over(self, scope: str) -> Run:
        """The same run with the correlations of another scope (e.g. ``all`` for the claims of
        the extension studies, which concern every family)."""
        other = copy.copy(self)
        other.corr = self._scope(scope)
        return other

    def coef(self, metric: str, coef: str = "plcc") -> tuple[float, float, float] | None:
        if metric not in self.corr.index or not math.isfinite(self.corr.loc[metric, coef]):
            return None
        row = self.corr.loc[metric]
        return float(row[coef]), float(row[f"{coef}_low"]), float(row[f"{coef}_high"])

    def n_models(self) -> int:
        return int(self.corr["n"].max()) if len(self.corr) else 0

    def verdict(self, ok: bool, run: str, reason: str) -> tuple[str, str, str]:
        if ok:
            return HOLDS, run, reason
        gaps = self.scale.gaps()
        if gaps:
            return SCALE, run, f"{reason}; far from the paper's scale: {', '.join(gaps)}"
        return FAILS, run, reason


def _levels(run: Run, family: str, levels) -> dict | None:
    values = {level: run.acc(family, level) for level in levels}
    return None if any(v is None for v in values.values()) else values


def _acc_text(family: str, values: dict) -> str:
    return ", ".join(f"{family}-{level:g} {acc:.4f}" for level, acc in values.items())


def _kept_then_fallen(run: Run, family: str, kept: tuple, fallen: tuple, collapse: bool):
    values = _levels(run, family, kept + fallen)
    if values is None:
        return ABSENT, "", f"needs {family} at {', '.join(f'{v:g}' for v in kept + fallen)}"
    keeps = all(run.share(values[level]) <= KEEP_SHARE for level in kept)
    if collapse:
        falls = all(values[level] <= run.chance + CHANCE_TOL for level in fallen)
        what = f"≤ {run.chance + CHANCE_TOL:.2f} (chance {run.chance:.2f})"
    else:
        falls = all(run.share(values[level]) > KEEP_SHARE for level in fallen)
        what = f"drop share > {KEEP_SHARE:.0%}"
    text = f"base {run.scale.base_accuracy:.4f}; {_acc_text(family, values)}"
    shares = ", ".join(f"{level:g}: {run.share(v):.0%}" for level, v in values.items())
    reason = f"drop shares {shares}; kept ≤ {KEEP_SHARE:.0%} needed at {kept}, {what} at {fallen}"
    return run.verdict(keeps and falls, text, reason)


def check_prune(run):
    return _kept_then_fallen(run, "prune", (0.5,), (0.7, 0.9), collapse=False)


def check_quant(run):
    return _kept_then_fallen(run, "quant", (5,), (3,), collapse=True)


def check_coreset(run):
    rows = run.accuracy[run.accuracy["family"] == "coreset"].sort_values("level", ascending=False)
    if len(rows) < 3:
        return ABSENT, "", "needs at least 3 coreset models"
    values = dict(zip(rows["level"].astype(float), rows["accuracy"].astype(float), strict=True))
    rises = [b - a for a, b in zip(list(values.values()), list(values.values())[1:], strict=False)]
    worst = max(rises)
    ok = worst <= MONOTONE_TOL and run.share(list(values.values())[-1]) > KEEP_SHARE
    reason = (
        f"largest rise as the fraction shrinks {worst:+.4f} (smooth: ≤ {MONOTONE_TOL}); "
        f"smallest fraction's drop share {run.share(list(values.values())[-1]):.0%}"
    )
    return run.verdict(ok, _acc_text("coreset", values), reason)


def _ranking(run: Run, best: tuple, coef: str, weakest: bool = False):
    """Is one of ``best`` first (by |coef| lowest when ``weakest``) among all metrics?"""
    if run.n_models() < MIN_MODELS:
        return UNJUDGED, "", f"{run.n_models()} models < {MIN_MODELS}"
    # the paper ranks the metrics of its Table 2 (not the extension metrics)
    table2 = {str(key) for key in _table2_keys()}
    found = {m: run.coef(m, coef) for m in run.corr.index if m in table2}
    found = {m: v for m, v in found.items() if v is not None}
    if not set(best) & set(found):
        return ABSENT, "", f"no {coef.upper()} of {', '.join(best)} in this run"
    key = (lambda m: -abs(found[m][0])) if weakest else (lambda m: found[m][0])
    order = sorted(found, key=key, reverse=True)
    top = order[0]
    runner = next((m for m in order[1:] if (m in best) != (top in best)), None)
    if runner is None:
        return ABSENT, "", f"no metric to rank {', '.join(best)} against"
    text = f"{coef.upper()}: " + ", ".join(
        f"{m} {found[m][0]:+.3f}"
        for m in dict.fromkeys([*order[:3], *[b for b in best if b in found]])
    )
    (_, a_low, a_high), (_, b_low, b_high) = found[top], found[runner]
    if weakest:  # compare |r|: an interval over 0 reaches 0
        a_low, a_high = _abs_interval(a_low, a_high)
        b_low, b_high = _abs_interval(b_low, b_high)
    overlap = a_low <= b_high and b_low <= a_high
    reason = f"first: {top}; nearest {'rival' if top in best else 'of ' + '/'.join(best)}: {runner}"
    if overlap:
        return UNJUDGED, text, f"{reason}; their bootstrap intervals overlap"
    return run.verdict(top in best, text, reason)


def _interval(bounds) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def _abs_interval(low: float, high: float) -> tuple[float, float]:
    if low <= 0 <= high:
        return 0.0, max(-low, high)
    return min(abs(low), abs(high)), max(abs(low), abs(high))


def check_signs(run):
    if run.n_models() < MIN_MODELS:
        return UNJUDGED, "", f"{run.n_models()} models < {MIN_MODELS}"
    metrics = sorted(set(run.corr.index) & {str(k) for k in _table2_keys()})
    wrong, unsure = [], []
    for metric in metrics:
        value = run.coef(metric)
        if value is None:
            continue
        sign = -1 if metric in DISTANCES else 1
        if value[1] <= 0 <= value[2]:
            unsure.append(f"{metric} {value[0]:+.3f}")
        elif sign * value[0] < 0:
            wrong.append(f"{metric} {value[0]:+.3f}")
    text = f"{len(metrics)} Table 2 metrics; wrong sign: {', '.join(wrong) or 'none'}"
    if not wrong and unsure:
        return UNJUDGED, text, f"interval contains 0: {', '.join(unsure)}"
    reason = "similarities positive, distances (logits L2, KL, Wasserstein) negative, by PLCC"
    return run.verdict(not wrong, text, reason)


def _table2_keys():
    frame = paper_values()
    return frame.loc[(frame["table"] == 2) & (frame["key"] != ""), "key"].unique()


def check_sensitivity(run):
    named = run.sensitivity[run.sensitivity["config"] != "grid"]
    if named.empty or named["plcc"].isna().all():
        return ABSENT, "", "no named REPS configuration in the sensitivity table"
    if int(named["n"].max()) < MIN_MODELS:
        return UNJUDGED, "", f"{int(named['n'].max())} models < {MIN_MODELS}"
    low = named.loc[named["plcc"].idxmin()]
    text = f"lowest PLCC {low['plcc']:.3f} ({low['config']}) over {len(named)} configurations"
    return run.verdict(bool(named["plcc"].min() >= 0.96), text, "all PLCC ≥ 0.96 needed")


def _paired(run: Run, family: str, rival: str, column: str, interpolate: bool = False):
    """Accuracies of ``family`` beside ``rival``'s at the same ``column`` value; with
    ``interpolate``, ``rival``'s accuracy linearly interpolated between its two models that
    bracket the value (a value outside ``rival``'s range is left out: no extrapolation)."""
    acc = run.accuracy
    if column not in acc.columns or not {family, rival} <= set(acc["family"]):
        return None
    ours, theirs = acc[acc["family"] == family], acc[acc["family"] == rival]
    theirs = theirs.sort_values(column)
    xs, ys = theirs[column].to_numpy(float), theirs["accuracy"].to_numpy(float)
    pairs = []
    for row in ours.itertuples(index=False):
        x = float(getattr(row, column))
        close = theirs[(theirs[column] - x).abs() <= 0.02]
        if len(close):
            pairs.append((x, row.accuracy, float(close["accuracy"].iloc[0])))
        elif interpolate and len(xs) >= 2 and xs[0] <= x <= xs[-1]:
            pairs.append((x, row.accuracy, float(np.interp(x, xs, ys))))
    return pairs


def _better(run: Run, family: str, rival: str, column: str, what: str, interpolate=False):
    pairs = _paired(run, family, rival, column, interpolate)
    if pairs is None:
        return ABSENT, "", f"needs families {family} and {rival} with column {column}"
    if not pairs:
        return ABSENT, "", f"no {family} and {rival} models at equal {what}"
    text = "; ".join(f"{what} {x:g}: {family} {a:.4f} vs {rival} {b:.4f}" for x, a, b in pairs)
    wins = sum(a >= b for _, a, b in pairs)
    return run.verdict(wins == len(pairs), text, f"{family} ≥ {rival} at {wins}/{len(pairs)}")


def check_fold(run):
    return _better(run, "fold", "struct_l1", "level", "channels removed")


def check_nexp(run):
    # NEXP and L1 remove different channels, so their parameter fractions differ at one level:
    # L1's accuracy is interpolated at NEXP's fraction (between L1's two bracketing models).
    return _better(run, "nexp", "struct_l1", "param_fraction", "parameters kept", True)


def _exceeds(run: Run, first: str, second: str, coef: str, absolute: bool = False):
    """Is ``first``'s coefficient (|coefficient| when ``absolute``) above ``second``'s?"""
    a, b = run.coef(first, coef), run.coef(second, coef)
    if a is None or b is None:
        return ABSENT, "", f"needs {first} and {second} in the correlation table"
    if run.n_models() < MIN_MODELS:
        return UNJUDGED, "", f"{run.n_models()} models < {MIN_MODELS}"
    bars = "|" if absolute else ""
    name = f"{bars}{coef.upper()}{bars}"
    ia, ib = (_abs_interval(*a[1:]), _abs_interval(*b[1:])) if absolute else (a[1:], b[1:])
    va, vb = (abs(a[0]), abs(b[0])) if absolute else (a[0], b[0])
    text = f"{name}: {first} {va:.3f} {_interval(ia)}, {second} {vb:.3f} {_interval(ib)}"
    if ia[0] <= ib[1] and ib[0] <= ia[1]:
        return UNJUDGED, text, "their bootstrap intervals overlap"
    return run.verdict(va > vb, text, f"{first}'s {name} must exceed {second}'s")


def check_reps_all(run):
    """REPS first on PLCC, SRCC and KRCC: the worst of the three verdicts."""
    results = [_ranking(run, ("reps_equal", "reps_weighted"), c) for c in ("plcc", "srcc", "krcc")]
    for verdict in (ABSENT, FAILS, SCALE, UNJUDGED, HOLDS):
        picked = [r for r in results if r[0] == verdict]
        if picked:
            return verdict, "; ".join(r[1] for r in results if r[1]), picked[0][2]
    raise AssertionError("unreachable")


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
    "gtfa_plcc": lambda run: _exceeds(run, "reps_equal", "gtfa", "plcc"),
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
        lambda run: _exceeds(run.over("all"), "kl_t1", "hidden_deviation", "srcc", True),
    ),
}


def findings(accuracy, correlations, sensitivity, scale: Scale) -> list[Finding]:
    """Every checked claim of :data:`CHECKS` and :data:`EXTENSION_CLAIMS`, in that order."""
    run = Run(accuracy, correlations, sensitivity, scale)
    out = []
    for claim in CLAIMS:
        if claim.id in CHECKS:
            verdict, text, reason = CHECKS[claim.id](run)
            note = "" if claim.consistent else claim.note
            out.append(Finding(claim.id, claim.text, text, verdict, reason, note))
    for claim_id, (text, check) in EXTENSION_CLAIMS.items():
        verdict, numbers, reason = check(run)
        out.append(Finding(claim_id, text, numbers, verdict, reason))
    return out
