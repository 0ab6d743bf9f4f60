"""Hierarchy metrics (compreps.analysis.metrics.hierarchy, study 004): hand-worked 3-class
values, invariances,
the closed-form KL estimate, degenerate limits."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from compreps.analysis.metrics.hierarchy import (
    hierarchy_metric_names,
    hierarchy_metric_values,
    hierarchy_metrics,
    row_deviation,
    temperature_suffix,
)
from compreps.core.files import CompRepsError

LN2 = math.log(2.0)
# Base logits (ln 2, 0, 0): softmax ∝ (2, 1, 1) -> p0 = (1/2, 1/4, 1/4).
# Compressed logits (0, ln 2, 0): p = (1/4, 1/2, 1/4). Δz = ln2 · (−1, 1, 0).
Z0 = np.array([[LN2, 0.0, 0.0]])
Z1 = np.array([[0.0, LN2, 0.0]])
# Hidden: h0 = (3, 4), ‖h0‖ = 5; h = (10, 5), Δh = (7, 1).
H0 = np.array([[3.0, 4.0]])
H1 = np.array([[10.0, 5.0]])


def test_three_class_example_by_hand():
    got = hierarchy_metrics(H0, H1, Z0, Z1, temperatures=(1.0, 0.5))
    # hidden: cos = (30 + 20) / (5 · √125) = 2/√5 -> deviation 1 − 2/√5.
    # α = ⟨Δh, h0⟩/‖h0‖² = (21 + 4)/25 = 1 -> ‖Δh∥‖/‖h0‖ = 1;
    # Δh⊥ = (7, 1) − (3, 4) = (4, −3), ‖Δh⊥‖/‖h0‖ = 5/5 = 1.
    assert got["hidden_deviation"] == pytest.approx(1 - 2 / math.sqrt(5), abs=1e-15)
    assert got["hidden_parallel"] == pytest.approx(1.0, abs=1e-15)
    assert got["hidden_orthogonal"] == pytest.approx(1.0, abs=1e-15)
    # logits: z0 ⟂ z -> cos 0, deviation 1. α = ⟨Δz, z0⟩/‖z0‖² = −ln²2/ln²2 = −1 -> parallel 1;
    # Δz⊥ = Δz + z0 = (0, ln2, 0) -> orthogonal ln2/ln2 = 1.
    assert got["logit_deviation"] == pytest.approx(1.0, abs=1e-15)
    assert got["logit_parallel"] == pytest.approx(1.0, abs=1e-15)
    assert got["logit_orthogonal"] == pytest.approx(1.0, abs=1e-15)
    # τ = 1: p·p0 = 1/8 + 1/8 + 1/16 = 5/16, ‖p‖² = ‖p0‖² = 6/16 -> cos 5/6, deviation 1/6.
    # KL(p ‖ p0) = 1/4 ln(1/2) + 1/2 ln 2 + 1/4 ln 1 = ln2/4.
    # Var_p(Δz): E = ln2 (−1/4 + 1/2) = ln2/4, E[Δz²] = ln²2 (1/4 + 1/2) = 3/4 ln²2,
    # Var = (3/4 − 1/16) ln²2 = 11/16 ln²2 -> estimate 11/32 ln²2 ≈ 0.1652 (exact 0.1733).
    assert got["probability_deviation_t1"] == pytest.approx(1 / 6, abs=1e-15)
    assert got["kl_t1"] == pytest.approx(LN2 / 4, abs=1e-15)
    assert got["kl_estimate_t1"] == pytest.approx(11 / 32 * LN2**2, abs=1e-15)
    # τ = 0.5: z/τ = 2z: p0 ∝ (4, 1, 1) = (2/3, 1/6, 1/6), p = (1/6, 2/3, 1/6).
    # p·p0 = 1/9 + 1/9 + 1/36 = 1/4, ‖p‖² = 4/9 + 1/36 + 1/36 = 1/2 -> cos 1/2, deviation 1/2.
    # KL = 1/6 ln(1/4) + 2/3 ln 4 = ln4 (2/3 − 1/6) = ln 2.
    # Var_p(Δz): E = ln2 (−1/6 + 2/3) = ln2/2, E[Δz²] = 5/6 ln²2, Var = (5/6 − 1/4) ln²2
    # = 7/12 ln²2; / (2 · 0.25) -> 7/6 ln²2.
    assert got["probability_deviation_t0.5"] == pytest.approx(0.5, abs=1e-15)
    assert got["kl_t0.5"] == pytest.approx(LN2, abs=1e-15)
    assert got["kl_estimate_t0.5"] == pytest.approx(7 / 6 * LN2**2, abs=1e-15)
    assert list(got) == hierarchy_metric_names((1.0, 0.5))


def test_kl_direction_is_compressed_first():
    # base (0, 0, 0) -> uniform p0; compressed (ln 2, 0, 0) -> p = (1/2, 1/4, 1/4).
    # KL(p ‖ p0) = 1/2 ln(3/2) + 2 · 1/4 ln(3/4) = ln 3 − 3/2 ln 2 ≈ 0.0589;
    # KL(p0 ‖ p) = 1/3 ln(2/3) + 2 · 1/3 ln(4/3) = 5/3 ln 2 − ln 3 ≈ 0.0566 (the other direction).
    base = np.zeros((1, 3))
    model = np.array([[LN2, 0.0, 0.0]])
    got = hierarchy_metrics(H0, H0, base, model, temperatures=(1.0,))
    assert got["kl_t1"] == pytest.approx(math.log(3) - 1.5 * LN2, abs=1e-15)
    swapped = hierarchy_metrics(H0, H0, model, base, temperatures=(1.0,))
    assert swapped["kl_t1"] == pytest.approx(5 / 3 * LN2 - math.log(3), abs=1e-15)


def test_samples_are_averaged():
    # Second sample identical in both models: every metric of it is 0, so each mean halves.
    z0 = np.vstack([Z0, [[1.0, 2.0, 3.0]]])
    z1 = np.vstack([Z1, [[1.0, 2.0, 3.0]]])
    h0 = np.vstack([H0, [[1.0, -1.0]]])
    h1 = np.vstack([H1, [[1.0, -1.0]]])
    one = hierarchy_metrics(H0, H1, Z0, Z1)
    two = hierarchy_metrics(h0, h1, z0, z1)
    for name, value in one.items():
        assert two[name] == pytest.approx(value / 2, abs=1e-15), name


def random_pair(seed: int, n: int = 7, d: int = 5, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, d)) * 3
    return base, base + scale * rng.normal(size=(n, d))


def test_common_rescaling_leaves_cosines_and_split_unchanged():
    h0, h1 = random_pair(0, d=6)
    z0, z1 = random_pair(1)
    ref = hierarchy_metrics(h0, h1, z0, z1)
    scaled = hierarchy_metrics(4.0 * h0, 4.0 * h1, 0.25 * z0, 0.25 * z1)
    for space in ("hidden", "logit"):
        for part in ("deviation", "parallel", "orthogonal"):
            name = f"{space}_{part}"
            assert scaled[name] == pytest.approx(ref[name], rel=1e-12), name
    # Scaling the logits by s is the same as dividing τ by s: KL_τ=0.5(z) = KL_τ=1(2z).
    doubled = hierarchy_metrics(h0, h1, 2 * z0, 2 * z1, temperatures=(1.0,))
    for metric in ("probability_deviation", "kl", "kl_estimate"):
        assert doubled[f"{metric}_t1"] == pytest.approx(ref[f"{metric}_t0.5"], rel=1e-12)


def test_shift_of_logits_changes_no_softmax_metric():
    z0, z1 = random_pair(2)
    ref = hierarchy_metrics(z0, z1, z0, z1)
    shifted = hierarchy_metrics(z0, z1, z0 + 3.0, z1 - 5.0)
    for name in ref:
        if name.startswith(("kl", "probability")):
            assert shifted[name] == pytest.approx(ref[name], rel=1e-10, abs=1e-15), name


def test_identical_models_give_zero_everywhere():
    h0, _ = random_pair(3)
    z0, _ = random_pair(4)
    got = hierarchy_metric_values((h0, h0.copy()), (z0, z0.copy()), (1.0, 0.5, 2.0))
    for name, (value, degenerate) in got.items():
        assert value == pytest.approx(0.0, abs=1e-15), name
        assert not degenerate


def test_estimate_approaches_exact_kl_as_delta_vanishes():
    rng = np.random.default_rng(5)
    z0 = rng.normal(size=(20, 10)) * 2
    direction = rng.normal(size=(20, 10))
    errors = []
    for eps in (1e-1, 1e-2, 1e-3):
        got = hierarchy_metrics(z0, z0, z0, z0 + eps * direction, temperatures=(1.0, 0.5))
        for suffix in ("t1", "t0.5"):
            errors.append(abs(got[f"kl_estimate_{suffix}"] / got[f"kl_{suffix}"] - 1))
    # error falls about tenfold with eps (third-order remainder over a second-order term)
    assert errors[4] < errors[2] < errors[0] and errors[5] < errors[3] < errors[1]
    assert max(errors[4:]) < 1e-2


def test_deviation_matches_second_order_estimate_for_small_perturbations():
    # 004: 1 − cos(z0, z0 + Δz) ≈ ‖Δz⊥‖² / (2 ‖z0‖²) = orthogonal² / 2, one sample.
    rng = np.random.default_rng(6)
    z0 = rng.normal(size=(1, 8))
    direction = rng.normal(size=(1, 8))
    for eps in (1e-2, 1e-4, 1e-6):
        got = hierarchy_metrics(z0, z0 + eps * direction, z0, z0)
        ratio = got["hidden_deviation"] / (got["hidden_orthogonal"] ** 2 / 2)
        assert ratio == pytest.approx(1.0, abs=50 * eps), eps


def naive_metrics(h0, h1, z0, z1, temperatures):
    """The definitions written out per sample with math.* (the independent computation)."""

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
            sum(x * x for x in a) * sum(y * y for y in b)
        )

    def softmax(z, t):
        e = [math.exp(v / t) for v in z]
        return [v / sum(e) for v in e]

    def split(a, b):
        d = [y - x for x, y in zip(a, b, strict=True)]
        alpha = sum(x * y for x, y in zip(d, a, strict=True)) / sum(x * x for x in a)
        perp = [x - alpha * y for x, y in zip(d, a, strict=True)]
        norm = math.sqrt(sum(x * x for x in a))
        return abs(alpha), math.sqrt(sum(x * x for x in perp)) / norm

    out = {}
    for space, (a, b) in (("hidden", (h0, h1)), ("logit", (z0, z1))):
        rows = [(1 - cos(x, y), *split(x, y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
        for k, part in enumerate(("deviation", "parallel", "orthogonal")):
            out[f"{space}_{part}"] = sum(r[k] for r in rows) / len(rows)
    for t in temperatures:
        rows = []
        for a, b in zip(z0.tolist(), z1.tolist(), strict=True):
            p0, p = softmax(a, t), softmax(b, t)
            d = [y - x for x, y in zip(a, b, strict=True)]
            mean = sum(w * v for w, v in zip(p, d, strict=True))
            var = sum(w * (v - mean) ** 2 for w, v in zip(p, d, strict=True))
            kl = sum(w * math.log(w / w0) for w, w0 in zip(p, p0, strict=True))
            rows.append((1 - cos(p0, p), kl, var / (2 * t * t)))
        for k, metric in enumerate(("probability_deviation", "kl", "kl_estimate")):
            out[f"{metric}_{temperature_suffix(t)}"] = sum(r[k] for r in rows) / len(rows)
    return out


def test_vectorised_equals_naive_per_sample_loop():
    h0, h1 = random_pair(7, n=9, d=4)
    z0, z1 = random_pair(8, n=5, d=3)
    got = hierarchy_metrics(h0, h1, z0, z1, temperatures=(1.0, 0.5, 3.0))
    expected = naive_metrics(h0, h1, z0, z1, (1.0, 0.5, 3.0))
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-14), name


def test_stable_deviation_beats_naive_one_minus_cos_near_identity():
    # 1 − cos for a 1e-9 rotation is ~5e-19: the naive form rounds it to 0, ½‖â − b̂‖² keeps it.
    base = np.array([[1.0, 0.0]])
    model = np.array([[1.0, 1e-9]])
    assert 1 - (base @ model.T).item() / np.linalg.norm(model) == 0.0
    assert row_deviation(base, model)[0] == pytest.approx(0.5e-18, rel=1e-6)


def test_zero_vectors_follow_the_documented_conventions():
    zero, unit = np.zeros((1, 2)), np.array([[1.0, 0.0]])
    z = np.array([[1.0, 2.0, 3.0]])
    one_zero = hierarchy_metric_values((unit, zero), (z, z))
    assert one_zero["hidden_deviation"] == (1.0, True)
    # base nonzero: α = −1, Δ⊥ = 0 -> parallel 1, orthogonal 0
    assert one_zero["hidden_parallel"] == (1.0, True)
    assert one_zero["hidden_orthogonal"] == (0.0, True)
    both_zero = hierarchy_metric_values((zero, zero), (z, z))
    assert both_zero["hidden_deviation"] == (0.0, True)
    assert both_zero["hidden_parallel"] == (0.0, True)
    assert both_zero["hidden_orthogonal"] == (0.0, True)
    # zero base, moved model: no direction -> the sample is left out; alone -> NaN
    moved = hierarchy_metric_values((zero, unit), (z, z))
    assert moved["hidden_deviation"] == (1.0, True)
    assert math.isnan(moved["hidden_parallel"].value) and moved["hidden_parallel"].degenerate
    # ... beside a regular sample the mean is that sample's value: H0 -> H1 gives (1, 1)
    mixed = hierarchy_metric_values((np.vstack([zero, H0]), np.vstack([unit, H1])), (z, z))
    assert mixed["hidden_parallel"] == pytest.approx((1.0, True))
    assert mixed["hidden_orthogonal"] == pytest.approx((1.0, True))
    assert mixed["kl_t1"] == (0.0, False)


def test_non_finite_inputs_give_degenerate_nan_per_space():
    z0, z1 = random_pair(9)
    bad = z1.copy()
    bad[0, 0] = np.inf
    got = hierarchy_metric_values((z0, z1), (z0, bad))
    for name, (value, degenerate) in got.items():
        if name.startswith("hidden"):
            assert math.isfinite(value) and not degenerate
        else:
            assert math.isnan(value) and degenerate, name
    hidden_nan = z1.copy()
    hidden_nan[1, 2] = np.nan
    got = hierarchy_metric_values((z0, hidden_nan), (z0, z1))
    assert math.isnan(got["hidden_orthogonal"].value) and math.isfinite(got["kl_t1"].value)


def test_names_and_bad_arguments():
    assert temperature_suffix(1.0) == "t1"
    assert temperature_suffix(0.5) == "t0.5"
    assert temperature_suffix(2) == "t2"
    assert hierarchy_metric_names((1.0,))[-3:] == [
        "probability_deviation_t1",
        "kl_t1",
        "kl_estimate_t1",
    ]
    for temperatures in ((), (0.0,), (-1.0,), (math.inf,), (1.0, 1.0)):
        with pytest.raises(CompRepsError):
            hierarchy_metrics(H0, H1, Z0, Z1, temperatures=temperatures)
    with pytest.raises(CompRepsError):
        hierarchy_metrics(H0, H1[:, :1], Z0, Z1)


def test_analysis_modules_import_no_torch():
    code = (
        "import sys, compreps.analysis.metrics.hierarchy, compreps.analysis.paper; "
        "import compreps.analysis.paper.claims; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
