"""The tests the findings share (:mod:`compreps.analysis.report.findings` states the rules):
verdicts from tests, accuracy states from Wilson intervals, two families compared model by
model (exact McNemar, Holm), one metric against another (paired bootstrap) and Table 3's
threshold (bootstrap of each named configuration's PLCC)."""

from __future__ import annotations

import math

import numpy as np

from compreps.analysis.paper import paper_value
from compreps.analysis.report.evidence import Run
from compreps.analysis.statistics.inference import holm
from compreps.analysis.statistics.rank_stats import ROWWISE
from compreps.analysis.statistics.sensitivity import component_matrix
from compreps.core.vocabulary import SENSITIVITY_WEIGHT_COLUMNS

HOLDS, FAILS, UNDECIDED, ABSENT = "holds", "does not hold", "undecided", "not in this run"


def combine(parts) -> str:
    """One verdict from the parts of a claim (True: confirmed, False: contradicted, None:
    undecided): does not hold when one part is contradicted, holds when all are confirmed."""
    parts = list(parts)
    if any(part is False for part in parts):
        return FAILS
    return HOLDS if parts and all(part is True for part in parts) else UNDECIDED


def exceeds(low: float, high: float) -> str:
    """An interval of a difference that should be positive: above 0 holds, below 0 does not."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return UNDECIDED
    return HOLDS if low > 0 else FAILS if high < 0 else UNDECIDED


def join(*parts) -> str:
    """The non-empty parts, joined by "; "."""
    return "; ".join(part for part in parts if part)


def interval_text(bounds) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def accuracy_states(run: Run, rows: dict, kept, fallen, threshold: float, chance) -> dict:
    """``{level: (True/False/None, state)}``: kept levels must lie above ``threshold``; fallen
    ones below it, or at most ``chance`` when it is given (a collapse)."""
    states = {}
    for level, row in rows.items():
        low, high = run.interval(row)
        if level in kept:
            ok = True if low >= threshold else False if high < threshold else None
            states[level] = (ok, {True: "kept", False: "lost", None: "unclear"}[ok])
        elif chance is not None:
            ok = True if high <= chance else False if low > chance else None
            states[level] = (ok, {True: "collapsed", False: "not collapsed", None: "unclear"}[ok])
        else:
            ok = True if high < threshold else False if low >= threshold else None
            states[level] = (ok, {True: "lost", False: "kept", None: "unclear"}[ok])
    return states


def _pairs(run: Run, family: str, rival: str, column: str) -> list | None:
    """``[(our row, rival row)]``: each ``family`` model with the ``rival`` model nearest in
    ``column`` (the same level, or the nearest parameter fraction)."""
    acc = run.accuracy
    if column not in acc.columns or not {family, rival} <= set(acc["family"]):
        return None
    theirs = acc[acc["family"] == rival]
    pairs = []
    for _, row in acc[acc["family"] == family].iterrows():
        distance = (theirs[column].astype(float) - float(row[column])).abs()
        if column == "level" and distance.min() > 1e-9:
            continue
        pairs.append((row, theirs.loc[distance.idxmin()]))
    return pairs


def compare_models(run: Run, family: str, rival: str, column: str, what: str):
    """``family`` keeps more accuracy than ``rival`` pair by pair: exact McNemar tests,
    Holm-adjusted; holds when every pair favours ``family`` significantly, does not hold when
    one favours ``rival`` significantly."""
    pairs = _pairs(run, family, rival, column)
    if pairs is None:
        return ABSENT, "", f"needs families {family} and {rival} with column {column}"
    tests = [run.mcnemar(ours["model"], theirs["model"]) for ours, theirs in pairs]
    if not pairs or any(t is None for t in tests):
        return ABSENT, "", f"needs {family} and {rival} models with per-image predictions"
    adjusted = holm([t.p for t in tests])
    alpha, parts, lines = run.testing.alpha, [], []
    for (ours, theirs), test, p in zip(pairs, tests, adjusted, strict=True):
        better = test.a_only > test.b_only
        parts.append((better if p < alpha else None) if test.a_only != test.b_only else None)
        lines.append(
            f"{ours['model']} {float(ours['accuracy']):.4f} vs {theirs['model']} "
            f"{float(theirs['accuracy']):.4f} ({what} {float(ours[column]):.3g} vs "
            f"{float(theirs[column]):.3g}): exact McNemar p = {test.p:.2g}, Holm p = {p:.2g} "
            f"({test.a_only} images only {ours['model']} right, {test.b_only} only "
            f"{theirs['model']} right, of {test.n})"
        )
    summary = ", ".join(
        f"{ours['model']} vs {theirs['model']} Holm p = {p:.2g}"
        for (ours, theirs), p in zip(pairs, adjusted, strict=True)
    )
    reason = f"exact McNemar per pair (Holm-adjusted, α = {alpha:.2g}): {summary}"
    return combine(parts), "; ".join(lines) + _tuning(pairs), reason


def _tuning(pairs) -> str:
    """Whether the compared models were fine-tuned after the compression (the NEXP study
    judges NEXP against L1 on fine-tuned models only)."""
    epochs = {int(row.get("finetune_epochs", 0) or 0) for pair in pairs for row in pair}
    if epochs == {0}:
        return "; one-shot models (no fine-tuning)"
    counts = ", ".join(str(e) for e in sorted(epochs))
    return f"; fine-tuned models ({counts} epoch{'' if epochs == {1} else 's'})"


def exceeds_claim(run: Run, first: str, second: str, coef: str, absolute=False, paper_order=False):
    """``first``'s coefficient (|coefficient| when ``absolute``) above ``second``'s: the paired
    bootstrap interval of the difference above 0 holds, below 0 does not."""
    a, b = run.coef(first, coef), run.coef(second, coef)
    if a is None or b is None:
        return ABSENT, "", f"needs {first} and {second} in the correlation table"
    bars = "|" if absolute else ""
    name = f"{bars}{coef.upper()}{bars}"
    va, vb = (abs(a[0]), abs(b[0])) if absolute else (a[0], b[0])
    text = (
        f"{name}: {first} {va:.3f} {interval_text(a[1:])}, {second} {vb:.3f} {interval_text(b[1:])}"
    )
    if paper_order:
        theirs = [paper_value(2, m, coef)[0][0] for m in (first, second)]
        if (theirs[0] - theirs[1]) * (va - vb) < 0:
            text += f" (point estimates reverse the paper's {theirs[0]:.4f} > {theirs[1]:.4f})"
    diff = run.difference(first, second, coef, absolute=absolute)
    if diff is None:
        return ABSENT, text, "needs the metrics table to resample the models"
    ca, cb = run.controlled(first, coef), run.controlled(second, coef)
    if absolute:
        ca, cb = abs(ca), abs(cb)
    confound = ""
    if math.isfinite(ca) and math.isfinite(cb):
        same = np.sign(ca - cb) == np.sign(va - vb)
        confound = (
            f"{'unchanged' if same else 'changes'} under confound control: "
            f"{first} {ca:+.3f}, {second} {cb:+.3f}"
        )
    influence = run.influence((first, second), coef)
    confound = join(confound, influence and f"influence: {influence}")
    return exceeds(diff.low, diff.high), text, diff.text(first, second, name), confound


def threshold_check(run: Run, floor: float):
    """Every named REPS configuration's PLCC at least ``floor``: the lowest bootstrap lower end
    above it holds, an upper end below it does not (bootstrap over the same resampled models
    for every configuration)."""
    named = run.sensitivity[run.sensitivity["config"] != "grid"]
    if named.empty or named["plcc"].isna().all():
        return ABSENT, "", "no named REPS configuration in the sensitivity table"
    low_row = named.loc[named["plcc"].idxmin()]
    text = (
        f"lowest PLCC {low_row['plcc']:.3f} ({low_row['config']}) over {len(named)} configurations"
    )
    if run.metrics is None:
        return ABSENT, text, "needs the metrics table to resample the models"
    components, accuracy, _ = component_matrix(run.metrics, run.accuracy)
    if len(accuracy) < 3:
        return ABSENT, text, "fewer than 3 models with every REPS component"
    t = run.testing
    index = np.random.default_rng(t.seed).integers(0, len(accuracy), (t.bootstrap, len(accuracy)))
    weights = named[list(SENSITIVITY_WEIGHT_COLUMNS)].to_numpy(float)
    tail = (1.0 - t.confidence) / 2.0 * 100.0
    bounds = {}
    for config, w in zip(named["config"], weights, strict=True):
        values = ROWWISE["plcc"](components[index] @ w, accuracy[index])
        values = values[np.isfinite(values)]
        bounds[config] = tuple(np.percentile(values, [tail, 100 - tail])) if values.size else None
    if any(b is None for b in bounds.values()):
        return UNDECIDED, text, "a configuration has no defined bootstrap PLCC"
    lowest = min(bounds, key=lambda c: bounds[c][0])
    verdict = HOLDS if bounds[lowest][0] >= floor else FAILS if any(
        b[1] < floor for b in bounds.values()
    ) else UNDECIDED  # fmt: skip
    reason = (
        f"lowest lower end {bounds[lowest][0]:.3f} ({lowest}) against the floor {floor}; "
        f"{t.confidence:.0%} bootstrap intervals: "
        + ", ".join(f"{c} {interval_text(b)}" for c, b in bounds.items())
    )
    return verdict, text, reason


__all__ = ["ABSENT", "FAILS", "HOLDS", "UNDECIDED"]
