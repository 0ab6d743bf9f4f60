"""The shared names of the project: model ids, families, metric names, CSV columns, figures.

Used by the code and by the Snakemake rules (``workflow/rules/common.smk``) alike, so each name
is written once. The families come from their registry (:mod:`compreps.core.families`).
"""

from __future__ import annotations

import math
import re

from compreps.core import families

# --------------------------------------------------------------------------- models
# Families in Table 1 order, read from the registry (compreps.core.families); ``base`` has no
# level (NaN). A family's level means what its registry entry says (unit and direction).
BASE = "base"
COMPRESSED_FAMILIES = families.names()
FAMILIES = (BASE, *COMPRESSED_FAMILIES)
STRUCTURED_FAMILIES = families.names(step="structured")
# Table 1 order within a family: from the mildest compression to the harshest.
LEVEL_DESCENDING = {BASE: False, **{f.name: f.descending for f in families.REGISTRY.values()}}
# The config list each family's levels come from: (section, key).
LEVEL_SOURCES = {f.name: (f.section, f.level.key) for f in families.REGISTRY.values()}
# The dump attribute ``dense_view``: how a structured model's activations and weights are
# written in the base's shapes (docs/metrics.md, "Structured models"); "none" for the others.
NO_DENSE_VIEW = "none"
DENSE_VIEWS = {
    f.name: f.dense_view for f in families.REGISTRY.values() if f.dense_view != NO_DENSE_VIEW
}


def model_id(family: str, level: object = None) -> str:
    """``("prune", 0.05) -> "prune-0.05"``; the level is printed with ``str()`` of the config
    value (``coreset-0.5``, ``quant-8``); ``("base", _) -> "base"``."""
    if family == BASE:
        return BASE
    if family not in families.REGISTRY:
        raise ValueError(f"unknown family {family!r}: expected one of {', '.join(FAMILIES)}")
    return f"{family}-{level}"


def parse_model_id(model: str) -> tuple[str, float]:
    """``"prune-0.05" -> ("prune", 0.05)``; ``"base" -> ("base", nan)``."""
    if model == BASE:
        return BASE, math.nan
    family, sep, level = model.rpartition("-")
    try:
        if not sep or family not in families.REGISTRY:
            raise ValueError
        return family, float(level)
    except ValueError:
        expected = ", ".join(f"{f.name}-<{f.level.meaning}>" for f in families.REGISTRY.values())
        raise ValueError(f"bad model id {model!r}: expected base or one of {expected}") from None


def model_id_pattern() -> str:
    """The regular expression of every model id (the rules' ``model`` wildcard)."""
    ids = [f"{re.escape(f.name)}-{f.level.pattern}" for f in families.REGISTRY.values()]
    return "|".join([BASE, *ids])


def family_levels(config: dict, family: str) -> list:
    """The levels of ``family`` a config runs: its level list, but none for a coreset method
    that ``coreset.methods`` does not list (:func:`compreps.core.families.coreset_method`)."""
    section, key = LEVEL_SOURCES[family]
    method = families.coreset_method(family)
    if method is not None and method not in config[section].get("methods", [families.RANDOM]):
        return []
    return list(config[section][key])


def model_ids(config: dict) -> list[str]:
    """Every model of a run, base first, then the families in config order."""
    ids = [BASE]
    for family in LEVEL_SOURCES:
        ids += [model_id(family, level) for level in family_levels(config, family)]
    return ids


def family_sort_key(family: str, level: float) -> tuple[int, float]:
    """Table 1 order: family, then level (descending where LEVEL_DESCENDING says so)."""
    rank = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    return rank, (-level if LEVEL_DESCENDING.get(family) else level)


# --------------------------------------------------------------------------- metrics
MODEL_LAYER = "model"  # the ``layer`` value of model-level rows
REPS_COMPONENTS = ("s_e", "s_alive", "s_s", "s_d")
# Config keys of metrics.reps.weights, in the order of REPS_COMPONENTS (REPS: 000's sum after
# eq. 13, 001's eq. 9).
REPS_WEIGHT_KEYS = ("effective_rank", "alive", "separation", "decay")
EQUAL_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
# Raw descriptors of a model alone: not comparisons with the base, so never correlated.
RAW_DESCRIPTORS = ("effective_rank", "alive_fraction", "class_separation", "decay_slope")
PER_LAYER_METRICS = (
    *REPS_COMPONENTS,
    "reps_equal",
    "reps_weighted",
    "s_w",
    "s_a",
    "gtfa",
    "cka_linear",
    "hidden_cosine",
    *RAW_DESCRIPTORS,
    "cka_debiased",
)
# Over the whole test set's logits: s_f (eq. 7) and Table 2's functional baselines.
OUTPUT_METRICS = (
    "s_f",
    "prediction_agreement",
    "logits_cosine",
    "logits_l2",
    "kl_divergence",
    "wasserstein",
    "probability_cosine",
)
MODEL_ONLY_METRICS = (OUTPUT_METRICS[0], "weight_similarity", *OUTPUT_METRICS[1:])

