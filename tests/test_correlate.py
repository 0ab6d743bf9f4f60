"""Correlation (Table 2) and sensitivity (Table 3) tables against scipy on synthetic tables."""

from __future__ import annotations

import math
import warnings
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from compreps.analysis.paper import NAMED_REPS_CONFIGS
from compreps.analysis.statistics import correlate, sensitivity
from compreps.analysis.statistics.rank_stats import point_estimates
from compreps.core.files import CompRepsError
from compreps.core.settings import CorrelationSettings, MetricsSettings
from compreps.core.vocabulary import (
    ACCURACY_COLUMNS,
    COEFFICIENTS,
    CORRELATION_COLUMNS,
    METRIC_COLUMNS,
    SENSITIVITY_COLUMNS,
)

# Table 3's named configurations (tests/test_paper_values.py checks the paper's numbers) with
# metrics.reps.weights changed to (0.1, 0.2, 0.3, 0.4)
NAMED = {**NAMED_REPS_CONFIGS, "weighted": (0.1, 0.2, 0.3, 0.4)}


def corr_settings(bootstrap=1000, confidence=0.95, seed=42):
    return CorrelationSettings(bootstrap=bootstrap, confidence=confidence, seed=seed)


LEVELS = {
    "coreset": [0.8, 0.5, 0.3, 0.1, 0.05, 0.01],
    "prune": [0.1, 0.3, 0.5, 0.7, 0.9],
    "quant": [8, 6, 4, 3, 2, 1],
}
COMPONENTS = ("s_e", "s_alive", "s_s", "s_d")


