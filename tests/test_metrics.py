"""Representation metrics against hand-derived values, invariances and independent references."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.special
import yaml
from scipy.stats import entropy, ortho_group, wasserstein_distance

from compreps import cli
from compreps.analysis.metrics.compare import compare_layer, linear_cka, subspace_alignment
from compreps.analysis.metrics.output import output_metrics, softmax
from compreps.analysis.metrics.spectra import (
    alive_fraction,
    centre_columns,
    centred_spectrum,
    class_separation,
    class_separation_from_gram,
    summarize_layer,
)
from compreps.analysis.metrics.step import model_metrics
from compreps.analysis.metrics.value import Metric, average_metric, weighted_score
from compreps.analysis.metrics.weight_similarity import layer_weights, standardized_cosine
from compreps.analysis.tables import metrics_table
from compreps.core.dump import Dump, read_dump, write_dump
from compreps.core.files import CompRepsError
from compreps.core.settings import (
    GtfaSettings,
    HierarchySettings,
    MetricsSettings,
    ProbeSettings,
    RepsSettings,
    RepsWeights,
    config_arguments,
)
from compreps.core.vocabulary import METRIC_COLUMNS, PER_LAYER_METRICS

RNG = np.random.default_rng(1234)
CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
CONFIG["probe"]["trajectory_layers"] = ["layer1", "fc"]


def zero_mean_orthonormal(n: int, k: int, rng=RNG) -> np.ndarray:
    """n × k orthonormal columns, each summing to 0 (so column-centring leaves them unchanged)."""
    raw = rng.normal(size=(n, k))
    raw -= raw.mean(axis=0)
    q, _ = np.linalg.qr(raw)
    return q


def orthonormal(d: int, k: int, rng=RNG) -> np.ndarray:
    return np.linalg.qr(rng.normal(size=(d, k)))[0]


def labels_for(n: int, classes: int = 4) -> np.ndarray:
    return np.arange(n) % classes


def MetricSettings(
    top_k=20, reps_weights=(0.15, 0.05, 0.35, 0.45), beta=0.45, gamma=0.45, samples="probe"
):
    """The metrics settings of config.yaml, with the given changes."""
    return MetricsSettings(
        reps=RepsSettings(RepsWeights(*reps_weights), alive_threshold=0.01, decay_top_m=20),
        gtfa=GtfaSettings(beta=beta, gamma=gamma, top_k=top_k, output_samples=samples),
        hierarchy=HierarchySettings(temperatures=(1.0, 0.5)),
    )


def summary(x, labels=None, **kwargs):
    return summarize_layer(x, labels_for(len(x)) if labels is None else labels, **kwargs)


# --------------------------------------------------------------------------- decomposition


@pytest.mark.parametrize("n, d", [(40, 300), (120, 25)])  # Gram route, scatter route
def test_decomposition_matches_numpy_svd(n, d):
    x = RNG.normal(size=(n, d)) * RNG.uniform(0.1, 5, size=d) + 3.0
    spectrum = centred_spectrum(centre_columns(x), top_k=10)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = min(n - 1, d)  # centring removes one dimension
    np.testing.assert_allclose(spectrum.singular_values[:rank], s[:rank], rtol=1e-9)
    assert spectrum.rank == rank
    # each right singular vector equals numpy's up to sign
    overlaps = np.abs(np.sum(spectrum.right_vectors * vt[:10].T, axis=0))
    np.testing.assert_allclose(overlaps, 1.0, atol=1e-8)


@pytest.mark.parametrize("n, d, k", [(50, 200, 7), (60, 30, 12), (30, 500, 1)])
def test_effective_rank_of_k_equal_singular_values_is_k(n, d, k):
    x = zero_mean_orthonormal(n, k) @ np.diag(np.full(k, 2.5)) @ orthonormal(d, k).T
    result = summary(x.astype(np.float32)).effective_rank
    assert result.value == pytest.approx(k, rel=1e-5) and not result.degenerate


def test_effective_rank_of_two_unequal_singular_values():
    # s = (3, 1): p = (3/4, 1/4), H = -(3/4 ln 3/4 + 1/4 ln 1/4)
    x = zero_mean_orthonormal(20, 2) @ np.diag([3.0, 1.0]) @ orthonormal(50, 2).T
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert summary(x).effective_rank.value == pytest.approx(expected, rel=1e-9)


def test_decay_slope_recovers_power_law_exponent():
    n, d, alpha = 100, 400, 1.7
    covariance_eigenvalues = np.arange(1, 31, dtype=float) ** -alpha
    singular = np.sqrt(covariance_eigenvalues * (n - 1))
    x = zero_mean_orthonormal(n, 30) @ np.diag(singular) @ orthonormal(d, 30).T
    for top_m in (20, 5):
        slope = summary(x, decay_top_m=top_m).decay_slope
        assert slope.value == pytest.approx(alpha, rel=1e-6) and not slope.degenerate


# --------------------------------------------------------------------------- REPS descriptors


def test_alive_fraction_with_known_dead_columns():
    n = 20
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)  # ±a: variance exactly a²
    amplitudes = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0.01]  # two constant columns, one of variance 1e-4
    x = signs[:, None] * np.array(amplitudes)[None, :] + 5.0
    # mean variance = (7 + 1e-4) / 10 ≈ 0.7; threshold 0.01 × 0.7 = 0.007 > 1e-4: 7 alive of 10
    assert summary(x).alive_fraction == Metric(0.7, False)
    # threshold 1e-4 / 0.70001 ≈ 1.4e-4: the faint column is alive at 1e-4, dead at 2e-4
    variances = np.var(x, axis=0)
    assert alive_fraction(variances, 1e-4).value == pytest.approx(0.8)
    assert alive_fraction(variances, 2e-4).value == pytest.approx(0.7)


def clusters() -> tuple[np.ndarray, np.ndarray, float]:
    """Three classes, two points each, around centroids (0,0), (3,0), (0,4), padded to 5 dims.

    Centroid distances 3, 4, 5 -> mean 4. Offsets ±(1,0), ±(0,2), ±(0.5,0): distances to the
    centroid 1,1,2,2,0.5,0.5 -> mean 7/6. Separation = 4 / (7/6) = 24/7.
    """
    points = [(-1, 0), (1, 0), (3, -2), (3, 2), (-0.5, 4), (0.5, 4)]
    x = np.zeros((6, 5))
    x[:, :2] = points
    return x + 10.0, np.array([0, 0, 1, 1, 2, 2]), 24 / 7


def test_class_separation_on_hand_built_clusters():
    x, labels, expected = clusters()
    assert class_separation(x, labels).value == pytest.approx(expected, rel=1e-12)
    centred = x - x.mean(axis=0)
    from_gram = class_separation_from_gram(centred @ centred.T, labels)
    assert from_gram.value == pytest.approx(expected, rel=1e-9)
    wide = np.hstack([x, np.zeros((6, 20))])  # d > n: the summary takes the Gram route
    assert summarize_layer(wide, labels).class_separation.value == pytest.approx(expected, 1e-9)
    assert summarize_layer(x, labels).class_separation.value == pytest.approx(expected, 1e-12)


def test_class_separation_ratio_to_base_is_capped():
    x, labels, _ = clusters()
    # same centroids, offsets halved: within-class mean 7/12, separation 4 / (7/12) = 48/7
    halved = [(-0.5, 0), (0.5, 0), (3, -1), (3, 1), (-0.25, 4), (0.25, 4)]
    tighter = np.zeros((6, 5))
    tighter[:, :2] = halved
    base, tight = summarize_layer(x, labels), summarize_layer(tighter, labels)
    assert tight.class_separation.value == pytest.approx(48 / 7)
    settings = MetricSettings()
    assert compare_layer(base, tight, Metric(1), Metric(1), settings)["s_s"].value == 1.0
    reverse = compare_layer(tight, base, Metric(1), Metric(1), settings)["s_s"]
    assert reverse.value == pytest.approx(0.5)


# --------------------------------------------------------------------------- s_a, CKA


def test_subspace_alignment_identical_and_orthogonal():
    n, d = 60, 80
    scores = zero_mean_orthonormal(n, 10) @ np.diag(np.linspace(10, 1, 10))
    on_first = np.zeros((n, d))
    on_first[:, :10] = scores
    on_other = np.zeros((n, d))
    on_other[:, 40:50] = scores  # disjoint coordinates: every principal angle is 90°
    a, b = summary(on_first, top_k=10), summary(on_other, top_k=10)
    assert subspace_alignment(a.spectrum, a.spectrum, 10).value == pytest.approx(1.0)
    assert subspace_alignment(a.spectrum, b.spectrum, 10).value == pytest.approx(0.0, abs=1e-12)
    # half the directions shared: singular values of V0ᵀV are five 1s and five 0s -> 0.5
    half = np.zeros((n, d))
    half[:, :5] = scores[:, :5]
    half[:, 40:45] = scores[:, 5:]
    assert subspace_alignment(a.spectrum, summary(half, top_k=10).spectrum, 10).value == (
        pytest.approx(0.5)
    )


def test_cka_hand_formula_on_tiny_example():
    # X = [[1,0],[0,1],[-1,-1]], Y = [[1],[0],[-1]] (both centred): XᵀX = [[2,1],[1,2]],
    # ‖XᵀX‖_F = √10, YᵀY = [[2]], YᵀX = [2, 1] -> ‖YᵀX‖² = 5; CKA = 5 / (2√10)
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    y = np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]])  # Y padded with a zero column
    expected = 5 / (2 * math.sqrt(10))
    sx, sy = centred_spectrum(centre_columns(x)), centred_spectrum(centre_columns(y))
    assert not sx.uses_gram
    assert linear_cka(sx, sy).value == pytest.approx(expected, rel=1e-12)
    wide_x, wide_y = np.hstack([x, np.zeros((3, 3))]), np.hstack([y, np.zeros((3, 3))])
    gx, gy = centred_spectrum(centre_columns(wide_x)), centred_spectrum(centre_columns(wide_y))
    assert gx.uses_gram
    assert linear_cka(gx, gy).value == pytest.approx(expected, rel=1e-12)


def test_cka_is_one_under_isotropic_scaling_and_below_one_otherwise():
    x = RNG.normal(size=(30, 50))
    sx = summary(x).spectrum
    assert linear_cka(sx, summary(3.0 * x + 7.0).spectrum).value == pytest.approx(1.0)
    squeezed = x * np.linspace(0.1, 3, 50)  # anisotropic scaling changes CKA
    assert linear_cka(sx, summary(squeezed).spectrum).value < 0.99


@pytest.mark.parametrize("n, d", [(30, 60), (80, 20)])
def test_rotation_invariance_of_effective_rank_s_a_and_cka(n, d):
    x = RNG.normal(size=(n, d)) @ np.diag(np.linspace(3, 0.1, d))
    y = x + 0.7 * RNG.normal(size=(n, d))
    q = ortho_group.rvs(d, random_state=7)
    settings = MetricSettings(top_k=5)
    plain = compare_layer(summary(x, top_k=5), summary(y, top_k=5), Metric(1), Metric(1), settings)
    rotated_y = compare_layer(
        summary(x, top_k=5), summary(y @ q, top_k=5), Metric(1), Metric(1), settings
    )
    both = compare_layer(
        summary(x @ q, top_k=5), summary(y @ q, top_k=5), Metric(1), Metric(1), settings
    )
    for name in ("s_e", "effective_rank", "cka_linear", "s_a", "s_s", "s_d"):
        assert both[name].value == pytest.approx(plain[name].value, rel=1e-8), name
    assert rotated_y["cka_linear"].value == pytest.approx(plain["cka_linear"].value, rel=1e-8)
    assert rotated_y["effective_rank"].value == pytest.approx(plain["effective_rank"].value)
    assert 0 < plain["s_a"].value < 1


# --------------------------------------------------------------------------- outputs


def test_s_f_identical_outputs_and_two_sample_hand_value():
    logits = RNG.normal(size=(50, 10))
    assert output_metrics(logits, logits)["s_f"].value == pytest.approx(1.0)
    p0 = np.array([[0.5, 0.5], [0.6, 0.4]])
    p1 = np.array([[0.8, 0.2], [0.6, 0.4]])
    # sample 1: cos = 0.5 / (√0.5 √0.68), weight max(0.5, 0.8) = 0.8; sample 2: cos 1, weight 0.6
    expected = (0.8 * 0.5 / (math.sqrt(0.5) * math.sqrt(0.68)) + 0.6 * 1.0) / (0.8 + 0.6)
    result = output_metrics(np.log(p0), np.log(p1))
    assert result["s_f"].value == pytest.approx(expected, rel=1e-12)
    # probability cosine: plain mean of the two cosines
    cos1 = 0.5 / (math.sqrt(0.5) * math.sqrt(0.68))
    assert result["probability_cosine"].value == pytest.approx((cos1 + 1) / 2)


def test_output_baselines_against_hand_values_and_scipy():
    z0 = RNG.normal(size=(40, 10)) * 3
    z1 = z0 + RNG.normal(size=(40, 10))
    p0, p1 = softmax(z0), softmax(z1)
    result = output_metrics(z0, z1)
    np.testing.assert_allclose(p0, scipy.special.softmax(z0, axis=1), rtol=1e-12)
    classes = np.arange(10)
    expected_w = np.mean(
        [wasserstein_distance(classes, classes, a, b) for a, b in zip(p0, p1, strict=True)]
    )
    assert result["wasserstein"].value == pytest.approx(expected_w, rel=1e-9)
    expected_kl = np.mean(
        [entropy(a, b) for a, b in zip(p0, p1, strict=True)]
    )  # no p below 1e-12 here
    assert result["kl_divergence"].value == pytest.approx(expected_kl, rel=1e-9)
    assert result["prediction_agreement"].value == np.mean(z0.argmax(1) == z1.argmax(1))
    assert result["logits_l2"].value == pytest.approx(np.mean(np.sqrt(((z0 - z1) ** 2).sum(1))))
    cos = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(z0, z1, strict=True)]
    assert result["logits_cosine"].value == pytest.approx(np.mean(cos))
    same = output_metrics(z0, z0)
    assert same["kl_divergence"].value == pytest.approx(0, abs=1e-12)
    assert same["wasserstein"].value == pytest.approx(0, abs=1e-12)


def test_kl_clips_probabilities():
    z0 = np.array([[0.0, 0.0]])
    z1 = np.array([[0.0, -1000.0]])  # P = (1, e^-1000 -> 0): clipped to 1e-12
    expected = 0.5 * math.log(0.5 / 1.0) + 0.5 * math.log(0.5 / 1e-12)
    assert output_metrics(z0, z1)["kl_divergence"].value == pytest.approx(expected)


def test_standardized_weight_cosine_is_pearson_correlation():
    w0 = RNG.normal(size=1000)
    w1 = 0.3 * w0 + RNG.normal(size=1000) + 4
    assert standardized_cosine(w0, w1).value == pytest.approx(np.corrcoef(w0, w1)[0, 1])
    assert standardized_cosine(w0, 5 * w0 - 2).value == pytest.approx(1.0)
    assert standardized_cosine(w0, np.zeros(1000)) == Metric(0.0, True)
    assert standardized_cosine(w0, np.full(1000, 0.37)) == Metric(0.0, True)  # rounding floor
    # constant base weights: 0 against varying weights, 1 against constant ones (both flagged)
    assert standardized_cosine(np.ones(10), w0[:10]) == Metric(0.0, True)
    assert standardized_cosine(np.ones(10), np.full(10, -2.0)) == Metric(1.0, True)
    assert math.isnan(standardized_cosine(np.ones(0), np.ones(0)).value)  # no weights at all


def test_gtfa_and_reps_combinations_by_hand():
    x = RNG.normal(size=(30, 40))
    same = summary(x)
    result = compare_layer(same, same, Metric(0.5), Metric(0.8), MetricSettings())
    # identical activations: s_e = s_s = s_d = s_a = 1, s_alive = alive fraction of x (all 1)
    assert result["s_a"].value == pytest.approx(1.0)
    assert result["gtfa"].value == pytest.approx(0.45 * (0.45 * 0.5 + 0.55 * 1.0) + 0.55 * 0.8)
    assert result["reps_equal"].value == pytest.approx(1.0)
    other = summary(x * np.linspace(0.05, 1, 40) ** 3)
    r = compare_layer(same, other, Metric(1), Metric(1), MetricSettings(reps_weights=(1, 2, 3, 4)))
    parts = [r[name].value for name in ("s_e", "s_alive", "s_s", "s_d")]
    assert r["reps_weighted"].value == pytest.approx(
        parts[0] + 2 * parts[1] + 3 * parts[2] + 4 * parts[3]
    )
    assert r["reps_equal"].value == pytest.approx(sum(parts) / 4)
    assert r["s_d"].value == pytest.approx(
        1 / (1 + abs(other.decay_slope.value - same.decay_slope.value))
    )


# --------------------------------------------------------------------------- degenerate inputs


def test_constant_activations_are_flagged_with_finite_limits():
    base = summary(RNG.normal(size=(20, 30)))
    collapsed = summary(np.full((20, 30), 0.7, dtype=np.float32))
    assert collapsed.effective_rank == Metric(0.0, True)
    assert collapsed.alive_fraction == Metric(0.0, True)
    assert collapsed.class_separation == Metric(0.0, True)
    assert collapsed.decay_slope == Metric(math.inf, True)  # no decay to measure: infinitely steep
    result = compare_layer(base, collapsed, Metric(1), Metric(1), MetricSettings())
    for name in ("s_e", "s_alive", "s_s", "s_d", "s_a", "cka_linear"):
        assert result[name] == Metric(0.0, True), name
    assert result["reps_weighted"] == Metric(0.0, True)
    # the base collapsed: the ratios (r / r0, r0 = 0) are capped at 1, the similarities are 0
    reverse = compare_layer(collapsed, base, Metric(1), Metric(1), MetricSettings())
    for name, expected in (("s_e", 1), ("s_s", 1), ("s_d", 0), ("s_a", 0), ("cka_linear", 0)):
        assert reverse[name] == Metric(float(expected), True), name
    # both collapsed: identical up to a shift
    both = compare_layer(collapsed, collapsed, Metric(1), Metric(1), MetricSettings())
    for name in ("s_e", "s_s", "s_d", "s_a", "cka_linear"):
        assert both[name] == Metric(1.0, True), name
    for outcome in (result, reverse, both):
        assert all(math.isfinite(m.value) for k, m in outcome.items() if k != "decay_slope")


def test_zero_vectors_and_zero_logits_are_flagged():
    zeros = np.zeros((5, 10))
    result = output_metrics(RNG.normal(size=(5, 10)), zeros)
    assert result["logits_cosine"] == Metric(0.0, True)
    assert all(math.isfinite(m.value) for m in result.values())
    both = output_metrics(zeros, zeros)
    assert both["logits_cosine"] == Metric(1.0, True)
    x = RNG.normal(size=(20, 30))
    dead_sample = x.copy()
    dead_sample[3] = 0
    hidden = compare_layer(
        summary(x), summary(dead_sample), Metric(1), Metric(1), MetricSettings()
    )["hidden_cosine"]
    assert hidden.degenerate and 0 < hidden.value < 1


def test_non_finite_activations_give_flagged_nan():
    x = RNG.normal(size=(20, 30))
    broken = x.copy()
    broken[0, 0] = np.inf
    result = compare_layer(summary(x), summary(broken), Metric(1), Metric(1), MetricSettings())
    for name, metric in result.items():
        if name != "s_w":
            assert metric.degenerate and math.isnan(metric.value), name
    nan_logits = output_metrics(x, broken)
    assert all(m.degenerate and math.isnan(m.value) for m in nan_logits.values())


# --------------------------------------------------------------------------- the one NaN rule


def test_combining_metrics_nan_and_degenerate_rule():
    assert weighted_score([Metric(0.5), Metric(1.0)], (0.2, 0.8)) == Metric(0.9, False)
    assert weighted_score([Metric(0.5), Metric(1.0, True)], (0.5, 0.5)) == Metric(0.75, True)
    nan = weighted_score([Metric(math.nan), Metric(1.0)], (0.5, 0.5))
    assert math.isnan(nan.value) and nan.degenerate
    assert average_metric([Metric(0.2), Metric(0.4)]) == Metric(pytest.approx(0.3), False)
    mean_nan = average_metric([Metric(0.2), Metric(math.nan, False)])
    assert math.isnan(mean_nan.value) and mean_nan.degenerate
    empty = average_metric([])
    assert math.isnan(empty.value) and empty.degenerate


# --------------------------------------------------------------------------- dumps and CLI

LAYERS = {
    "layer1": (4, 4, 4),
    "layer2": (8, 2, 2),
    "layer3": (6,),
    "layer4": (12,),
    "layer4.1.conv2": (12,),
    "fc": (10,),
    "avgpool": (16,),
}
COMPARED = set(LAYERS) - {"avgpool"}
# Conv2d/Linear modules of a (narrow) CIFAR ResNet-18 and their weight sizes
MODULES = {"conv1": 3 * 9 * 2}
for stage, (c_in, c_out) in enumerate([(2, 2), (2, 4), (4, 8), (8, 16)], start=1):
    for block in range(2):
        first_in = c_in if block == 0 else c_out
        MODULES[f"layer{stage}.{block}.conv1"] = first_in * 9 * c_out
        MODULES[f"layer{stage}.{block}.conv2"] = c_out * 9 * c_out
        if stage > 1 and block == 0:
            MODULES[f"layer{stage}.0.downsample.0"] = c_in * c_out
MODULES["fc"] = 16 * 10
PROBE = ProbeSettings(
    size=30,
    seed=0,
    metric_layers=("layer4.1.conv2", "fc"),
    trajectory_layers=("layer1", "layer2", "layer3", "layer4", "fc"),
    hidden_layer="avgpool",
    batch_size=10,
)


def write_model_dump(path, model_id, logits, layers, probe, labels, weights):
    family = model_id.split("-")[0]
    write_dump(
        path,
        Dump(
            labels=labels,
            logits=logits.astype(np.float32),
            probe_indices=probe,
            probe_labels=labels[probe],
            layers={k: v.astype(np.float32) for k, v in layers.items()},
            layer_shapes=dict(LAYERS),
            weights=weights,
            attrs={
                "accuracy": 0.5,
                "model": model_id,
                "family": family,
                "level": math.nan if model_id == "base" else 0.5,
                "checkpoint_sha256": "0",
                "dataset": "cifar10",
                "arch": "resnet18",
                "width": 2,
            },
        ),
    )


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("metrics")
    rng = np.random.default_rng(5)
    labels = np.arange(60) % 10
    probe = np.arange(0, 60, 2)
    base_layers = {name: rng.normal(size=(30, math.prod(s))) for name, s in LAYERS.items()}
    logits = rng.normal(size=(60, 10))
    weights = {k: rng.normal(size=n).astype(np.float32) for k, n in MODULES.items()}
    noisy = {k: (v + 0.1 * rng.normal(size=v.size)).astype(np.float32) for k, v in weights.items()}
    write_model_dump(root / "base.h5", "base", logits, base_layers, probe, labels, weights)
    model_layers = {k: v + 0.5 * rng.normal(size=v.shape) for k, v in base_layers.items()}
    model_logits = logits + rng.normal(size=logits.shape)
    write_model_dump(
        root / "prune-0.5.h5", "prune-0.5", model_logits, model_layers, probe, labels, noisy
    )
    other = root / "other" / "prune-0.5.h5"
    other.parent.mkdir()
    write_model_dump(other, "prune-0.5", logits, model_layers, probe + 1, labels, noisy)
    return root


def run_files(root, model_id, dump=None):
    return model_metrics(
        model_id, root / "base.h5", dump or root / f"{model_id}.h5", MetricSettings(), PROBE
    )


def test_model_frame_columns_and_model_level_means(model_files):
    frame = run_files(model_files, "prune-0.5")
    assert list(frame.columns) == list(METRIC_COLUMNS)
    assert set(frame["layer"]) == {*COMPARED, "model"}
    assert (frame["family"] == "prune").all() and (frame["level"] == 0.5).all()
    per_layer = frame[frame["layer"] != "model"]
    assert (
        per_layer.groupby("layer").size().eq(len(PER_LAYER_METRICS)).all()
    )  # 16 with cka_debiased
    model = frame[frame["layer"] == "model"].set_index("metric")["value"]
    for metric in ("s_e", "s_a", "cka_linear", "gtfa", "reps_weighted", "effective_rank"):
        values = per_layer[
            (per_layer["metric"] == metric) & per_layer["layer"].isin(["layer4.1.conv2", "fc"])
        ]["value"]
        assert model[metric] == pytest.approx(values.mean()), metric
    assert {"s_f", "weight_similarity", "wasserstein", "kl_divergence"} <= set(model.index)
    assert frame["value"].notna().all() and not frame["degenerate"].any()
    assert 0 < model["weight_similarity"] < 1


def test_base_against_itself_is_perfectly_similar(model_files):
    frame = run_files(model_files, "base")
    model = frame[frame["layer"] == "model"].set_index("metric")["value"]
    for name in (
        "s_e",
        "s_s",
        "s_d",
        "s_a",
        "cka_linear",
        "hidden_cosine",
        "s_w",
        "s_f",
        "weight_similarity",
        "prediction_agreement",
        "logits_cosine",
    ):
        assert model[name] == pytest.approx(1.0), name
    assert model["kl_divergence"] == pytest.approx(0.0, abs=1e-12)
    assert model["logits_l2"] == 0 and model["wasserstein"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(frame["level"].iloc[0]) and (frame["family"] == "base").all()


def test_container_layer_weights_are_concatenated():
    weights = {
        name: np.full(size, i, dtype=np.float32) for i, (name, size) in enumerate(MODULES.items())
    }
    expected = [k for k in MODULES if k.startswith("layer1.")]
    assert len(expected) == 4  # two blocks × two convs, no downsample in layer1
    np.testing.assert_array_equal(
        layer_weights(weights, "layer1"), np.concatenate([weights[k] for k in expected])
    )
    assert layer_weights(weights, "layer2").size == sum(
        n for k, n in MODULES.items() if k.startswith("layer2.")
    )  # downsample included
    np.testing.assert_array_equal(layer_weights(weights, "fc"), weights["fc"])
    assert layer_weights(weights, "layer5").size == 0


def test_layer_s_w_is_correlation_of_concatenated_layer_weights(model_files):
    frame = run_files(model_files, "prune-0.5").set_index(["layer", "metric"])["value"]
    base = read_dump(model_files / "base.h5", layers=[], weights=True).weights
    model = read_dump(model_files / "prune-0.5.h5", layers=[], weights=True).weights
    for layer in ("layer1", "layer4", "fc", "layer4.1.conv2"):
        w0, w1 = layer_weights(base, layer), layer_weights(model, layer)
        expected = np.corrcoef(w0.astype(np.float64), w1.astype(np.float64))[0, 1]
        assert frame[(layer, "s_w")] == pytest.approx(expected, rel=1e-9), layer
    everything = [np.concatenate(list(w.values())).astype(np.float64) for w in (base, model)]
    expected = np.corrcoef(*everything)[0, 1]
    assert frame[("model", "weight_similarity")] == pytest.approx(expected, rel=1e-9)


def test_different_probe_sets_are_refused(model_files):
    with pytest.raises(CompRepsError, match="probe indices"):
        run_files(model_files, "prune-0.5", dump=model_files / "other" / "prune-0.5.h5")


def test_cli_metrics_then_metrics_table(model_files, tmp_path):
    outs = []
    for model_id in ("prune-0.5", "base"):
        out = tmp_path / f"{model_id}.csv"
        argv = [
            "metrics",
            "--model-id",
            model_id,
            "--base-dump",
            str(model_files / "base.h5"),
            "--dump",
            str(model_files / f"{model_id}.h5"),
            *shlex.split(config_arguments(CONFIG, "metrics", "probe")),
            "--out",
            str(out),
        ]
        assert cli.main(argv) == 0
        outs.append(out)
    single = pd.read_csv(outs[0])
    assert list(single.columns) == list(METRIC_COLUMNS) and single["degenerate"].dtype == bool
    assert set(single["layer"]) == {"layer4.1.conv2", "fc", "layer1", "model"}
    table_path = tmp_path / "tables" / "metrics.csv"
    assert cli.main(["metrics-table", "--inputs", *map(str, outs), "--out", str(table_path)]) == 0
    table = pd.read_csv(table_path)
    assert len(table) == 2 * len(single)
    assert table["model"].iloc[0] == "base" and table["model"].iloc[-1] == "prune-0.5"
    assert table.equals(metrics_table(outs))
    assert (
        cli.main(
            [
                "metrics-table",
                "--inputs",
                str(outs[0]),
                str(outs[0]),
                "--out",
                str(tmp_path / "dup.csv"),
            ]
        )
        == 1
    )


# --------------------------------------------------------------------------- worked by hand


def two_class_points(a: float, b: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Four points, two classes: (−a, ±b, 0) and (a, 0, ±c). Mean 0, orthogonal columns, so
    the scatter matrix is diag(4a², 2b², 2c²); centroids (∓a, 0, 0): d_inter = 2a; d_intra =
    (b + c) / 2; column variances (ddof 0) a², b²/2, c²/2."""
    x = np.array([[-a, b, 0], [-a, -b, 0], [a, 0, c], [a, 0, -c]], dtype=np.float64)
    return x, np.array([0, 0, 1, 1])


