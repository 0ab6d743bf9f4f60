"""The ``metrics`` step: every metric of one compressed model against ``base``.

Inputs: the two dumps (``results/activations/base.h5`` and ``<id>.h5``: probe activations,
logits, weights). Output: ``results/metrics/<id>.csv`` in long format (columns
:data:`compreps.core.vocabulary.METRIC_COLUMNS`). The math lives in
:mod:`compreps.analysis.metrics.spectra`,
:mod:`compreps.analysis.metrics.compare`, :mod:`compreps.analysis.metrics.weight_similarity` and
:mod:`compreps.analysis.metrics.output`;
definitions and every decided ambiguity are in docs/metrics.md.

The base model's decompositions are cached in the process (:class:`Reference`), so a Python
loop over many models decomposes each base layer once.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from compreps.analysis.metrics.compare import compare_layer
from compreps.analysis.metrics.hierarchy import hierarchy_metric_values
from compreps.analysis.metrics.output import output_metrics
from compreps.analysis.metrics.spectra import LayerSummary, summarize_layer
from compreps.analysis.metrics.value import Metric, as_metric, average_metric
from compreps.analysis.metrics.weight_similarity import module_moments, pooled_weight_similarity
from compreps.core.dump import Dump, read_dump
from compreps.core.files import CompRepsError, log, progress_bar, write_csv
from compreps.core.settings import MetricsSettings, ProbeSettings, add_arguments, from_arguments
from compreps.core.vocabulary import (
    METRIC_COLUMNS,
    MODEL_LAYER,
    MODEL_ONLY_METRICS,
    PER_LAYER_METRICS,
    parse_model_id,
)


def summarize(dump: Dump, layer: str, settings: MetricsSettings) -> LayerSummary:
    return summarize_layer(
        dump.layers[layer],
        dump.probe_labels,
        top_k=settings.gtfa.top_k,
        alive_threshold=settings.reps.alive_threshold,
        decay_top_m=settings.reps.decay_top_m,
    )


@dataclass
class Reference:
    """The base model's dump (with weights) and each layer's decomposition, computed once."""

    dump: Dump
    _summaries: dict[tuple, LayerSummary] = field(default_factory=dict, repr=False)

    def summary(self, layer: str, settings: MetricsSettings) -> LayerSummary:
        key = (layer, settings.gtfa.top_k, settings.reps.alive_threshold, settings.reps.decay_top_m)
        if key not in self._summaries:
            self._summaries[key] = summarize(self.dump, layer, settings)
        return self._summaries[key]


_REFERENCE_CACHE: dict[tuple, Reference] = {}


def _file_identity(path: str | os.PathLike) -> tuple:
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return (str(path),)  # missing: the reader raises the proper error
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def load_reference(base_dump: str | os.PathLike, layers) -> Reference:
    """The base :class:`Reference`, reused while the same file (unchanged) is asked for."""
    key = (_file_identity(base_dump), tuple(layers))
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE.clear()  # one base at a time: its arrays are large
        reference = Reference(read_dump(base_dump, layers, weights=True))
        _check_identity(reference.dump, "base", base_dump)
        _REFERENCE_CACHE[key] = reference
    return _REFERENCE_CACHE[key]


def _check_identity(dump: Dump, model_id: str, path) -> None:
    stored = dump.attrs.get("model")
    if stored is not None and str(stored) != model_id:
        raise CompRepsError(f"{path} holds activations of model {stored!r}, not {model_id!r}")


def check_provenance(base: Dump, model: Dump) -> None:
    """A compressed model's dump names the base checkpoint it was made from
    (``parent_sha256``): it must be the one ``base``'s dump was made from."""
    parent = str(model.attrs.get("parent_sha256") or "")
    base_checkpoint = str(base.attrs.get("checkpoint_sha256") or "")
    if parent and parent != base_checkpoint:
        raise CompRepsError(
            f"{model.path} is of a model made from base checkpoint sha256 {parent}, but "
            f"{base.path} is the dump of checkpoint sha256 {base_checkpoint}: a model is only "
            "compared with its own base; rerun its compression and rule 'activations' from "
            "this base"
        )


def check_same_probe(base: Dump, model: Dump) -> None:
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


def hierarchy_level(
    base: Dump, dump: Dump, probe: ProbeSettings, settings: MetricsSettings
) -> list[tuple[str, Metric]]:
    """Study 004's hierarchy metrics on the probe set (docs/metrics.md): hidden space = the
    ``probe.hidden_layer`` activations (the input of ``fc``), logits = the probe rows of
    ``/logits``, one KL/probability set per ``metrics.hierarchy.temperatures``."""
    hidden, rows = probe.hidden_layer, base.probe_indices
    values = hierarchy_metric_values(
        (base.layers[hidden], dump.layers[hidden]),
        (base.logits[rows], dump.logits[rows]),
        settings.hierarchy.temperatures,
    )
    return [(name, as_metric(*entry)) for name, entry in values.items()]


