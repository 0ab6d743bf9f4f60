"""Activation dumps: the ``activations`` step, the one writer of ``results/activations/<id>.h5``.

The model of a checkpoint runs once over the test set: forward hooks keep, for a fixed probe
set (a class-stratified, seeded subset of the test set, identical for every model), the outputs
of the requested layers, flattened to float32; the logits of every test image are kept too. One
pass also keeps the captured ``fc`` rows identical to the logits for models whose dynamic
activation quantisation depends on the batch. The dump (:mod:`compreps.core.dump`, the schema and
its
reader) also holds the flattened weight of every Conv2d/Linear module and the model's
attributes (with its parameters, parameter fraction of the base and MACs per image), so the
analysis steps never load a checkpoint or import torch.

A structured model (``struct_l1``, ``nexp``, ``fold``) is dumped in the base's shapes: its
logits come from the model itself, its probe activations and weights from its dense view
(:mod:`compreps.model.compression.dense_view`; attribute ``dense_view``), whose logits on the probe
must match.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compreps.core.dump import Dump, write_dump
from compreps.core.files import CompRepsError, log, progress_bar, sha256_file
from compreps.core.settings import ProbeSettings, add_arguments, from_arguments
from compreps.core.vocabulary import DENSE_VIEWS, NO_DENSE_VIEW, parse_model_id
from compreps.model.checkpoints import load_model
from compreps.model.compression.dense_view import dense_model
from compreps.model.cost import count_params_macs
from compreps.model.data.datasets import add_data_argument, load_prepared
from compreps.model.data.selection import stratified_indices
from compreps.model.networks import (
    compressible_modules,
    describe_device,
    layer_names,
    normalize,
    pick_device,
)
from compreps.model.runtime import exact_fp32

# |dense view - model| logits on the probe above this (relative to the largest logit) means a
# wrong channel map: the views must compute the same function up to float rounding.
DENSE_VIEW_TOLERANCE = 1e-3


def probe_indices(test_labels, size: int, seed: int) -> np.ndarray:
    """Sorted int64 test-set indices of the probe: class-stratified, seeded, model-independent."""
    labels = np.asarray(test_labels)
    if size < 1:
        raise CompRepsError(f"probe size must be at least 1, got {size}")
    if size > labels.size:
        raise CompRepsError(
            f"probe size {size} exceeds the {labels.size} test images; lower probe.size"
        )
    return stratified_indices(labels, size, seed)


def check_layers(layers: Sequence[str], arch: str) -> list[str]:
    """The requested layers, duplicates dropped, in order; an unknown name lists the valid ones."""
    valid = layer_names(arch)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise CompRepsError(
            f"unknown layer(s) {', '.join(map(repr, unknown))} for {arch}; valid names: "
            + ", ".join(valid)
        )
    return list(dict.fromkeys(layers))


def model_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The flattened float32 weight of every Conv2d and Linear module, in definition order
    (biases not included): what s_w, weight_similarity and Fig. 1 need."""
    return {
        name: module.weight.detach().float().cpu().numpy().ravel()
        for name, module in compressible_modules(model)
    }