def test_class_separation_averages_classes_of_unequal_size():
    """Eq. 12 of 000: d_intra = (1/C) Σ_c (1/N_c) Σ ‖a_i − c_c‖, not the pooled mean."""
    # class 0: 0, 2 (centroid 1, distances 1, 1); class 1: 10, 10, 10, 14 (centroid 11,
    # distances 1, 1, 1, 3): d_inter 10, d_intra (1 + 1.5) / 2 = 1.25 -> 8 (pooled: 7.5)
    points = np.array([0.0, 2.0, 10.0, 10.0, 10.0, 14.0])
    labels = np.array([0, 0, 1, 1, 1, 1])
    x = np.column_stack([points, np.zeros((6, 2))])
    assert class_separation(x, labels).value == pytest.approx(8.0, rel=1e-12)
    centred = x - x.mean(axis=0)
    assert class_separation_from_gram(centred @ centred.T, labels).value == pytest.approx(8.0)
    wide = np.hstack([x, np.zeros((6, 10))])  # d > n: the Gram route
    assert summary(wide, labels).class_separation.value == pytest.approx(8.0)
    # model: class 0 spread to 0, 4 (centroid 2, distances 2): d_inter 9, d_intra 1.75
    model = x.copy()
    model[:2, 0] = [0.0, 4.0]
    s_s = compare_layer(
        summary(x, labels), summary(model, labels), Metric(1), Metric(1), MetricSettings()
    )["s_s"]
    assert s_s == Metric(pytest.approx((9 / 1.75) / 8), False)  # 9/14