def synthetic_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model-level rows for base + 17 compressed models: similarities fall with the drop,
    a divergence rises with it; plus per-layer rows and raw descriptors that must be ignored."""
    rng = np.random.default_rng(seed)
    models = [("base", "base", math.nan)] + [
        (f"{family}-{level}", family, float(level))
        for family, levels in LEVELS.items()
        for level in levels
    ]
    metric_rows, accuracy_rows = [], []
    for model, family, level in models:
        drop = 0.0 if family == "base" else float(rng.uniform(0.0, 0.5))
        accuracy_rows.append((model, family, level, 0.9 - drop))
        values = {
            "reps_weighted": 1.0 - drop + rng.normal(0, 0.05),
            "gtfa": 1.0 - 0.5 * drop + rng.normal(0, 0.1),
            "kl_divergence": 2.0 * drop + rng.normal(0, 0.05),
            "effective_rank": rng.uniform(1, 10),
            **{
                name: 1.0 - drop * rng.uniform(0.5, 1.5) + rng.normal(0, 0.05)
                for name in COMPONENTS
            },
        }
        for metric, value in values.items():
            metric_rows.append((model, family, level, "model", metric, value, False))
            metric_rows.append((model, family, level, "fc", metric, rng.normal(), False))
    metrics = pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS))
    accuracy = pd.DataFrame(accuracy_rows, columns=list(ACCURACY_COLUMNS))
    return metrics, accuracy


def vectors(metrics, accuracy, metric, family=None):
    rows = metrics[
        (metrics["layer"] == "model")
        & (metrics["metric"] == metric)
        & (metrics["family"] != "base")
    ]
    if family:
        rows = rows[rows["family"] == family]
    acc = accuracy.set_index("model")["accuracy"]
    return rows["value"].to_numpy(float), rows["model"].map(acc).to_numpy(float)


def row(table, metric, scope):
    return table[(table["metric"] == metric) & (table["scope"] == scope)].iloc[0]


@pytest.fixture(scope="module")
def tables():
    return synthetic_tables()


@pytest.fixture(scope="module")
def corr(tables):
    return correlate.correlation_table(*tables, corr_settings(bootstrap=300, seed=7))


def test_columns_and_rows(corr):
    assert list(corr.columns) == list(CORRELATION_COLUMNS)
    # raw descriptors are never correlated; each metric gets the four scopes
    assert "effective_rank" not in set(corr["metric"])
    assert len(corr) == 7 * 4
    assert set(corr["scope"]) == {"all", "coreset", "prune", "quant"}
    assert row(corr, "gtfa", "all")["n"] == 17  # base excluded
    assert row(corr, "gtfa", "prune")["n"] == 5


@pytest.mark.parametrize(
    "metric,scope", [("gtfa", "all"), ("kl_divergence", "quant"), ("reps_weighted", "coreset")]
)
def test_coefficients_equal_scipy(tables, corr, metric, scope):
    x, y = vectors(*tables, metric, None if scope == "all" else scope)
    got = row(corr, metric, scope)
    for coef, func in (
        ("plcc", stats.pearsonr),
        ("srcc", stats.spearmanr),
        ("krcc", stats.kendalltau),
    ):
        expected = func(x, y)
        assert got[coef] == pytest.approx(expected.statistic, abs=1e-12)
        assert got[f"{coef}_p"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_sign_convention(corr):
    # similarities fall as the drop grows -> positive; a divergence rises -> negative
    assert row(corr, "reps_weighted", "all")["plcc"] > 0.9
    assert row(corr, "kl_divergence", "all")["plcc"] < -0.9
    assert row(corr, "kl_divergence", "all")["srcc"] < -0.8


def test_bootstrap_interval_contains_estimate_and_is_seeded(tables, corr):
    for _, r in corr[corr["scope"] == "all"].iterrows():
        for coef in COEFFICIENTS:
            assert r[f"{coef}_low"] <= r[coef] <= r[f"{coef}_high"]
    again = correlate.correlation_table(*tables, corr_settings(bootstrap=300, seed=7))
    pd.testing.assert_frame_equal(corr, again)
    other = correlate.correlation_table(*tables, corr_settings(bootstrap=300, seed=8))
    assert not np.allclose(corr["plcc_low"], other["plcc_low"])
    # wider confidence, wider interval
    wide = correlate.correlation_table(
        *tables, corr_settings(bootstrap=300, confidence=0.99, seed=7)
    )
    assert (
        wide["plcc_high"] - wide["plcc_low"] >= corr["plcc_high"] - corr["plcc_low"] - 1e-12
    ).all()


def test_bca_intervals_are_scipys_and_fall_back_to_percentile():
    """A well-behaved sample gets scipy's BCa interval (paired resampling of the models, the
    same seed); ties that make resamples constant break BCa: percentile, estimate inside."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    settings = corr_settings(bootstrap=400, confidence=0.9, seed=11)
    estimates = point_estimates(x, y)
    got = correlate.bootstrap_intervals(x, y, estimates, settings)
    assert got["ci_method"] == "BCa"
    for coef, func in (("plcc", stats.pearsonr), ("srcc", stats.spearmanr)):
        direct = stats.bootstrap(
            (x, y),
            lambda a, b, func=func: func(a, b).statistic,
            n_resamples=400,
            confidence_level=0.9,
            method="BCa",
            paired=True,
            vectorized=False,
            rng=np.random.default_rng(11),
        ).confidence_interval
        assert got[f"{coef}_low"] == pytest.approx(direct.low, abs=1e-9)
        assert got[f"{coef}_high"] == pytest.approx(direct.high, abs=1e-9)
    # one model far from 19 tied ones: many resamples constant, BCa undefined
    tied = np.array([1.0] * 19 + [0.0])
    target = np.array([0.9] * 19 + [0.1]) + rng.normal(0, 0.01, size=20)
    estimates = point_estimates(tied, target)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fallback = correlate.bootstrap_intervals(tied, target, estimates, settings)
    assert (
        fallback["ci_method"]
        == "plcc percentile; srcc percentile+estimate; krcc percentile+estimate"
    )
    for coef in COEFFICIENTS:
        assert -1 <= fallback[f"{coef}_low"] <= estimates[coef] <= fallback[f"{coef}_high"] <= 1


