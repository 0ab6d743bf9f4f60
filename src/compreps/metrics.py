"""Representation metrics of one compressed model against ``base`` (``metrics`` step) and
their concatenation (``metrics-table`` step).

Inputs: the activation dumps (``results/activations/<id>.h5``) and checkpoints of ``base`` and
of the model. Output: ``results/metrics/<id>.csv`` in long format
``model, family, level, layer, metric, value, degenerate``. The math lives in
:mod:`compreps.metrics_core`; definitions and every decided ambiguity are in docs/metrics.md.

The base model's decompositions are cached in the process (:class:`Reference`), so a Python
loop over many models decomposes each base layer once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from compreps.activations import Activations, read_activations
from compreps.files import CompRepsError, atomic_write, damaged_file_error, load_checkpoint
from compreps.metrics_core import (
    NAN_DEGENERATE,
    LayerSummary,
    Metric,
    MetricSettings,
    compare_layer,
    output_metrics,
    standardized_cosine_from_moments,
    summarize_layer,
    weight_moments,
)
from compreps.models import FAMILIES, build_model, compressible_modules, parse_model_id

COLUMNS = ["model", "family", "level", "layer", "metric", "value", "degenerate"]
MODEL_LAYER = "model"
PER_LAYER_METRICS = (
    "s_e",
    "s_alive",
    "s_s",
    "s_d",
    "reps_equal",
    "reps_weighted",
    "s_w",
    "s_a",
    "gtfa",
    "cka_linear",
    "hidden_cosine",
    "effective_rank",
    "alive_fraction",
    "class_separation",
    "decay_slope",
)
MODEL_ONLY_METRICS = (
    "s_f",
    "weight_similarity",
    "prediction_agreement",
    "logits_cosine",
    "logits_l2",
    "kl_divergence",
    "wasserstein",
    "probability_cosine",
)

__all__ = [
    "COLUMNS",
    "MetricSettings",
    "Reference",
    "compare_models",
    "main",
    "metrics_table",
    "model_metrics",
    "read_weights",
]


# --------------------------------------------------------------------------- inputs


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{module name: flattened weight}`` of every Conv2d/Linear module, in definition order
    (the modules :func:`compreps.models.compressible_modules` lists; biases are not included)."""
    state_dict, meta = load_checkpoint(path)
    names = [name for name, _ in compressible_modules(build_model(meta.get("arch", "resnet18"), 1))]
    weights = {}
    for name in names:
        tensor = state_dict.get(f"{name}.weight")
        if tensor is None:
            raise damaged_file_error(path, f"no weight {name}.weight in the state dict")
        if not tensor.is_floating_point():
            raise CompRepsError(f"{path}: {name}.weight is {tensor.dtype}, expected float weights")
        weights[name] = tensor.detach().cpu().float().numpy().ravel()
    return weights


def in_layer(module: str, layer: str) -> bool:
    """``module`` is ``layer`` itself or lies inside the container ``layer``."""
    return module == layer or module.startswith(layer + ".")


def layer_weights(weights: dict[str, np.ndarray], layer: str) -> np.ndarray:
    """The weights of ``layer`` itself or, for a container (``layer1``), of every Conv2d/Linear
    inside it, concatenated in definition order; empty when the layer holds none."""
    parts = [w for name, w in weights.items() if in_layer(name, layer)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)


def module_moments(base: dict[str, np.ndarray], model: dict[str, np.ndarray]) -> dict:
    """:func:`~compreps.metrics_core.weight_moments` of every Conv2d/Linear module."""
    if list(base) != list(model) or any(base[k].size != model[k].size for k in base):
        raise CompRepsError(
            "the model's Conv2d/Linear weights do not match the base's shapes "
            "(different architecture or width)"
        )
    return {name: weight_moments(base[name], model[name]) for name in base}


def pooled_weight_similarity(moments: dict[str, np.ndarray], layer: str | None) -> Metric:
    """Eq. 5 over the modules of ``layer`` (all modules when ``layer`` is None)."""
    chosen = [m for name, m in moments.items() if layer is None or in_layer(name, layer)]
    return standardized_cosine_from_moments(sum(chosen) if chosen else np.zeros(6))


