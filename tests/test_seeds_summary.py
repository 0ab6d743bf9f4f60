"""The ``seeds`` step: the across-seed spread of the per-seed tables, the verdicts combined
across seeds, and the step end to end on small synthetic per-seed tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from compreps import cli
from compreps.analysis.report.claim_tests import ABSENT, FAILS, HOLDS, UNDECIDED
from compreps.analysis.seeds.spread import (
    SEEDS_ACCURACY_COLUMNS,
    accuracy_spread,
    correlation_spread,
    correlation_values,
    sensitivity_spread,
    sensitivity_values,
    spread,
)
from compreps.analysis.seeds.verdicts import combine_findings, combine_verdicts
from compreps.core.files import CompRepsError
from compreps.core.vocabulary import (
    ACCURACY_TABLE_COLUMNS,
    CORRELATION_COLUMNS,
    FINDING_COLUMNS,
    METRIC_COLUMNS,
    MODEL_LAYER,
    SEED_FIGURE_NAMES,
    SENSITIVITY_COLUMNS,
)

TARGET = "accuracy (= -drop)"


# --------------------------------------------------------------------------- synthetic tables
def accuracy_table(accuracies: dict[str, float]) -> pd.DataFrame:
    """An accuracy table in accuracy-table's columns from ``{model id: accuracy}``."""
    base = accuracies.get("base", math.nan)
    rows = []
    for model, acc in accuracies.items():
        family, _, level = model.rpartition("-") if model != "base" else ("base", "", "nan")
        rows.append(
            {"model": model, "family": family, "level": float(level), "accuracy": acc,
             "param_fraction": 1.0, "macs": 1000, "n_test": 1000,
             "n_correct": round(acc * 1000), "accuracy_low": acc - 0.03,
             "accuracy_high": acc + 0.03, "drop": base - acc, "finetune_epochs": 0}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=list(ACCURACY_TABLE_COLUMNS))


def correlation_table(rows: list[tuple]) -> pd.DataFrame:
    """``(metric, scope, plcc, srcc, krcc)`` rows in correlate's columns."""
    table = pd.DataFrame(np.nan, index=range(len(rows)), columns=list(CORRELATION_COLUMNS))
    table = table.astype(object)
    for i, (metric, scope, plcc, srcc, krcc) in enumerate(rows):
        table.loc[i, ["metric", "scope", "target", "n", "n_excluded"]] = [
            metric,
            scope,
            TARGET,
            6,
            0,
        ]
        table.loc[i, ["plcc", "srcc", "krcc"]] = [plcc, srcc, krcc]
    return table


def sensitivity_table(rows: list[tuple]) -> pd.DataFrame:
    """``(config, plcc, srcc, krcc)`` rows in the sensitivity step's columns."""
    return pd.DataFrame(
        [(c, 0.25, 0.25, 0.25, 0.25, 6, p, s, k) for c, p, s, k in rows],
        columns=list(SENSITIVITY_COLUMNS),
    )


def findings_table(verdicts: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (claim, f"claim {claim}", verdict, "numbers", "test")
            for claim, verdict in verdicts.items()
        ],
        columns=list(FINDING_COLUMNS),
    )


# --------------------------------------------------------------------------- spread
def test_spread_is_mean_sample_sd_min_max_of_the_finite_values():
    stats = spread([0.5, 0.7, math.nan])
    assert stats["n_seeds"] == 2
    assert stats["mean"] == pytest.approx(0.6)
    assert stats["sd"] == pytest.approx(math.sqrt(0.02))  # ((0.1² + 0.1²) / (2 − 1)) ** 0.5
    assert (stats["min"], stats["max"]) == (0.5, 0.7)
    one = spread([0.4])
    assert one["n_seeds"] == 1 and one["mean"] == 0.4 and math.isnan(one["sd"])
    assert spread([math.nan])["n_seeds"] == 0 and math.isnan(spread([])["mean"])