def test_nan_excluded_degenerate_kept_and_counted(tables):
    metrics, accuracy = tables
    metrics = metrics.copy()
    sel = (metrics["layer"] == "model") & (metrics["metric"] == "gtfa")
    metrics.loc[sel & (metrics["model"] == "prune-0.3"), "value"] = np.nan
    metrics.loc[sel & (metrics["model"] == "quant-2"), "degenerate"] = True
    table = correlate.correlation_table(metrics, accuracy, corr_settings(bootstrap=50))
    got = row(table, "gtfa", "all")
    assert (got["n"], got["n_excluded"]) == (16, 1)  # the degenerate model counts
    assert (row(table, "gtfa", "prune")["n"], row(table, "gtfa", "prune")["n_excluded"]) == (4, 1)
    assert "1 model(s) left out: NaN value" in got["note"]
    keep = sel & ~metrics["model"].isin(["base", "prune-0.3"])
    x = metrics.loc[keep, "value"].to_numpy(float)
    y = metrics.loc[keep, "model"].map(accuracy.set_index("model")["accuracy"]).to_numpy(float)
    assert got["plcc"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


def test_too_few_or_constant_models_give_nan_with_a_note(tables):
    metrics, accuracy = tables
    metrics = metrics.copy()
    sel = (metrics["layer"] == "model") & (metrics["family"] == "prune")
    metrics.loc[sel & (metrics["metric"] == "gtfa") & (metrics["level"] > 0.2), "value"] = np.nan
    metrics.loc[(metrics["layer"] == "model") & (metrics["metric"] == "s_e"), "value"] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = correlate.correlation_table(metrics, accuracy, corr_settings(bootstrap=50))
    few = row(table, "gtfa", "prune")
    assert (few["n"], few["n_excluded"]) == (1, 4)
    text = ("ci_method", "note", "target", "influence", "n_families")
    numbers = [c for c in list(CORRELATION_COLUMNS)[4:] if c not in text]
    assert few[numbers].isna().all() and few["ci_method"] == "" and few["influence"] == ""
    assert few["n_families"] == 0 and few["target"] == "accuracy (= -drop)"
    assert few["note"].startswith("fewer than 3 models with a value")
    constant = row(table, "s_e", "all")
    assert constant["n"] == 17 and math.isnan(constant["plcc"]) and math.isnan(constant["krcc"])
    assert constant["note"] == "metric constant (1) over the models: no coefficient"
    assert (
        row(table, "gtfa", "all")["note"]
        == "4 model(s) left out: NaN value (non-finite activations/logits)"
    )


def test_missing_accuracy_is_a_clear_error(tables):
    metrics, accuracy = tables
    with pytest.raises(CompRepsError, match="quant-1"):
        correlate.correlation_table(
            metrics, accuracy[accuracy["model"] != "quant-1"], corr_settings()
        )


def test_simplex_grid():
    grid = sensitivity.simplex_grid(0.05)
    assert grid.shape == (comb(23, 3), 4) == (1771, 4)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert (grid >= 0).all()
    assert len(np.unique(np.round(grid * 20).astype(int), axis=0)) == 1771
    assert sensitivity.simplex_grid(0.25).shape == (35, 4)
    with pytest.raises(CompRepsError):
        sensitivity.simplex_grid(0.3)


def test_sensitivity_table(tables):
    metrics, accuracy = tables
    table = sensitivity.sensitivity_table(metrics, accuracy, 0.05, NAMED)
    assert list(table.columns) == list(SENSITIVITY_COLUMNS)
    assert (table["config"] == "grid").sum() == 1771
    assert list(table["config"][:6]) == list(NAMED)
    weights = table[["w_effective_rank", "w_alive", "w_separation", "w_decay"]]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (table["n"] == 17).all()
    model_rows = metrics[(metrics["layer"] == "model") & (metrics["family"] != "base")]
    wide = model_rows.pivot(index="model", columns="metric", values="value")
    acc = accuracy.set_index("model")["accuracy"].loc[wide.index].to_numpy()
    for i in (0, 1, 6, 500, 1776):  # named configurations and grid points
        w = weights.iloc[i].to_numpy()
        reps = wide[list(COMPONENTS)].to_numpy() @ w
        assert table["plcc"].iloc[i] == pytest.approx(stats.pearsonr(reps, acc)[0], abs=1e-12)
        assert table["srcc"].iloc[i] == pytest.approx(stats.spearmanr(reps, acc)[0], abs=1e-12)
        assert table["krcc"].iloc[i] == pytest.approx(stats.kendalltau(reps, acc)[0], abs=1e-12)


def test_sensitivity_keeps_degenerate_models_and_skips_nan(tables):
    metrics, accuracy = tables
    metrics = metrics.copy()
    sel = (metrics["layer"] == "model") & (metrics["metric"] == "s_d")
    metrics.loc[sel & (metrics["model"] == "coreset-0.5"), "degenerate"] = True
    metrics.loc[sel & (metrics["model"] == "prune-0.9"), "value"] = np.nan
    table = sensitivity.sensitivity_table(metrics, accuracy, 0.5, NAMED)
    assert (table["n"] == 16).all()


METRICS_ARGS = [
    "--metrics-reps-weights-effective-rank", "0.1", "--metrics-reps-weights-alive", "0.2",
    "--metrics-reps-weights-separation", "0.3", "--metrics-reps-weights-decay", "0.4",
    "--metrics-reps-alive-threshold", "0.01", "--metrics-reps-decay-top-m", "20",
    "--metrics-gtfa-beta", "0.45", "--metrics-gtfa-gamma", "0.45", "--metrics-gtfa-top-k", "20",
    "--metrics-gtfa-output-samples", "probe", "--metrics-hierarchy-temperatures", "1", "0.5",
]  # fmt: skip
CORRELATION_ARGS = ["--correlation-bootstrap", "10", "--correlation-confidence", "0.9",
                    "--correlation-seed", "1"]  # fmt: skip


def test_named_configurations_come_from_the_settings():
    from compreps.core.settings import GtfaSettings, HierarchySettings, RepsSettings, RepsWeights

    metrics = MetricsSettings(
        RepsSettings(RepsWeights(0.1, 0.2, 0.3, 0.4), 0.01, 20),
        GtfaSettings(0.45, 0.45, 20, "probe"),
        HierarchySettings((1.0, 0.5)),
    )
    assert sensitivity.named_reps_configs(metrics) == NAMED
    assert list(sensitivity.named_reps_configs(metrics))[0] == "weighted"


def test_cli_writes_both_tables(tmp_path, tables):
    metrics, accuracy = tables
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    accuracy.to_csv(tmp_path / "accuracy.csv", index=False)
    common = [
        "--metrics",
        str(tmp_path / "metrics.csv"),
        "--accuracy",
        str(tmp_path / "accuracy.csv"),
    ]
    assert (
        correlate.main(
            [
                "correlate",
                *common,
                "--correlation-bootstrap",
                "100",
                "--correlation-confidence",
                "0.9",
                "--correlation-seed",
                "1",
                "--out",
                str(tmp_path / "c.csv"),
            ]
        )
        == 0
    )
    assert (
        sensitivity.main(
            [
                "sensitivity",
                *common,
                "--sensitivity-grid-step",
                "0.25",
                *METRICS_ARGS,
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
        == 0
    )
    corr = pd.read_csv(tmp_path / "c.csv")
    sens = pd.read_csv(tmp_path / "s.csv")
    assert list(corr.columns) == list(CORRELATION_COLUMNS) and len(corr) == 28
    assert list(sens.columns) == list(SENSITIVITY_COLUMNS) and len(sens) == 6 + 35
    with pytest.raises(CompRepsError, match="does not exist"):
        correlate.main(
            [
                "correlate",
                "--metrics",
                str(tmp_path / "nope.csv"),
                "--accuracy",
                str(tmp_path / "accuracy.csv"),
                "--out",
                str(tmp_path / "x.csv"),
                *CORRELATION_ARGS,
            ]
        )


def with_structured_models(metrics: pd.DataFrame, accuracy: pd.DataFrame, levels=(0.1, 0.3, 0.5)):
    """The synthetic tables plus three struct_l1 models whose metrics fall opposite to their
    accuracy (so pooling them would change every coefficient)."""
    extra_metrics, extra_accuracy = [], []
    base_rows = metrics[(metrics["model"] == "coreset-0.8") & (metrics["layer"] == "model")]
    for i, level in enumerate(levels):
        model = f"struct_l1-{level}"
        extra_accuracy.append((model, "struct_l1", level, 0.8 - 0.2 * i))
        for metric in base_rows["metric"]:
            extra_metrics.append((model, "struct_l1", level, "model", metric, 0.1 * i, False))
    metrics = pd.concat(
        [metrics, pd.DataFrame(extra_metrics, columns=list(METRIC_COLUMNS))], ignore_index=True
    )
    accuracy = pd.concat(
        [accuracy, pd.DataFrame(extra_accuracy, columns=list(ACCURACY_COLUMNS))],
        ignore_index=True,
    )
    return metrics, accuracy


def test_paper_scope_pools_the_papers_three_families_only_when_others_exist(tables):
    settings = corr_settings(bootstrap=0)
    alone = correlate.correlation_table(*tables, settings)
    assert "paper" not in set(alone["scope"])  # it would repeat "all"
    metrics, accuracy = with_structured_models(*tables)
    table = correlate.correlation_table(metrics, accuracy, settings)
    assert row(table, "gtfa", "all")["n"] == 20
    paper = row(table, "gtfa", "paper")
    assert paper["n"] == 17  # 6 coresets + 5 pruned + 6 quantized
    x, y = vectors(*tables, "gtfa")  # the 17 models of the paper's families
    assert paper["plcc"] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert row(table, "gtfa", "struct_l1")["n"] == 3


def test_sensitivity_pools_the_papers_families(tables):
    metrics, accuracy = with_structured_models(*tables)
    pooled = sensitivity.sensitivity_table(metrics, accuracy, 0.5, NAMED)
    paper_only = sensitivity.sensitivity_table(*tables, 0.5, NAMED)
    assert (pooled["n"] == 17).all()
    pd.testing.assert_frame_equal(pooled, paper_only)