@dataclass
class Reference:
    """The base model: its dump and weights, and each layer's decomposition computed once."""

    outputs: Activations
    weights: dict[str, np.ndarray]
    _summaries: dict[tuple, LayerSummary] = field(default_factory=dict, repr=False)

    def summary(self, layer: str, settings: MetricSettings) -> LayerSummary:
        key = (layer, settings.top_k, settings.alive_threshold, settings.decay_top_m)
        if key not in self._summaries:
            self._summaries[key] = summarize(self.outputs, layer, settings)
        return self._summaries[key]


def summarize(outputs: Activations, layer: str, settings: MetricSettings) -> LayerSummary:
    return summarize_layer(
        outputs.layers[layer],
        outputs.probe_labels,
        top_k=settings.top_k,
        alive_threshold=settings.alive_threshold,
        decay_top_m=settings.decay_top_m,
    )


_REFERENCE_CACHE: dict[tuple, Reference] = {}


def _file_identity(path: str | os.PathLike) -> tuple:
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return (str(path),)  # missing: the reader raises the proper error
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def load_reference(
    activations: str | os.PathLike, checkpoint: str | os.PathLike, layers: Sequence[str]
) -> Reference:
    """The base :class:`Reference`, reused while the same files (unchanged) are asked for."""
    key = (_file_identity(activations), _file_identity(checkpoint), tuple(layers))
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE.clear()  # one base at a time: its arrays are large
        reference = Reference(read_activations(activations, layers), read_weights(checkpoint))
        _check_identity(reference.outputs, "base", activations)
        _REFERENCE_CACHE[key] = reference
    return _REFERENCE_CACHE[key]


def _check_identity(outputs: Activations, model_id: str, path) -> None:
    stored = outputs.attrs.get("model")
    if stored is not None and str(stored) != model_id:
        raise CompRepsError(f"{path} holds activations of model {stored!r}, not {model_id!r}")


def check_same_probe(base: Activations, model: Activations) -> None:
    """Both dumps must describe the same test set and the same probe samples."""
    if not np.array_equal(base.probe_indices, model.probe_indices):
        raise CompRepsError(
            f"probe indices of {model.path} differ from those of {base.path}: both dumps must "
            "use the same probe.size and probe.seed (rerun rule 'activations')"
        )
    if not np.array_equal(base.probe_labels, model.probe_labels):
        raise CompRepsError(f"probe labels of {model.path} differ from those of {base.path}")
    if not np.array_equal(base.labels, model.labels) or base.logits.shape != model.logits.shape:
        raise CompRepsError(f"{model.path} and {base.path} do not cover the same test set")
    if np.unique(base.probe_labels).size < 2:
        raise CompRepsError(
            f"the probe set of {base.path} holds fewer than two classes; class "
            "separation needs at least two (raise probe.size)"
        )


# --------------------------------------------------------------------------- comparison


def average_metric(values: Iterable[Metric]) -> Metric:
    """Model-level value: the mean over the metric layers (NaN if one is NaN, degenerate if
    any is)."""
    values = list(values)
    if not values:
        return NAN_DEGENERATE
    numbers = [v.value for v in values]
    degenerate = any(v.degenerate for v in values)
    if any(math.isnan(x) for x in numbers):
        return Metric(math.nan, True)
    return Metric(float(np.mean(numbers)), degenerate)


def _progress(items: Sequence[str], desc: str, enabled: bool):
    interactive = sys.stderr.isatty()
    return tqdm(
        items,
        desc=desc,
        file=sys.stderr,
        disable=not enabled,
        mininterval=0.5 if interactive else 30.0,
        dynamic_ncols=interactive,
    )