def test_effective_rank_ratio_strictly_between_zero_and_one():
    """Singular values (3, 1): p = (3/4, 1/4), r_e = (4/3)^(3/4) · 4^(1/4) = 4 / 3^(3/4);
    against four equal singular values (r_e0 = 4): s_e = 3^(-3/4) ≈ 0.4387."""
    n, d = 30, 12
    u, v = zero_mean_orthonormal(n, 4), orthonormal(d, 4)
    base = u @ np.diag([2.0, 2.0, 2.0, 2.0]) @ v.T
    model = u[:, :2] @ np.diag([3.0, 1.0]) @ v[:, :2].T
    b, m = summary(base), summary(model)
    assert m.effective_rank.value == pytest.approx(4 / 3**0.75, rel=1e-9)
    s_e = compare_layer(b, m, Metric(1), Metric(1), MetricSettings())["s_e"]
    assert s_e.value == pytest.approx(3**-0.75, rel=1e-9) and 0 < s_e.value < 1


def test_decay_similarity_and_both_reps_by_hand():
    """Base eigenvalues ∝ (1, 1/4, 1/9) (δ0 = 2), model ∝ (1, 1/2, 1/3) (δ = 1): s_d = 1/2.
    s_e = 1 (the model's spectrum is flatter), s_alive = 1, s_s = r / r0 with
    r0 = 2a / ((b + c)/2) = 4 / (1/√2 + √2/3) and r = 4 / (1 + √(2/3))."""
    base_x, labels = two_class_points(1.0, 1 / math.sqrt(2), math.sqrt(2) / 3)
    model_x, _ = two_class_points(1.0, 1.0, math.sqrt(2 / 3))
    base, model = summary(base_x, labels), summary(model_x, labels)
    assert base.decay_slope.value == pytest.approx(2.0, rel=1e-12)
    assert model.decay_slope.value == pytest.approx(1.0, rel=1e-12)
    s_s = (4 / (1 + math.sqrt(2 / 3))) / (4 / (1 / math.sqrt(2) + math.sqrt(2) / 3))
    result = compare_layer(base, model, Metric(1), Metric(1), MetricSettings())
    expected = {"s_e": 1.0, "s_alive": 1.0, "s_s": s_s, "s_d": 0.5}
    for name, value in expected.items():
        assert result[name] == Metric(pytest.approx(value, rel=1e-12), False), name
    weighted = 0.15 * 1 + 0.05 * 1 + 0.35 * s_s + 0.45 * 0.5
    assert result["reps_weighted"].value == pytest.approx(weighted, rel=1e-12)
    assert result["reps_equal"].value == pytest.approx((2.5 + s_s) / 4, rel=1e-12)