def test_accuracy_spread_per_model_with_a_model_missing_in_one_seed():
    tables = {
        42: accuracy_table({"base": 0.50, "prune-0.5": 0.45, "quant-4": 0.40}),
        7: accuracy_table({"base": 0.70, "quant-4": 0.60, "coreset-0.1": 0.30}),
    }
    out = accuracy_spread(tables).set_index("model")
    assert list(accuracy_spread(tables).columns) == list(SEEDS_ACCURACY_COLUMNS)
    # the first seed's order, then what the second adds
    assert list(out.index) == ["base", "prune-0.5", "quant-4", "coreset-0.1"]
    base = out.loc["base"]
    assert base["n_seeds"] == 2 and base["family"] == "base" and math.isnan(base["level"])
    assert base["accuracy_mean"] == pytest.approx(0.60)
    assert base["accuracy_sd"] == pytest.approx(0.1414213562)
    assert (base["accuracy_min"], base["accuracy_max"]) == (0.50, 0.70)
    assert base["drop_mean"] == 0.0 and base["drop_sd"] == 0.0
    prune = out.loc["prune-0.5"]
    assert prune["n_seeds"] == 1 and prune["accuracy_mean"] == pytest.approx(0.45)
    assert math.isnan(prune["accuracy_sd"]) and prune["drop_mean"] == pytest.approx(0.05)
    quant = out.loc["quant-4"]  # drops 0.10 and 0.10: the same drop from different bases
    assert quant["accuracy_mean"] == pytest.approx(0.50)
    assert quant["drop_mean"] == pytest.approx(0.10) and quant["drop_sd"] == pytest.approx(0.0)
    assert out.loc["coreset-0.1", "family"] == "coreset" and out.loc["coreset-0.1", "level"] == 0.1


def test_correlation_spread_counts_finite_coefficients_only():
    tables = {
        42: correlation_table(
            [("reps_equal", "all", 0.9, 0.5, 0.4), ("gtfa", "all", 0.2, 0.1, 0.0)]
        ),
        7: correlation_table([("reps_equal", "all", 0.8, 0.6, 0.2)]),
        3: correlation_table([("reps_equal", "all", math.nan, 0.7, 0.3)]),
    }
    out = correlation_spread(correlation_values(tables))
    assert list(out.columns) == ["metric", "scope", "target", "coefficient", "n_seeds", "mean",
                                 "sd", "min", "max"]  # fmt: skip
    rows = out.set_index(["metric", "coefficient"])
    plcc = rows.loc[("reps_equal", "plcc")]
    assert plcc["n_seeds"] == 2 and plcc["mean"] == pytest.approx(0.85)
    assert plcc["sd"] == pytest.approx(math.sqrt(0.005))  # 0.0707106781
    assert (plcc["min"], plcc["max"]) == (0.8, 0.9)
    srcc = rows.loc[("reps_equal", "srcc")]
    assert srcc["n_seeds"] == 3 and srcc["mean"] == pytest.approx(0.6)
    assert srcc["sd"] == pytest.approx(0.1)
    krcc = rows.loc[("reps_equal", "krcc")]
    assert krcc["mean"] == pytest.approx(0.3) and krcc["sd"] == pytest.approx(0.1)
    gtfa = rows.loc[("gtfa", "plcc")]
    assert gtfa["n_seeds"] == 1 and gtfa["mean"] == 0.2 and math.isnan(gtfa["sd"])
    assert set(out["target"]) == {TARGET}
    # the partial coefficients are summarised too (all NaN here: no seed counts)
    assert rows.loc[("reps_equal", "plcc_partial"), "n_seeds"] == 0


