"""The tests behind the report's verdicts: accuracy intervals, two models on the same test
images, and the difference of two metrics' coefficients over the same models.

- :func:`wilson_interval`: the Wilson score interval of a binomial proportion (Wilson 1927;
  Brown, Cai & DasGupta 2001), the interval of every test accuracy.
- :func:`mcnemar_exact`: the exact (binomial) McNemar test of two classifiers on the same test
  images (McNemar 1947; Dietterich 1998): only the discordant images count, and under the null
  each is equally likely to favour either model, so ``p = min(1, 2·P[Bin(b + c, ½) ≤
  min(b, c)])``.
- :func:`holm`: Holm's step-down adjustment of several p-values (Holm 1979).
- :func:`paired_difference`: a paired bootstrap of the difference of two metrics' correlation
  coefficients with the same target, both computed on the *same* resampled models in every
  resample (so their dependence through the shared models is kept; Steiger's test is not used).
  The interval is the percentile interval of the resampled differences and the p-value the
  two-sided bootstrap p-value ``2·min(P[d* ≤ 0], P[d* ≥ 0])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from compreps.analysis.statistics.rank_stats import ROWWISE


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``correct / n``:
    ``(p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n)``; ``(nan, nan)`` for ``n = 0``."""
    if n <= 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


@dataclass(frozen=True)
class McNemar:
    """The exact McNemar test of model A against model B on the same images: ``a_only``
    images A classifies right and B wrong, ``b_only`` the reverse, ``n`` images in all."""

    a_only: int
    b_only: int
    n: int
    p: float

    @property
    def difference(self) -> float:
        """Accuracy of A minus accuracy of B (only the discordant images differ)."""
        return (self.a_only - self.b_only) / self.n if self.n else math.nan


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> McNemar:
    """Exact two-sided McNemar test of two per-image correctness vectors (same images, same
    order). No discordant image: ``p = 1``."""
    a_correct, b_correct = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a_correct.shape != b_correct.shape:
        raise ValueError(
            f"correctness vectors differ in shape: {a_correct.shape}, {b_correct.shape}"
        )
    a_only = int(np.sum(a_correct & ~b_correct))
    b_only = int(np.sum(~a_correct & b_correct))
    discordant = a_only + b_only
    if discordant == 0:
        p = 1.0
    else:
        p = min(1.0, 2.0 * float(stats.binom.cdf(min(a_only, b_only), discordant, 0.5)))
    return McNemar(a_only, b_only, int(a_correct.size), p)


def holm(pvalues) -> list[float]:
    """Holm-adjusted p-values, in the order given: the i-th smallest (from 0) is multiplied by
    ``m − i`` and kept monotone, capped at 1."""
    p = np.asarray(list(pvalues), dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Difference:
    """A paired bootstrap of ``coef(a) − coef(b)`` (``absolute``: of ``|coef(a)| −
    |coef(b)|``) over ``n`` models and ``resamples`` usable resamples."""

    estimate: float
    low: float
    high: float
    p: float
    n: int
    resamples: int

    def text(self, a: str, b: str, what: str) -> str:
        # no resample on the far side of 0: the bootstrap bounds p by its resolution only
        p = f"p < {1 / self.resamples:.2g}" if self.p == 0 else f"p = {self.p:.2g}"
        return (
            f"{what}({a}) − {what}({b}) = {self.estimate:+.3f} [{self.low:+.3f}, "
            f"{self.high:+.3f}], {p} (paired bootstrap over the same resampled "
            f"models, {self.n} models, {self.resamples} resamples)"
        )


def _coefficient(coef: str, x: np.ndarray, y: np.ndarray, absolute: bool) -> np.ndarray:
    values = ROWWISE[coef](x, y)
    return np.abs(values) if absolute else values


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    target: np.ndarray,
    coef: str = "plcc",
    *,
    absolute: bool = False,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Difference:
    """Paired bootstrap of the difference of two metrics' coefficients with ``target`` (module
    docstring). Resamples in which either coefficient is undefined (a constant column) are left
    out; no usable resample gives NaN interval and p."""
    a, b, target = (np.asarray(v, dtype=float) for v in (a, b, target))
    estimate = float(
        _coefficient(coef, a[None], target[None], absolute)[0]
        - _coefficient(coef, b[None], target[None], absolute)[0]
    )
    rng = np.random.default_rng(seed)
    index = rng.integers(0, a.size, size=(resamples, a.size))
    diffs = _coefficient(coef, a[index], target[index], absolute) - _coefficient(
        coef, b[index], target[index], absolute
    )
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0 or not math.isfinite(estimate):
        return Difference(estimate, math.nan, math.nan, math.nan, a.size, 0)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = (float(v) for v in np.percentile(diffs, [tail, 100.0 - tail]))
    p = min(1.0, 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return Difference(estimate, low, high, p, a.size, int(diffs.size))