def run_with_probe_hooks(
    model,
    images,
    mean,
    std,
    probe: np.ndarray,
    layers: list[str],
    device,
    batch_size: int,
    desc: str = "activations",
):
    """One pass over ``images``: logits for every image, and each layer's output for the rows
    in ``probe`` (sorted indices), flattened per sample.

    Returns ``(logits float32 N×classes, {layer: float32 n_probe×features},
    {layer: per-sample shape})``, all on the CPU.
    """
    modules = dict(model.named_modules())
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    shapes: dict[str, tuple[int, ...]] = {}
    rows_in_batch: list[torch.Tensor | None] = [None]  # probe rows of the current batch

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            rows = rows_in_batch[0]
            if rows is None:
                return
            if not isinstance(output, torch.Tensor):
                raise CompRepsError(
                    f"layer {name!r} returns {type(output).__name__}, "
                    "not a tensor; it cannot be probed"
                )
            shapes[name] = tuple(output.shape[1:])
            # Indexing copies, so a later in-place ReLU (e.g. after bn1) cannot alter the
            # captured values.
            picked = output.index_select(0, rows).detach().float()
            captured[name].append(picked.reshape(len(rows), -1).cpu())

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    probe_t = torch.as_tensor(probe, dtype=torch.int64)
    logits = []
    try:
        with torch.inference_mode(), progress_bar(total=len(images), desc=desc, unit="img") as bar:
            for start in range(0, len(images), batch_size):
                stop = min(start + batch_size, len(images))
                in_batch = probe_t[(probe_t >= start) & (probe_t < stop)] - start
                rows_in_batch[0] = in_batch.to(device) if len(in_batch) else None
                batch = normalize(images[start:stop].to(device, non_blocking=True), mean, std)
                logits.append(model(batch).float().cpu())
                bar.update(stop - start)
    finally:
        for handle in handles:
            handle.remove()
    silent = [name for name, parts in captured.items() if not parts and len(probe)]
    if silent:
        raise CompRepsError(f"layer(s) {', '.join(silent)} never ran in the forward pass")
    layer_arrays = {name: torch.cat(parts).numpy() for name, parts in captured.items() if parts}
    return torch.cat(logits).numpy(), layer_arrays, shapes


def structured_pass(model, view, data, rows, layers, device, batch_size, model_id):
    """Logits of ``model`` over the test set, probe activations of its dense ``view``."""
    logits, _, _ = run_with_probe_hooks(
        model, data.test_images, data.mean, data.std, rows[:0], [], device, batch_size,
        desc=f"activations {model_id}",
    )  # fmt: skip
    probe_logits, layer_arrays, shapes = run_with_probe_hooks(
        view, data.test_images[torch.as_tensor(rows)], data.mean, data.std,
        np.arange(len(rows)), layers, device, batch_size, desc=f"dense view {model_id}",
    )  # fmt: skip
    gap = float(np.max(np.abs(probe_logits - logits[rows]), initial=0.0))
    scale = max(1.0, float(np.max(np.abs(logits[rows]), initial=0.0)))
    if gap > DENSE_VIEW_TOLERANCE * scale:
        raise CompRepsError(
            f"{model_id}: the dense view's logits differ from the model's by {gap:.3g} "
            "(its channel map does not fit the weights; rerun its compression)"
        )
    return logits, layer_arrays, shapes


def model_cost(model, meta: dict, input_shape: tuple[int, ...]) -> dict[str, object]:
    """``params``, ``macs`` per image and ``param_fraction`` of the base (1.0 when dense)."""
    if "macs" in meta and "params" in meta:
        params, macs = meta["params"], meta["macs"]
    else:
        params, macs = count_params_macs(model, input_shape)
    return {
        "params": int(params),
        "macs": int(macs),
        "param_fraction": float(meta.get("param_fraction", 1.0)),
    }


def checked_model(checkpoint: Path, data, probe: ProbeSettings, device):
    """``(model in eval mode, meta, probed layers, model id)`` of ``checkpoint``, refused when
    its dataset, layers or id do not fit."""
    model, meta = load_model(checkpoint, device)
    layers = check_layers(probe.layers, meta["arch"])
    if meta.get("dataset") != data.name:
        raise CompRepsError(
            f"{checkpoint} was trained on {meta.get('dataset')!r}, not on {data.name!r}"
        )
    model_id = str(meta.get("model_id") or checkpoint.stem)
    try:
        parse_model_id(model_id)
    except ValueError as err:
        raise CompRepsError(f"{checkpoint}: {err}") from err
    return model, meta, layers, model_id