def test_sensitivity_spread_of_the_named_configurations_only():
    tables = {
        42: sensitivity_table([("weighted", 0.90, 0.8, 0.7), ("equal", 0.80, 0.7, 0.6),
                               ("grid", 0.10, 0.1, 0.1)]),
        7: sensitivity_table([("weighted", 0.96, 0.9, 0.8), ("equal", 0.70, 0.7, 0.6),
                              ("grid", 0.99, 0.1, 0.1)]),
    }  # fmt: skip
    out = sensitivity_spread(sensitivity_values(tables))
    assert list(out.columns) == ["config", "coefficient", "n_seeds", "mean", "sd", "min", "max"]
    assert "grid" not in set(out["config"])
    weighted = out[(out["config"] == "weighted") & (out["coefficient"] == "plcc")].iloc[0]
    assert weighted["mean"] == pytest.approx(0.93)
    assert weighted["sd"] == pytest.approx(0.06 / math.sqrt(2))
    assert (weighted["min"], weighted["max"]) == (0.90, 0.96)
    equal_srcc = out[(out["config"] == "equal") & (out["coefficient"] == "srcc")].iloc[0]
    assert equal_srcc["sd"] == pytest.approx(0.0)


def test_a_key_twice_in_one_seed_is_an_error():
    table = accuracy_table({"base": 0.5, "quant-4": 0.4})
    with pytest.raises(CompRepsError, match="seed 7: the accuracy table lists quant-4 twice"):
        accuracy_spread({7: pd.concat([table, table.iloc[[1]]])})


# --------------------------------------------------------------------------- verdicts
def test_every_seed_holds_or_fails_for_the_combined_verdict():
    verdict, reason = combine_verdicts({42: HOLDS, 7: HOLDS, 3: HOLDS})
    assert verdict == HOLDS and "42, 7, 3" in reason
    verdict, reason = combine_verdicts({42: FAILS, 7: FAILS})
    assert verdict == FAILS and "42, 7" in reason


def test_disagreeing_seeds_leave_the_claim_undecided_and_are_named():
    verdict, reason = combine_verdicts({42: HOLDS, 7: FAILS, 3: HOLDS})
    assert verdict == UNDECIDED
    assert "seeds disagree" in reason
    assert f"{HOLDS} on 42, 3" in reason and f"{FAILS} on 7" in reason


def test_one_undecided_or_absent_seed_leaves_the_claim_undecided():
    verdict, reason = combine_verdicts({42: HOLDS, 7: UNDECIDED})
    assert verdict == UNDECIDED and f"{UNDECIDED} on 7" in reason and f"{HOLDS} on 42" in reason
    verdict, reason = combine_verdicts({42: FAILS, 7: ABSENT})
    assert verdict == UNDECIDED and f"{ABSENT} on 7" in reason
    assert combine_verdicts({42: UNDECIDED, 7: UNDECIDED})[0] == UNDECIDED


def test_a_claim_no_seed_has_is_not_in_this_run():
    verdict, reason = combine_verdicts({42: ABSENT, 7: ABSENT})
    assert verdict == ABSENT and "no seed" in reason


@pytest.mark.parametrize("verdict", [HOLDS, FAILS, UNDECIDED, ABSENT])
def test_one_seed_gives_its_own_verdict(verdict):
    combined, reason = combine_verdicts({42: verdict})
    assert combined == verdict and "42" in reason


def test_an_unknown_verdict_is_an_error():
    with pytest.raises(CompRepsError, match="unknown verdict"):
        combine_verdicts({42: HOLDS, 7: "holds mostly"})


def test_combine_findings_per_claim_with_a_claim_missing_in_one_seed():
    tables = {
        42: findings_table({"a": HOLDS, "b": HOLDS, "c": ABSENT}),
        7: findings_table({"a": HOLDS, "b": FAILS, "c": ABSENT, "d": HOLDS}),
    }
    out = combine_findings(tables).set_index("id")
    assert list(out.index) == ["a", "b", "c", "d"]
    assert out.loc["a", "per_seed"] == f"42: {HOLDS}; 7: {HOLDS}"
    assert out.loc["a", "verdict"] == HOLDS
    assert out.loc["b", "verdict"] == UNDECIDED and out.loc["c", "verdict"] == ABSENT
    # seed 42's table lacks claim d: not in that seed's run, so not every seed holds
    assert out.loc["d", "per_seed"] == f"42: {ABSENT}; 7: {HOLDS}"
    assert out.loc["d", "verdict"] == UNDECIDED and out.loc["d", "claim"] == "claim d"