def test_subspace_alignment_when_the_model_has_rank_below_k():
    """Base spans e1, e2, e3 (k0 = min(20, 3) = 3). A rank-1 model along e1: s_a = 1/3; a rank-2
    model spanning e1 and (e2 + e3)/√2: V0ᵀV = V, singular values (1, 1), s_a = 2/3."""
    base_x, labels = two_class_points(1.0, 1.0, 1.0)
    rank1 = np.array([[-1.0, 0, 0], [-1, 0, 0], [1, 0, 0], [1, 0, 0]])
    rank2 = np.array([[-1.0, 1, 1], [-1, -1, -1], [1, 0, 0], [1, 0, 0]])
    base = summary(base_x, labels)
    one = compare_layer(base, summary(rank1, labels), Metric(1), Metric(1), MetricSettings())
    two = compare_layer(base, summary(rank2, labels), Metric(1), Metric(1), MetricSettings())
    assert one["s_a"].value == pytest.approx(1 / 3, rel=1e-12)
    assert two["s_a"].value == pytest.approx(2 / 3, rel=1e-12)


def test_rank_one_layer_gets_finite_flagged_reps():
    """A rank-1 layer: one positive eigenvalue, so δ = inf and s_d = 0 (the limit of
    1 / (1 + |δ − δ0|)); every class on its centroid with centroids apart: r_s = inf, s_s = 1;
    one of three columns alive: s_alive = 1/3; r_e = 1 against r_e0 = 3 (equal spectrum)."""
    base_x, labels = two_class_points(1.0, math.sqrt(2), math.sqrt(2))  # σ² = (4, 4, 4)
    rank1 = np.array([[-1.0, 0, 0], [-1, 0, 0], [1, 0, 0], [1, 0, 0]])
    model = summary(rank1, labels)
    assert model.decay_slope == Metric(math.inf, True)
    assert model.class_separation == Metric(math.inf, True)
    result = compare_layer(summary(base_x, labels), model, Metric(1), Metric(1), MetricSettings())
    expected = {"s_e": 1 / 3, "s_alive": 1 / 3, "s_s": 1.0, "s_d": 0.0}
    for name, value in expected.items():
        assert result[name].value == pytest.approx(value, rel=1e-12), name
    assert result["s_d"].degenerate and result["s_s"].degenerate
    equal = 0.25 * (1 / 3 + 1 / 3 + 1 + 0)
    assert result["reps_equal"] == Metric(pytest.approx(equal, rel=1e-12), True)