def compare_models(
    model_id: str,
    reference: Reference,
    dump: Dump,
    settings: MetricsSettings,
    probe: ProbeSettings,
    progress: bool = False,
) -> pd.DataFrame:
    """Every metric of one model against the base :class:`Reference`, as a long DataFrame."""
    family, level = parse_model_id(model_id)
    base = reference.dump
    check_same_probe(base, dump)
    missing = [name for name in probe.layers if name not in dump.layers]
    if missing:
        raise CompRepsError(f"{dump.path} holds no activations for layer(s) {', '.join(missing)}")
    moments = module_moments(base.weights, dump.weights)
    s_f_rows = base.probe_indices if settings.gtfa.output_samples == "probe" else None
    model_level = output_metrics(base.logits, dump.logits, s_f_rows)
    per_layer: dict[str, dict[str, Metric]] = {}
    layers = progress_bar(probe.compared_layers, desc=f"metrics {model_id}", disable=not progress)
    for layer in layers:
        base_summary = reference.summary(layer, settings)
        if base_summary.shape != dump.layers[layer].shape:
            raise CompRepsError(
                f"layer {layer}: activations {dump.layers[layer].shape} "
                f"do not match the base's {base_summary.shape}"
            )
        model_summary = base_summary if dump is base else summarize(dump, layer, settings)
        s_w = pooled_weight_similarity(moments, layer)
        per_layer[layer] = compare_layer(
            base_summary, model_summary, s_w, model_level["s_f"], settings
        )
    for name in PER_LAYER_METRICS:
        model_level[name] = average_metric(per_layer[lay][name] for lay in probe.metric_layers)
    model_level["weight_similarity"] = pooled_weight_similarity(moments, None)
    rows = [(layer, name, m[name]) for layer, m in per_layer.items() for name in PER_LAYER_METRICS]
    rows += [
        (MODEL_LAYER, name, model_level[name]) for name in (*PER_LAYER_METRICS, *MODEL_ONLY_METRICS)
    ]
    rows += [(MODEL_LAYER, name, m) for name, m in hierarchy_level(base, dump, probe, settings)]
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
        columns=list(METRIC_COLUMNS),
    )


def model_metrics(
    model_id: str,
    base_dump: str | os.PathLike,
    dump: str | os.PathLike,
    settings: MetricsSettings,
    probe: ProbeSettings,
    progress: bool = False,
) -> pd.DataFrame:
    """All metrics of ``model_id`` (its dump) against ``base`` (long format, METRIC_COLUMNS).

    The base's dump and per-layer decompositions are cached across calls.
    """
    try:
        parse_model_id(model_id)
    except ValueError as err:
        raise CompRepsError(str(err)) from err
    reference = load_reference(base_dump, probe.layers)
    if _file_identity(dump) == _file_identity(base_dump):
        outputs = reference.dump
    else:
        outputs = read_dump(dump, probe.layers, weights=True)
    _check_identity(outputs, model_id, dump)
    check_provenance(reference.dump, outputs)
    return compare_models(model_id, reference, outputs, settings, probe, progress)


def main(argv: list[str]) -> int:
    """``metrics`` (``argv[0]`` is the step name)."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}",
        description="Compare one model's representations with base's (REPS, GTFA, CKA, ...).",
    )
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--base-dump", required=True, help="results/activations/base.h5")
    parser.add_argument("--dump", required=True, help="results/activations/<id>.h5")
    parser.add_argument("--out", required=True)
    add_arguments(parser, MetricsSettings)
    add_arguments(parser, ProbeSettings)
    args = parser.parse_args(argv[1:])
    frame = model_metrics(
        args.model_id,
        args.base_dump,
        args.dump,
        from_arguments(MetricsSettings, args),
        from_arguments(ProbeSettings, args),
        progress=True,
    )
    write_csv(frame, args.out)
    summary = frame[frame["layer"] == MODEL_LAYER].set_index("metric")["value"]
    log(
        f"metrics {args.model_id}: {len(frame)} rows ({int(frame['degenerate'].sum())} "
        f"degenerate); reps_weighted {summary['reps_weighted']:.4f}, gtfa "
        f"{summary['gtfa']:.4f}, cka_linear {summary['cka_linear']:.4f} -> {args.out}"
    )
    return 0