def forward_pass(model, meta: dict, data, rows, layers, device, batch_size: int, model_id: str):
    """``(logits, layer arrays, shapes, view)``: the view whose activations and weights are
    dumped is the model itself, or the dense view of a structured model."""
    if meta.get("channel_map"):
        shape = [meta[key] for key in ("arch", "width", "in_channels", "num_classes")]
        view = dense_model(model, *shape, meta["channel_map"])
        outputs = structured_pass(model, view, data, rows, layers, device, batch_size, model_id)
        return (*outputs, view)
    outputs = run_with_probe_hooks(
        model, data.test_images, data.mean, data.std, rows, layers, device, batch_size,
        desc=f"activations {model_id}",
    )  # fmt: skip
    return (*outputs, model)


def dump_attributes(model, view, meta: dict, checkpoint: Path, data, accuracy: float) -> dict:
    """The dump's attributes: identity, provenance (its checkpoint's sha256 and, for a
    compressed model, the base checkpoint's it was made from), accuracy and cost."""
    model_id = str(meta.get("model_id") or checkpoint.stem)
    family, level = parse_model_id(model_id)
    dense = DENSE_VIEWS.get(family, NO_DENSE_VIEW) if view is not model else NO_DENSE_VIEW
    return {
        "accuracy": accuracy,
        "model": model_id,
        "family": family,
        "level": float(level),
        "checkpoint_sha256": sha256_file(checkpoint),
        "parent_sha256": str(meta.get("parent_sha256") or ""),
        "dataset": data.name,
        "arch": meta["arch"],
        "width": int(meta["width"]),
        "dense_view": dense,
        "finetune_epochs": int(meta.get("finetune_epochs") or 0),
        **model_cost(model, meta, tuple(data.test_images.shape[1:])),
    }


def dump_activations(
    checkpoint: str | Path, data, probe: ProbeSettings, out: str | Path, device=None
) -> dict[str, object]:
    """Run the model of ``checkpoint`` over the test set of ``data`` (an ``ImageData``) and
    write the dump ``out``. Returns its attributes (accuracy, model, family, level, ...)."""
    checkpoint = Path(checkpoint)
    if probe.batch_size < 1:
        raise CompRepsError(f"batch size must be at least 1, got {probe.batch_size}")
    device = pick_device() if device is None else torch.device(device)
    exact_fp32()  # dumps in true fp32 on CUDA too: TF32 would round every convolution
    model, meta, layers, model_id = checked_model(checkpoint, data, probe, device)
    labels = data.test_labels.numpy().astype(np.int64)
    rows = probe_indices(labels, probe.size, probe.seed)
    log(
        f"activations {model_id}: {len(labels)} test images, probe {len(rows)} "
        f"(seed {probe.seed}), layers {' '.join(layers)}, on {describe_device(device)}"
    )
    started = time.perf_counter()
    logits, layer_arrays, shapes, view = forward_pass(
        model, meta, data, rows, layers, device, probe.batch_size, model_id
    )
    accuracy = float(np.mean(logits.argmax(1) == labels)) if len(labels) else math.nan
    attrs = dump_attributes(model, view, meta, checkpoint, data, accuracy)
    dump = Dump(
        labels=labels,
        logits=logits,
        probe_indices=rows,
        probe_labels=labels[rows],
        layers=layer_arrays,
        layer_shapes=shapes,
        weights=model_weights(view),
        attrs=attrs,
    )
    write_dump(out, dump)
    size_mb = Path(out).stat().st_size / 1e6
    log(
        f"activations {model_id}: accuracy {accuracy:.4f}; wrote {out} "
        f"({size_mb:.1f} MB) in {time.perf_counter() - started:.1f} s"
    )
    return attrs


def main(argv: list[str]) -> int:
    """``activations``: dump test-set logits, probe activations and weights of one model."""
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}",
        description="Dump test-set logits, probe-set layer activations and weights of one model.",
    )
    parser.add_argument("--checkpoint", required=True)
    add_data_argument(parser)
    add_arguments(parser, ProbeSettings)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    data = load_prepared(args.data, splits=("test",))
    dump_activations(args.checkpoint, data, from_arguments(ProbeSettings, args), args.out)
    return 0