def test_infinite_separation_limits():
    """r_s = inf (no within-class spread): s_s = 1 against a finite r0; against r0 = inf,
    1 if the model is also inf, else 0 (r / r0 → 0)."""
    base_x, labels = two_class_points(1.0, 1.0, 1.0)
    perfect = np.array([[-1.0, 0, 0], [-1, 0, 0], [1, 0, 0], [1, 0, 0]])
    finite, infinite = summary(base_x, labels), summary(perfect, labels)
    settings = MetricSettings()
    assert compare_layer(finite, infinite, Metric(1), Metric(1), settings)["s_s"] == Metric(1, True)
    assert compare_layer(infinite, finite, Metric(1), Metric(1), settings)["s_s"] == Metric(0, True)
    assert compare_layer(infinite, infinite, Metric(1), Metric(1), settings)["s_s"] == Metric(
        1, True
    )


def test_s_f_uses_the_probe_rows_unless_test_is_chosen(model_files):
    """s_f (eq. 7) over the 30 probe rows by default, over all 60 test rows with 'test'."""
    base = read_dump(model_files / "base.h5", layers=[])
    model = read_dump(model_files / "prune-0.5.h5", layers=[])

    def eq7(rows):
        p0 = scipy.special.softmax(base.logits[rows].astype(np.float64), axis=1)
        p1 = scipy.special.softmax(model.logits[rows].astype(np.float64), axis=1)
        cos = np.sum(p0 * p1, 1) / np.linalg.norm(p0, axis=1) / np.linalg.norm(p1, axis=1)
        w = np.maximum(p0.max(1), p1.max(1))
        return float(np.sum(w * cos) / np.sum(w))

    for samples, rows in (("probe", base.probe_indices), ("test", slice(None))):
        frame = model_metrics(
            "prune-0.5",
            model_files / "base.h5",
            model_files / "prune-0.5.h5",
            MetricSettings(samples=samples),
            PROBE,
        )
        got = frame[(frame["layer"] == "model") & (frame["metric"] == "s_f")]["value"].iloc[0]
        assert got == pytest.approx(eq7(rows), rel=1e-9), samples
    assert eq7(base.probe_indices) != pytest.approx(eq7(slice(None)), rel=1e-6)