# --------------------------------------------------------------------------- the step
MODELS = ["base", "coreset-0.5", "coreset-0.1", "prune-0.5", "prune-0.9", "quant-4", "quant-2"]
TABLE2 = ["weight_similarity", "prediction_agreement", "logits_l2", "gtfa", "reps_equal"]
SEEDS = [42, 7]
# each seed's PLCC (scope all) of each Table 2 metric: distinct, hand-chosen values
PLCC = {
    42: {"weight_similarity": 0.412, "prediction_agreement": 0.871, "logits_l2": -0.733,
         "gtfa": 0.654, "reps_equal": 0.902},
    7: {"weight_similarity": 0.288, "prediction_agreement": 0.846, "logits_l2": -0.791,
        "gtfa": 0.617, "reps_equal": 0.938},
}  # fmt: skip
SRCC = {42: 0.555, 7: 0.444}  # every metric's SRCC on each seed
FINDINGS = {
    42: {"reps_equal_best_plcc": HOLDS, "table2_signs": HOLDS, "gtfa_plcc": FAILS},
    7: {"reps_equal_best_plcc": HOLDS, "table2_signs": UNDECIDED, "gtfa_plcc": FAILS},
}


def write_seed(root, seed: int, index: int) -> dict[str, str]:
    """One seed's tables and report under ``root/seed-<seed>``; returns option -> path."""
    folder = root / f"seed-{seed}"
    (folder / "tables").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    accuracies = {m: 0.9 - 0.1 * i + 0.02 * index for i, m in enumerate(MODELS)}
    metric_rows = [
        (m, *accuracy_table({m: 0.0}).loc[0, ["family", "level"]], MODEL_LAYER, metric,
         1.0 - 0.1 * i + 0.01 * rng.normal(), False)
        for i, m in enumerate(MODELS) for metric in TABLE2
    ]  # fmt: skip
    tables = {
        "accuracy": accuracy_table(accuracies),
        "metrics": pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS)),
        "correlations": correlation_table(
            [(m, "all", PLCC[seed][m], SRCC[seed], 0.3) for m in TABLE2]
        ),
        "sensitivity": sensitivity_table([("weighted", 0.95 - 0.1 * index, 0.9, 0.8),
                                          ("equal", 0.91, 0.9, 0.8), ("grid", 0.5, 0.5, 0.5)]),
        "findings": findings_table(FINDINGS[seed]),
    }  # fmt: skip
    paths = {}
    for name, table in tables.items():
        paths[name] = str(folder / "tables" / f"{name}.csv")
        table.to_csv(paths[name], index=False)
    paths["reports"] = str(folder / "report.md")
    (folder / "report.md").write_text(f"# seed {seed}\n")
    return paths


def seeds_argv(root, seeds=SEEDS, config=None) -> list[str]:
    per_seed = [write_seed(root, seed, i) for i, seed in enumerate(seeds)]
    argv = ["seeds", "--seeds", *map(str, seeds)]
    for option in ("accuracy", "metrics", "correlations", "sensitivity", "findings", "reports"):
        argv += [f"--{option}", *(paths[option] for paths in per_seed)]
    config = {"coreset": {"init": "shared"}} if config is None else config
    argv += ["--config-json", json.dumps(config)]
    for name in ("accuracy", "correlations", "sensitivity", "findings"):
        argv += [f"--out-{name}", str(root / "tables" / f"seeds_{name}.csv")]
    return argv + ["--figures-dir", str(root / "figures"), "--out", str(root / "report.md")]


