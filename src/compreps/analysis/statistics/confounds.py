"""Correlations that do not let the families or a single model decide: the columns beside each
pooled coefficient of Table 2.

Pooling coreset, pruning and quantisation models mixes differences *between* families with the
ordering *within* them (Simpson's paradox). Following the literature on whether a measure
predicts the generalisation gap (Jiang et al. 2020, "Fantastic generalization measures and
where to find them": granulated Kendall; Dziugaite et al. 2020: robustness over environments):

- :func:`granulated_kendall`: Kendall τ-b within each family (of at least
  :data:`~compreps.analysis.statistics.rank_stats.MIN_MODELS` models), averaged over the
  families (Jiang et al.'s granulated Kendall, with the family as the varied axis);
- :func:`partial_correlation`: Pearson (``plcc``) or Spearman (``srcc``, on pooled ranks)
  correlation of the residuals after removing each family's mean, i.e. the partial correlation
  controlling for family membership; p from the t distribution with ``n − 2 − (k − 1)``
  degrees of freedom (``k`` families);
- :func:`leave_one_out`: the coefficient recomputed without each family (leave-one-family-out)
  or without each model (leave-one-model-out, the influence of a single model).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from compreps.analysis.statistics.rank_stats import MIN_MODELS, ROWWISE

INFLUENCE_SHIFT = 0.1  # a model whose removal moves a coefficient by more is named


def granulated_kendall(x: np.ndarray, y: np.ndarray, families) -> tuple[float, int]:
    """``(mean within-family τ-b, number of families averaged)``; families with fewer than
    ``MIN_MODELS`` models or an undefined τ (a constant column) are left out; NaN when none
    is left."""
    x, y, families = np.asarray(x, float), np.asarray(y, float), np.asarray(families)
    taus = []
    for family in dict.fromkeys(families.tolist()):
        mask = families == family
        if mask.sum() >= MIN_MODELS:
            tau = ROWWISE["krcc"](x[mask][None], y[mask][None])[0]
            if math.isfinite(tau):
                taus.append(float(tau))
    return (float(np.mean(taus)) if taus else math.nan), len(taus)


def _within(values: np.ndarray, families: np.ndarray) -> np.ndarray:
    """``values`` minus the mean of their family (the residual of a family-dummy regression)."""
    out = values.astype(float).copy()
    for family in np.unique(families):
        mask = families == family
        out[mask] -= out[mask].mean()
    return out


def partial_correlation(x: np.ndarray, y: np.ndarray, families, coef: str = "srcc"):
    """``(r, p)``: the partial correlation of ``x`` and ``y`` controlling for family (module
    docstring); ``srcc`` ranks both over all models first. NaN when undefined (fewer than one
    residual degree of freedom, or no within-family variation)."""
    x, y, families = np.asarray(x, float), np.asarray(y, float), np.asarray(families)
    if coef == "srcc":
        x, y = stats.rankdata(x), stats.rankdata(y)
    rx, ry = _within(x, families), _within(y, families)
    dof = x.size - 2 - (len(np.unique(families)) - 1)
    r = float(ROWWISE["plcc"](rx[None], ry[None])[0])
    if dof < 1 or not math.isfinite(r):
        return math.nan, math.nan
    if abs(r) >= 1.0:
        return r, 0.0
    t = r * math.sqrt(dof / (1.0 - r * r))
    return r, float(2.0 * stats.t.sf(abs(t), dof))


def leave_one_out(x: np.ndarray, y: np.ndarray, groups, coef: str) -> dict:
    """``{group: coefficient without that group's models}`` (leave-one-family-out with
    families, leave-one-model-out with model ids); NaN where fewer than ``MIN_MODELS`` remain."""
    x, y, groups = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    names = list(dict.fromkeys(groups.tolist()))
    if len(names) == groups.size and groups.size > MIN_MODELS:
        # one model per group: every leave-one-out row at once
        keep = ~np.eye(groups.size, dtype=bool)
        index = np.nonzero(keep)[1].reshape(groups.size, groups.size - 1)
        values = ROWWISE[coef](x[index], y[index])
        return {name: float(v) for name, v in zip(groups.tolist(), values, strict=True)}
    out = {}
    for group in names:
        keep = groups != group
        if keep.sum() < MIN_MODELS:
            out[group] = math.nan
        else:
            out[group] = float(ROWWISE[coef](x[keep][None], y[keep][None])[0])
    return out


def influence_note(estimate: float, without: dict, coef: str) -> str:
    """The model whose removal moves ``estimate`` most, when it moves it by more than
    :data:`INFLUENCE_SHIFT` or flips its sign, with how many other models do so:
    ``"PLCC -0.435 -> -0.950 without quant-1"``; empty when no model does."""
    if not math.isfinite(estimate):
        return ""
    moved = []
    for model, value in without.items():
        if not math.isfinite(value):
            continue
        flips = value * estimate < 0
        if abs(value - estimate) > INFLUENCE_SHIFT or flips:
            moved.append((flips, abs(value - estimate), model, value))
    if not moved:
        return ""
    flips, _, model, value = max(moved, key=lambda item: item[:2])
    text = f"{coef.upper()} {estimate:+.3f} -> {value:+.3f} without {model}"
    text += " (sign flips)" if flips else ""
    if len(moved) > 1:
        text += f" (+{len(moved) - 1} other model(s) move it)"
    return text