def test_hierarchy_metrics_at_model_level(model_files):
    """Hidden space = the avgpool rows, logits = the probe rows of /logits (study 004)."""
    frame = run_files(model_files, "prune-0.5")
    model = frame[frame["layer"] == "model"].set_index("metric")["value"]
    base = read_dump(model_files / "base.h5", layers=["avgpool"])
    other = read_dump(model_files / "prune-0.5.h5", layers=["avgpool"])
    h0, h1 = (d.layers["avgpool"].astype(np.float64) for d in (base, other))
    cos = np.sum(h0 * h1, 1) / np.linalg.norm(h0, axis=1) / np.linalg.norm(h1, axis=1)
    assert model["hidden_deviation"] == pytest.approx(np.mean(1 - cos), rel=1e-9)
    rows = base.probe_indices
    for t in (1.0, 0.5):
        p0 = scipy.special.softmax(base.logits[rows].astype(np.float64) / t, axis=1)
        p1 = scipy.special.softmax(other.logits[rows].astype(np.float64) / t, axis=1)
        kl = np.mean(np.sum(scipy.special.rel_entr(p1, p0), axis=1))  # KL(compressed ‖ base)
        assert model[f"kl_t{t:g}"] == pytest.approx(kl, rel=1e-9)
    assert {"logit_parallel", "logit_orthogonal", "kl_estimate_t0.5"} <= set(model.index)
    itself = run_files(model_files, "base")
    same = itself[itself["layer"] == "model"].set_index("metric")["value"]
    for name in ("hidden_deviation", "logit_orthogonal", "kl_t1", "kl_estimate_t0.5"):
        assert same[name] == pytest.approx(0.0, abs=1e-12), name
