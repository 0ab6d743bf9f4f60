"""Wilson interval, exact McNemar, Holm and the paired bootstrap difference against
hand-computed values."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from compreps.analysis.metrics.compare import debiased_cka, unbiased_hsic
from compreps.analysis.metrics.spectra import centre_columns, centred_spectrum
from compreps.analysis.statistics.inference import (
    holm,
    mcnemar_exact,
    paired_difference,
    wilson_interval,
)


def test_wilson_interval_of_8_of_10_by_hand():
    # z = 1.959964: centre 0.8 + z²/20, half-width z·√(0.016 + z²/400), divided by 1 + z²/10
    z2 = 1.959964**2
    centre, half = 0.8 + z2 / 20, 1.959964 * math.sqrt(0.016 + z2 / 400)
    low, high = wilson_interval(8, 10, 0.95)
    assert low == pytest.approx((centre - half) / (1 + z2 / 10), abs=1e-6)
    assert high == pytest.approx((centre + half) / (1 + z2 / 10), abs=1e-6)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


def test_wilson_interval_edges():
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0 < high < 0.2  # never a zero-width interval at 0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mcnemar_exact_by_hand():
    # 1 image only A right, 9 only B right, 5 both right, 5 both wrong
    a = np.array([1] + [0] * 9 + [1] * 5 + [0] * 5, bool)
    b = np.array([0] + [1] * 9 + [1] * 5 + [0] * 5, bool)
    test = mcnemar_exact(a, b)
    assert (test.a_only, test.b_only, test.n) == (1, 9, 20)
    assert test.p == pytest.approx(2 * (1 + 10) / 1024)  # 2·P[Bin(10, ½) ≤ 1]
    assert test.difference == pytest.approx(-8 / 20)


def test_mcnemar_exact_balanced_and_identical():
    a = np.array([1, 1, 1, 0, 0, 0, 1, 0], bool)
    assert mcnemar_exact(a, ~a).p == 1.0  # 4 vs 4: capped at 1
    assert mcnemar_exact(a, a).p == 1.0  # no discordant image


def test_holm_by_hand():
    # sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> kept monotone: 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_paired_difference_separates_a_clear_winner():
    rng = np.random.default_rng(1)
    target = np.linspace(0, 1, 30)
    good = target + rng.normal(0, 0.02, 30)
    poor = target + rng.normal(0, 0.6, 30)
    diff = paired_difference(good, poor, target, "plcc", resamples=500, seed=0)
    pooled = stats.pearsonr(good, target).statistic - stats.pearsonr(poor, target).statistic
    assert diff.estimate == pytest.approx(pooled)
    assert 0 < diff.low <= diff.estimate <= diff.high and diff.p < 0.05
    same = paired_difference(good, good, target, "srcc", resamples=200, seed=0)
    assert same.estimate == 0 and same.low == 0 and same.high == 0 and same.p == 1.0


def test_paired_difference_of_absolute_values():
    target = np.arange(10.0)
    diff = paired_difference(-target, target, target, "plcc", absolute=True, resamples=100)
    assert diff.estimate == pytest.approx(0.0) and diff.p == 1.0


def _hsic_by_quadruples(k, l):  # noqa: E741
    """Song et al.'s U-statistic: the mean over ordered distinct (i, j, q, r) of
    k_ij l_ij + k_ij l_qr − 2 k_ij l_iq (diagonals do not enter)."""
    n = k.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q]
        count += 1
    return total / count


def test_unbiased_hsic_equals_the_u_statistic():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
    k, l = x @ x.T, y @ y.T  # noqa: E741
    assert unbiased_hsic(k, l) == pytest.approx(_hsic_by_quadruples(k, l), rel=1e-10)


def test_debiased_cka_removes_the_small_sample_inflation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 500)), rng.normal(size=(20, 500))  # independent, d >> n
    sx, sy = (centred_spectrum(centre_columns(v)) for v in (x, y))
    assert debiased_cka(sx, sx).value == pytest.approx(1.0)
    assert abs(debiased_cka(sx, sy).value) < 0.1
    from compreps.analysis.metrics.compare import linear_cka

    assert linear_cka(sx, sy).value > 0.5  # the biased estimator on the same features