def compare_models(
    model_id: str,
    reference: Reference,
    outputs: Activations,
    weights: dict[str, np.ndarray],
    settings: MetricSettings | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Every metric of one model against the base :class:`Reference`, as a long DataFrame."""
    settings = MetricSettings() if settings is None else settings
    family, level = parse_model_id(model_id)
    check_same_probe(reference.outputs, outputs)
    missing = [name for name in settings.layers if name not in outputs.layers]
    if missing:
        raise CompRepsError(
            f"{outputs.path} holds no activations for layer(s) {', '.join(missing)}"
        )
    moments = module_moments(reference.weights, weights)
    model_level = output_metrics(reference.outputs.logits, outputs.logits)
    s_f = model_level["s_f"]
    per_layer: dict[str, dict[str, Metric]] = {}
    is_base = outputs is reference.outputs
    for layer in _progress(settings.layers, f"metrics {model_id}", progress):
        base_summary = reference.summary(layer, settings)
        if base_summary.shape != outputs.layers[layer].shape:
            raise CompRepsError(
                f"layer {layer}: activations {outputs.layers[layer].shape} "
                f"do not match the base's {base_summary.shape}"
            )
        model_summary = base_summary if is_base else summarize(outputs, layer, settings)
        s_w = pooled_weight_similarity(moments, layer)
        per_layer[layer] = compare_layer(base_summary, model_summary, s_w, s_f, settings)
    for name in PER_LAYER_METRICS:
        model_level[name] = average_metric(
            per_layer[layer][name] for layer in settings.metric_layers
        )
    model_level["weight_similarity"] = pooled_weight_similarity(moments, None)
    rows = [
        (layer, name, metrics[name])
        for layer, metrics in per_layer.items()
        for name in PER_LAYER_METRICS
    ]
    rows += [
        (MODEL_LAYER, name, model_level[name]) for name in (*PER_LAYER_METRICS, *MODEL_ONLY_METRICS)
    ]
    return pd.DataFrame(
        {
            "model": model_id,
            "family": family,
            "level": level,
            "layer": [layer for layer, _, _ in rows],
            "metric": [name for _, name, _ in rows],
            "value": [m.value for _, _, m in rows],
            "degenerate": [m.degenerate for _, _, m in rows],
        },
        columns=COLUMNS,
    )


def model_metrics(
    model_id: str,
    base_activations: str | os.PathLike,
    activations: str | os.PathLike,
    base_checkpoint: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    metric_layers: Sequence[str] = ("layer4.1.conv2", "fc"),
    trajectory_layers: Sequence[str] = ("layer1", "layer2", "layer3", "layer4", "fc"),
    reps_weights: Sequence[float] = (0.15, 0.05, 0.35, 0.45),
    alive_threshold: float = 0.01,
    decay_top_m: int = 20,
    gtfa_beta: float = 0.45,
    gtfa_gamma: float = 0.45,
    top_k: int = 20,
    progress: bool = False,
) -> pd.DataFrame:
    """All metrics of ``model_id`` against ``base``, long format (columns :data:`COLUMNS`).

    The base's dump, weights and per-layer decompositions are cached across calls.
    """
    settings = make_settings(
        metric_layers,
        trajectory_layers,
        reps_weights,
        alive_threshold,
        decay_top_m,
        gtfa_beta,
        gtfa_gamma,
        top_k,
    )
    try:
        parse_model_id(model_id)
    except ValueError as err:
        raise CompRepsError(str(err)) from err
    reference = load_reference(base_activations, base_checkpoint, settings.layers)
    if _file_identity(activations) == _file_identity(base_activations):
        outputs = reference.outputs
    else:
        outputs = read_activations(activations, settings.layers)
    _check_identity(outputs, model_id, activations)
    if _file_identity(checkpoint) == _file_identity(base_checkpoint):
        weights = reference.weights
    else:
        weights = read_weights(checkpoint)
    return compare_models(model_id, reference, outputs, weights, settings, progress)


def make_settings(
    metric_layers,
    trajectory_layers,
    reps_weights,
    alive_threshold,
    decay_top_m,
    gtfa_beta,
    gtfa_gamma,
    top_k,
) -> MetricSettings:
    """Validated :class:`MetricSettings` (a bad value raises one clear CompRepsError)."""
    reps_weights = tuple(float(w) for w in reps_weights)
    problems = []
    if not metric_layers:
        problems.append("metric layers must not be empty")
    if len(reps_weights) != 4 or min(reps_weights, default=0) < 0:
        problems.append(f"REPS weights must be 4 non-negative numbers, got {reps_weights}")
    if not alive_threshold >= 0:
        problems.append(f"alive threshold must be >= 0, got {alive_threshold}")
    if decay_top_m < 2:
        problems.append(f"decay top-m must be >= 2, got {decay_top_m}")
    if top_k < 1:
        problems.append(f"top-k must be >= 1, got {top_k}")
    for name, value in (("beta", gtfa_beta), ("gamma", gtfa_gamma)):
        if not 0 <= value <= 1:
            problems.append(f"GTFA {name} must lie in [0, 1], got {value}")
    if problems:
        raise CompRepsError("; ".join(problems))
    return MetricSettings(
        tuple(metric_layers),
        tuple(trajectory_layers),
        reps_weights,
        float(alive_threshold),
        int(decay_top_m),
        float(gtfa_beta),
        float(gtfa_gamma),
        int(top_k),
    )


# --------------------------------------------------------------------------- outputs


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_metrics_csv(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise CompRepsError(f"metrics file {path} does not exist (rule 'metrics' writes it)")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise CompRepsError(f"cannot read metrics file {path}: {err}") from err
    if list(frame.columns) != COLUMNS:
        raise CompRepsError(
            f"metrics file {path} has columns {list(frame.columns)}, expected "
            f"{COLUMNS}; rerun rule 'metrics'"
        )
    return frame


def metrics_table(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-model metric CSVs, sorted by family, level, model, layer, metric."""
    frames = [read_metrics_csv(path) for path in paths]
    if not frames:
        raise CompRepsError("metrics-table needs at least one metrics CSV")
    table = pd.concat(frames, ignore_index=True)
    table["degenerate"] = table["degenerate"].astype(str).str.lower().eq("true")
    duplicated = table.duplicated(["model", "layer", "metric"])
    if duplicated.any():
        models = sorted(table.loc[duplicated, "model"].unique())
        raise CompRepsError(
            f"metrics of model(s) {', '.join(models)} appear in more than one input file"
        )
    rank = {family: i for i, family in enumerate(FAMILIES)}
    table["_rank"] = table["family"].map(rank).fillna(len(FAMILIES))
    table = table.sort_values(
        ["_rank", "level", "model", "layer", "metric"], kind="stable", na_position="first"
    )
    return table.drop(columns="_rank").reset_index(drop=True)


# --------------------------------------------------------------------------- CLI


def _metrics_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}",
        description="Compare one model's representations with base's (REPS, GTFA, CKA, ...).",
    )
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--base-activations", required=True)
    parser.add_argument("--activations", required=True)
    parser.add_argument("--base-checkpoint", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--metric-layers", nargs="+", default=["layer4.1.conv2", "fc"])
    parser.add_argument(
        "--trajectory-layers", nargs="*", default=["layer1", "layer2", "layer3", "layer4", "fc"]
    )
    parser.add_argument(
        "--reps-weights",
        nargs=4,
        type=float,
        default=[0.15, 0.05, 0.35, 0.45],
        metavar=("W_E", "W_ALIVE", "W_S", "W_D"),
    )
    parser.add_argument("--alive-threshold", type=float, default=0.01)
    parser.add_argument("--decay-top-m", type=int, default=20)
    parser.add_argument("--gtfa-beta", type=float, default=0.45)
    parser.add_argument("--gtfa-gamma", type=float, default=0.45)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    frame = model_metrics(
        args.model_id,
        args.base_activations,
        args.activations,
        args.base_checkpoint,
        args.checkpoint,
        metric_layers=args.metric_layers,
        trajectory_layers=args.trajectory_layers,
        reps_weights=args.reps_weights,
        alive_threshold=args.alive_threshold,
        decay_top_m=args.decay_top_m,
        gtfa_beta=args.gtfa_beta,
        gtfa_gamma=args.gtfa_gamma,
        top_k=args.top_k,
        progress=True,
    )
    write_csv(frame, args.out)
    summary = frame[frame["layer"] == MODEL_LAYER].set_index("metric")["value"]
    print(
        f"metrics {args.model_id}: {len(frame)} rows ({int(frame['degenerate'].sum())} "
        f"degenerate); reps_weighted {summary['reps_weighted']:.4f}, gtfa "
        f"{summary['gtfa']:.4f}, cka_linear {summary['cka_linear']:.4f} -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _metrics_table_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Concatenate the per-model metric CSVs."
    )
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    table = metrics_table(args.inputs)
    write_csv(table, args.out)
    print(
        f"metrics-table: {len(table)} rows from {len(args.inputs)} files -> {args.out}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str]) -> int:
    """``metrics`` / ``metrics-table`` (``argv[0]`` is the step name)."""
    if argv and argv[0] == "metrics-table":
        return _metrics_table_main(argv)
    return _metrics_main(argv if argv else ["metrics"])