# --------------------------------------------------------------------------- tables (CSV columns)
METRIC_COLUMNS = ("model", "family", "level", "layer", "metric", "value", "degenerate")
ACCURACY_COLUMNS = ("model", "family", "level", "accuracy")  # what readers of the table need
# What accuracy-table writes: also each model's parameters as a fraction of the base's and its
# multiply-accumulates per image (1.0 and the base's MACs for the dense families).
ACCURACY_TABLE_COLUMNS = (
    *ACCURACY_COLUMNS,
    "param_fraction",
    "macs",
    # from the dump's labels and logits: test images, correct ones, the Wilson interval of the
    # accuracy (correlation.confidence) and the drop from the base's accuracy
    "n_test",
    "n_correct",
    "accuracy_low",
    "accuracy_high",
    "drop",
    # epochs of fine-tuning after the compression (0: one-shot; dumps of older runs: 0)
    "finetune_epochs",
)
COEFFICIENTS = ("plcc", "srcc", "krcc")
# ci_method: BCa or percentile (scipy.stats.bootstrap); note: why a coefficient is undefined
CORRELATION_COLUMNS = (
    ("metric", "scope", "n", "n_excluded")
    + tuple(f"{coef}{suffix}" for coef in COEFFICIENTS for suffix in ("", "_low", "_high", "_p"))
    + ("ci_method", "note")
    # the sign convention, then the confound-aware and influence columns (correlate.py)
    + ("target",)
    + ("plcc_partial", "plcc_partial_p", "srcc_partial", "srcc_partial_p")
    + ("krcc_granulated", "n_families")
    + tuple(f"{c}_lofo_{end}" for c in ("plcc", "srcc") for end in ("low", "high"))
    + tuple(f"{c}_lomo_{end}" for c in COEFFICIENTS for end in ("low", "high"))
    + ("influence",)
)
SENSITIVITY_WEIGHT_COLUMNS = tuple(f"w_{key}" for key in REPS_WEIGHT_KEYS)
SENSITIVITY_COLUMNS = ("config", *SENSITIVITY_WEIGHT_COLUMNS, "n", *COEFFICIENTS)
# coreset.init: a coreset model starts from its seed's base initial weights, or from its own
CORESET_INITS = ("shared", "independent")
# results/seed-<seed>/tables/findings.csv: each claim's verdict on one seed's run (report step)
FINDING_COLUMNS = ("id", "claim", "verdict", "run", "reason")
# Correlation scopes: every compressed model ("all"); the paper's three families ("paper": the 24
# models of its Tables 2 and 3, a scope of its own only when the run has other families too);
# then each family alone.
PAPER_FAMILIES = tuple(f.name for f in families.REGISTRY.values() if f.paper)
PAPER_SCOPE = "paper"
SCOPES = ("all", PAPER_SCOPE, *COMPRESSED_FAMILIES)


def scope_families(scope: str, present) -> tuple[str, ...]:
    """The families a correlation scope pools, among the ``present`` compressed families."""
    present = tuple(dict.fromkeys(present))
    if scope == "all":
        return present
    wanted = PAPER_FAMILIES if scope == PAPER_SCOPE else (scope,)
    return tuple(family for family in present if family in wanted)


def comparable_scope(scopes) -> str:
    """The scope to set beside the paper's Table 2: ``paper`` when the run has it, else ``all``
    (a run of the paper's three families only, where both pool the same models)."""
    return PAPER_SCOPE if PAPER_SCOPE in set(scopes) else "all"


# --------------------------------------------------------------------------- figures
FIGURE_NAMES = (
    "fig1_weight_histograms",
    "fig2_representations",
    "accuracy_vs_level",
    "metric_vs_accuracy",
    "sensitivity_heatmap",
    "accuracy_vs_params",
    "hierarchy_deviation",
    "correlation_forest",
)
FIGURE_FORMATS = ("png", "pdf")

# --------------------------------------------------------------------------- seeds
# The across-seed summary (step ``seeds``: results/figures/<name>.png|pdf over every seed).
SEED_FIGURE_NAMES = (
    "seeds_accuracy_vs_level",
    "seeds_correlation_spread",
    "seeds_metric_vs_accuracy",
)
