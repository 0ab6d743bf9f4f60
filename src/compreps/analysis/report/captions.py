"""Every caption of the report, written once: ``results/report.md`` prints them and the
Snakemake HTML report reads them from ``workflow/report/<name>.rst``, which are generated from
:data:`CAPTIONS` (``python -m compreps.analysis.report.captions workflow/report``; a test
checks that the files agree)."""

from __future__ import annotations

import sys
from pathlib import Path

CAPTIONS = {
    # tables
    "accuracy": "Table 1: test accuracy of the base model and of every compressed model "
    "(``model, family, level, accuracy``), its parameters kept and multiply-accumulates "
    "(``param_fraction, macs``), the test-set size and correct count (``n_test, n_correct``), "
    "the 95% Wilson interval (``accuracy_low, accuracy_high``) and the drop from the base "
    "(``drop``).",
    "metrics": "All per-layer and model-level metrics of every model, long format "
    "(``model, family, level, layer, metric, value, degenerate``).",
    "correlations": "Table 2: PLCC, SRCC and KRCC of each model-level metric with the "
    "compressed models' accuracy (column ``target``: accuracy = minus the drop, so similarities "
    "come out positive), pooled and per family, with bootstrap intervals over models (BCa, "
    "percentile where BCa fails: column ``ci_method``), p-values, the models used (n) and those "
    "left out for a NaN value (degenerate values are kept); beside each pooled coefficient the "
    "partial PLCC/SRCC controlling for family, the granulated Kendall, the leave-one-family-out "
    "and leave-one-model-out ranges and the influential models (``influence``).",
    "sensitivity": "Table 3: REPS recombined from its components (s_e, s_alive, s_s, s_d) with "
    "the paper's six named weight configurations (weighted = this run's REPS weights) and every "
    "point of a simplex grid, correlated with accuracy (= minus the drop) over the compressed "
    "models of the paper's three families (coreset, prune, quant).",
    "report": "The reproduction report: how far this run is from the paper's scale, Tables 1-3 "
    "with the paper's printed value beside every row (sources listed), each claim tested on "
    "this run (holds / does not hold / undecided, with its test), the figures, the "
    "configuration and the software versions.",
    # across seeds (step ``seeds``)
    "seeds_accuracy": "Test accuracy across the replicate seeds (``train.seeds``): per model, "
    "the seeds that have it (``n_seeds``) and the mean, sample standard deviation (ddof = 1; "
    "empty with one seed), minimum and maximum over the seeds of its accuracy "
    "(``accuracy_mean, accuracy_sd, accuracy_min, accuracy_max``) and of its drop from its "
    "seed's base (``drop_*``).",
    "seeds_correlations": "Table 2 across seeds, long format: per metric, scope, target and "
    "coefficient (PLCC, SRCC, KRCC, and the partial PLCC and SRCC controlling for family), "
    "the seeds with a defined coefficient (``n_seeds``) and their mean, sample standard "
    "deviation, minimum and maximum.",
    "seeds_sensitivity": "Table 3 across seeds: per named REPS weight configuration and "
    "coefficient (PLCC, SRCC, KRCC), the seeds with a value (``n_seeds``) and their mean, "
    "sample standard deviation, minimum and maximum (the simplex grid is left out).",
    "seeds_findings": "Each claim's verdict on every seed (``per_seed``) and across seeds: "
    "holds (does not hold) only when every seed's own test holds (does not hold), so the "
    "effect exceeds the seed-to-seed range as well as each run's own test; not in this run "
    "when no seed has it; otherwise undecided, the reason naming the seeds of each verdict.",
    "seeds_report": "The across-seed report: what a seed replicates, the coreset "
    "initialisation, every model's accuracy and every Table 2 metric's PLCC and SRCC on each "
    "seed with their mean, standard deviation and range, Table 3's named configurations on "
    "each seed, each claim's verdict per seed and combined, the across-seed figures and links "
    "to each seed's full report.",
    # figures
    "fig1_weight_histograms": "Fig. 1: weight histograms (all Conv2d + Linear weights) of "
    "ORG, C50, P50 and Q4, 256 bins, log counts.",
    "fig2_representations": "Fig. 2: effective rank at FC, dead-unit fraction and class "
    "separation per layer, FC class separation vs prediction agreement (every model in grey, "
    "the seven named ones in their legend colours, Pearson r over all), eigenvalue decay at FC "
    "(divided by the largest), and the REPS, GTFA and linear-CKA trajectories over L1-L4, FC "
    "for ORG, C50, C10, P50, P90, Q4, Q2.",
    "accuracy_vs_level": "Test accuracy against compression level per family, with each "
    "accuracy's 95% Wilson interval; the dashed line is the base model (ORG).",
    "metric_vs_accuracy": "Every Table 2 metric against the accuracy drop over the models set "
    "beside the paper (the paper's three families when the run has others), one colour and "
    "marker per family, with the least-squares line; r is Pearson's against the drop, i.e. "
    "Table 2's PLCC (against accuracy) with its sign flipped, with its bootstrap interval.",
    "sensitivity_heatmap": "PLCC of REPS recombined with simplex-grid weights, over "
    "(w_separation, w_decay); left the best, right the worst PLCC over every split of the "
    "remaining weight between w_effective_rank and w_alive. Star: the configured weights "
    "(Table 3's ``weighted`` row); circle: equal weights; white outline: cells with "
    "PLCC ≥ 0.96, the paper's claimed floor.",
    "accuracy_vs_params": "Test accuracy against the fraction of the base's parameters kept, "
    "one line per family (star: base); families that keep the dense shape (coreset, "
    "quantization, pruning) are points at 1, set side by side so none hides another; pruning "
    "also dashed at its measured non-zero Conv2d/Linear weight fraction.",
    "hierarchy_deviation": "Hidden, logit and probability deviation from the base (1 − cos on "
    "the probe set, study 004; probability space at τ = 1 where the run has it) against each "
    "family's level, log y; one panel per family of the run (the study's three families "
    "always, saying when they are absent).",
    "correlation_forest": "This run's PLCC of each Table 2 metric with accuracy (= −drop) and "
    "its bootstrap interval (black), its partial PLCC controlling for family (open blue "
    "circle), and the paper's PLCC (red diamond, Table 2 of 000).",
    # across seeds (step ``seeds``)
    "seeds_accuracy_vs_level": "Test accuracy against compression level across seeds, one "
    "panel per family: each seed's accuracy (open marker, one shape per seed, in the family's "
    "colour) and the mean over the seeds (line); the dashed line is the base's mean over the "
    "seeds, the grey band its range over the seeds.",
    "seeds_correlation_spread": "Left: each Table 2 metric's PLCC with accuracy (= −drop) over "
    "the models set beside the paper, on every seed (one marker and colour per seed), with the "
    "mean ± sd over the seeds (black); right: each seed's PLCC minus that mean, on its own "
    "scale, so the seed-to-seed spread is visible.",
    "seeds_metric_vs_accuracy": "Every Table 2 metric against the accuracy drop over the "
    "models set beside the paper, one mark per model and seed (marker shape per seed, colour "
    "per family); r is Pearson's against the drop (= −Table 2's PLCC), mean ± sd over the "
    "seeds.",
}


def rst_text(name: str) -> str:
    """The content of ``workflow/report/<name>.rst``."""
    return CAPTIONS[name] + "\n"


def write_rst(folder: str | Path) -> list[Path]:
    """Write every caption as ``<folder>/<name>.rst``."""
    written = []
    for name in CAPTIONS:
        path = Path(folder) / f"{name}.rst"
        path.write_text(rst_text(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_rst(sys.argv[1] if len(sys.argv) > 1 else "workflow/report"):
        print(written_path)