def test_the_step_writes_every_output(tmp_path):
    assert cli.main(seeds_argv(tmp_path)) == 0
    accuracy = pd.read_csv(tmp_path / "tables" / "seeds_accuracy.csv").set_index("model")
    # base: 0.90 on seed 42, 0.92 on seed 7
    assert accuracy.loc["base", "accuracy_mean"] == pytest.approx(0.91)
    assert accuracy.loc["base", "accuracy_sd"] == pytest.approx(0.02 / math.sqrt(2))
    correlations = pd.read_csv(tmp_path / "tables" / "seeds_correlations.csv")
    gtfa = correlations[
        (correlations["metric"] == "gtfa") & (correlations["coefficient"] == "plcc")
    ]
    assert gtfa["mean"].iloc[0] == pytest.approx((0.654 + 0.617) / 2)
    sensitivity = pd.read_csv(tmp_path / "tables" / "seeds_sensitivity.csv")
    assert set(sensitivity["config"]) == {"weighted", "equal"}
    findings = pd.read_csv(tmp_path / "tables" / "seeds_findings.csv").set_index("id")
    assert findings.loc["reps_equal_best_plcc", "verdict"] == HOLDS
    assert findings.loc["table2_signs", "verdict"] == UNDECIDED
    assert findings.loc["gtfa_plcc", "verdict"] == FAILS
    for name in SEED_FIGURE_NAMES:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{name}.{ext}").stat().st_size > 1000, name


def test_the_report_shows_every_table2_metric_with_each_seeds_plcc(tmp_path):
    assert cli.main(seeds_argv(tmp_path)) == 0
    text = (tmp_path / "report.md").read_text()
    lines = text.splitlines()
    for metric in TABLE2:
        row = next(line for line in lines if line.startswith(f"| {metric} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:3] == [f"{PLCC[42][metric]:.3f}", f"{PLCC[7][metric]:.3f}"], row
        assert cells[4] == f"{(PLCC[42][metric] + PLCC[7][metric]) / 2:.3f}"
        assert cells[5] == f"{abs(PLCC[42][metric] - PLCC[7][metric]) / math.sqrt(2):.3f}"
    assert f"| {SRCC[42]:.3f} | {SRCC[7]:.3f} |" in text  # the SRCC table
    assert "**shared**" in text and "not recorded" not in text
    assert "every seed's own test" in text  # the combination rule
    for seed in SEEDS:
        assert f"(seed-{seed}/report.md)" in text
    for name in SEED_FIGURE_NAMES:
        assert f"](figures/{name}.png)" in text and f"](figures/{name}.pdf)" in text
    assert "training noise is not measured" not in text


def test_one_seed_says_training_noise_is_not_measured(tmp_path):
    assert cli.main(seeds_argv(tmp_path, seeds=[42], config={})) == 0
    text = (tmp_path / "report.md").read_text()
    assert "training noise is not measured (one seed)" in text
    assert "not recorded" in text  # no coreset.init in the config
    accuracy = pd.read_csv(tmp_path / "tables" / "seeds_accuracy.csv")
    assert accuracy["accuracy_sd"].isna().all() and (accuracy["n_seeds"] == 1).all()
    findings = pd.read_csv(tmp_path / "tables" / "seeds_findings.csv").set_index("id")
    assert findings["verdict"].to_dict() == FINDINGS[42]


def test_a_list_of_the_wrong_length_is_a_clear_error(tmp_path, capsys):
    argv = seeds_argv(tmp_path)
    at = argv.index("--metrics")
    del argv[at + 2]  # one metrics table for two seeds
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "--metrics lists 1 file(s) for 2 seed(s) (42, 7)" in err
    assert not (tmp_path / "report.md").exists()


def test_a_duplicate_seed_or_a_missing_file_is_a_clear_error(tmp_path, capsys):
    argv = seeds_argv(tmp_path)
    argv[argv.index("7")] = "42"
    assert cli.main(argv) == 1
    assert "--seeds lists seed(s) 42 twice" in capsys.readouterr().err
    argv = seeds_argv(tmp_path / "other")
    (tmp_path / "other" / "seed-7" / "report.md").unlink()
    assert cli.main(argv) == 1
    assert "seed-7/report.md (seed 7) do not exist" in capsys.readouterr().err
