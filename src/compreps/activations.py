"""Activation dumps (``activations`` step) and the accuracy table (``accuracy-table`` step).

One HDF5 file per model, ``results/activations/<id>.h5`` (schema in docs/architecture.md):
logits and labels for the whole test set, and for a fixed probe set (a class-stratified, seeded
subset of the test set, identical for every model) the outputs of the requested layers, one row
per probe image, flattened to float32. The test set is run once: forward hooks keep only the
probe rows of each batch. One pass also keeps the captured ``fc`` rows identical to the logits
for models whose dynamic activation quantisation depends on the batch.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compreps.files import CompRepsError, atomic_write, damaged_file_error, rebuilding_rule

# File attributes every dump carries (architecture.md, "Activations").
ATTRIBUTES = ("accuracy", "model", "family", "level", "checkpoint_sha256", "dataset")
FAMILY_ORDER = ("base", "coreset", "prune", "quant")
# Table 1 order within a family: coresets by decreasing fraction, pruning by increasing ratio,
# quantisation by decreasing bits (i.e. from the mildest compression to the harshest).
LEVEL_DESCENDING = {"base": False, "coreset": True, "prune": False, "quant": True}
# Whole-test-set arrays are always read whole: blocks of rows, not one chunk per sample
# (per-sample chunks made /logits 3x larger and 40x slower to write for 10,000 rows).
ROW_BLOCK = 1024
COMPRESSION = "lzf"  # float activations compress poorly (field notes); lzf is cheap


@dataclass
class Activations:
    """The content of one activation dump (numpy arrays, attributes as plain Python types)."""

    path: Path
    labels: np.ndarray  # int64, N_test
    logits: np.ndarray  # float32, N_test × classes
    probe_indices: np.ndarray  # int64, n_probe (sorted test-set indices)
    probe_labels: np.ndarray  # int64, n_probe
    layers: dict[str, np.ndarray] = field(default_factory=dict)  # float32, n_probe × features
    layer_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per-sample shape
    attrs: dict[str, object] = field(default_factory=dict)


# --------------------------------------------------------------------------- probe set


def probe_indices(test_labels, size: int, seed: int) -> np.ndarray:
    """Sorted int64 test-set indices of the probe: class-stratified, seeded, model-independent."""
    from compreps.data import stratified_indices

    labels = np.asarray(test_labels)
    if size < 1:
        raise CompRepsError(f"probe size must be at least 1, got {size}")
    if size > labels.size:
        raise CompRepsError(
            f"probe size {size} exceeds the {labels.size} test images; lower probe.size"
        )
    return stratified_indices(labels, size, seed)


# --------------------------------------------------------------------------- dumping


def check_layers(layers: Sequence[str], arch: str = "resnet18") -> list[str]:
    """The requested layers, duplicates dropped, in order; an unknown name lists the valid ones."""
    from compreps.models import layer_names

    valid = layer_names(arch)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise CompRepsError(
            f"unknown layer(s) {', '.join(map(repr, unknown))} for {arch}; valid names: "
            + ", ".join(valid)
        )
    return list(dict.fromkeys(layers))


def model_identity(meta: dict, checkpoint: Path) -> tuple[str, str, float]:
    """``(model id, family, level)`` from checkpoint metadata (falling back to the id)."""
    from compreps.models import parse_model_id

    model_id = str(meta.get("model_id") or checkpoint.stem)
    if "family" in meta and "level" in meta:
        family = str(meta["family"])
        level = math.nan if meta["level"] is None else float(meta["level"])
    else:
        try:
            family, level = parse_model_id(model_id)
        except ValueError as err:
            raise damaged_file_error(checkpoint, f"no family/level in its metadata: {err}") from err
    return model_id, family, (math.nan if family == "base" else level)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="img",
        file=sys.stderr,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
    )


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
    import torch

    from compreps.models import normalize

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
        with torch.inference_mode(), _progress(len(images), desc) as bar:
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


def write_dump(
    path: str | os.PathLike,
    *,
    labels: np.ndarray,
    logits: np.ndarray,
    probe: np.ndarray,
    layers: dict[str, np.ndarray],
    shapes: dict[str, tuple[int, ...]],
    attrs: dict[str, object],
) -> None:
    """Write the HDF5 schema of architecture.md atomically (temp file, close, rename)."""
    import h5py

    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            n = len(labels)
            block = max(1, min(n, ROW_BLOCK))
            h5.create_dataset(
                "labels", data=labels.astype(np.int64), chunks=(block,), compression=COMPRESSION
            )
            h5.create_dataset(
                "logits",
                data=logits.astype(np.float32),
                chunks=(block, logits.shape[1]),
                compression=COMPRESSION,
            )
            group = h5.create_group("probe")
            group.create_dataset("indices", data=probe.astype(np.int64))
            group.create_dataset("labels", data=labels[probe].astype(np.int64))
            layer_group = group.create_group("layers")
            for name, values in layers.items():
                dset = layer_group.create_dataset(
                    name,
                    data=values.astype(np.float32, copy=False),
                    chunks=(1, values.shape[1]),
                    compression=COMPRESSION,
                )
                dset.attrs["shape"] = np.asarray(shapes[name], dtype=np.int64)
            for key in ATTRIBUTES:
                h5.attrs[key] = attrs[key]


def dump_activations(
    checkpoint: str | os.PathLike,
    dataset,
    probe_size: int,
    probe_seed: int,
    layers: Sequence[str],
    out: str | os.PathLike,
    batch_size: int = 500,
    device=None,
) -> dict[str, object]:
    """Run the model of ``checkpoint`` over the test set of ``dataset`` (an ``ImageData``) and
    write ``out``. Returns the file attributes (accuracy, model, family, level, ...)."""
    import torch

    from compreps.files import sha256_file
    from compreps.models import describe_device, load_model, pick_device

    checkpoint = Path(checkpoint)
    if batch_size < 1:
        raise CompRepsError(f"batch size must be at least 1, got {batch_size}")
    device = pick_device() if device is None else torch.device(device)
    model, meta = load_model(checkpoint, device)
    layers = check_layers(layers, meta.get("arch", "resnet18"))
    if meta.get("dataset") not in (None, dataset.name):
        raise CompRepsError(
            f"{checkpoint} was trained on {meta['dataset']!r}, not on {dataset.name!r}"
        )
    model_id, family, level = model_identity(meta, checkpoint)
    labels = dataset.test_labels.numpy().astype(np.int64)
    probe = probe_indices(labels, probe_size, probe_seed)
    print(
        f"activations {model_id}: {len(labels)} test images, probe {len(probe)} "
        f"(seed {probe_seed}), layers {' '.join(layers)}, on {describe_device(device)}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    logits, layer_arrays, shapes = run_with_probe_hooks(
        model,
        dataset.test_images,
        dataset.mean,
        dataset.std,
        probe,
        layers,
        device,
        batch_size,
        desc=f"activations {model_id}",
    )
    accuracy = float(np.mean(logits.argmax(1) == labels)) if len(labels) else math.nan
    attrs = {
        "accuracy": accuracy,
        "model": model_id,
        "family": family,
        "level": float(level),
        "checkpoint_sha256": sha256_file(checkpoint),
        "dataset": dataset.name,
    }
    write_dump(
        out,
        labels=labels,
        logits=logits,
        probe=probe,
        layers=layer_arrays,
        shapes=shapes,
        attrs=attrs,
    )
    size_mb = Path(out).stat().st_size / 1e6
    print(
        f"activations {model_id}: accuracy {accuracy:.4f}; wrote {out} ({size_mb:.1f} MB) "
        f"in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return attrs


# --------------------------------------------------------------------------- reading


def _plain(value):
    """HDF5 attribute -> plain Python value (str, float, int)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open(path: Path):
    import h5py

    if not path.exists():
        raise CompRepsError(
            f"activation file {path} does not exist (rule '{rebuilding_rule(path)}' writes it)"
        )
    try:
        return h5py.File(path, "r")
    except OSError as err:  # truncated, garbage, or not HDF5 at all
        raise damaged_file_error(path, f"not a readable HDF5 file: {err}") from err


def _attributes(h5, path: Path) -> dict[str, object]:
    missing = [key for key in ATTRIBUTES if key not in h5.attrs]
    if missing:
        raise damaged_file_error(path, f"missing attribute(s) {', '.join(missing)}")
    return {key: _plain(h5.attrs[key]) for key in ATTRIBUTES}


def read_attributes(path: str | os.PathLike) -> dict[str, object]:
    """The file attributes alone (cheap: no dataset is read)."""
    path = Path(path)
    h5 = _open(path)
    try:
        with h5:
            return _attributes(h5, path)
    except (OSError, KeyError, RuntimeError, ValueError) as err:
        raise damaged_file_error(path, f"{type(err).__name__}: {err}") from err


def read_activations(path: str | os.PathLike, layers: Iterable[str] | None = None) -> Activations:
    """Read a dump; ``layers=None`` reads every stored layer. A damaged file or a missing
    dataset raises one :class:`CompRepsError` naming the file and the rule that rebuilds it."""
    path = Path(path)
    h5 = _open(path)
    try:
        with h5:
            stored = list(h5["probe/layers"].keys()) if "probe/layers" in h5 else []
            wanted = stored if layers is None else list(dict.fromkeys(layers))
            absent = [name for name in wanted if name not in stored]
            if absent:
                raise CompRepsError(
                    f"{path} holds no activations for layer(s) {', '.join(absent)} (it has: "
                    f"{', '.join(stored) or 'none'}); rerun rule '{rebuilding_rule(path)}' with "
                    "them in probe.metric_layers or probe.trajectory_layers"
                )
            result = Activations(
                path=path,
                labels=h5["labels"][...],
                logits=h5["logits"][...],
                probe_indices=h5["probe/indices"][...],
                probe_labels=h5["probe/labels"][...],
                attrs=_attributes(h5, path),
            )
            for name in wanted:
                dset = h5["probe/layers"][name]
                result.layers[name] = dset[...]
                result.layer_shapes[name] = tuple(int(d) for d in dset.attrs["shape"])
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as err:
        raise damaged_file_error(path, f"{type(err).__name__}: {err}") from err
    check_consistency(result)
    return result


def check_consistency(dump: Activations) -> None:
    """Shapes agree with one another (a hand-edited or partly written file fails here)."""
    n_test, n_probe = len(dump.labels), len(dump.probe_indices)
    problems = []
    if dump.logits.ndim != 2 or len(dump.logits) != n_test:
        problems.append(f"logits {dump.logits.shape} for {n_test} labels")
    if dump.probe_labels.shape != (n_probe,):
        problems.append(f"{dump.probe_labels.shape} probe labels for {n_probe} probe indices")
    elif n_probe and (dump.probe_indices.min() < 0 or dump.probe_indices.max() >= n_test):
        problems.append("probe indices outside the test set")
    for name, values in dump.layers.items():
        if values.ndim != 2 or len(values) != n_probe:
            problems.append(f"layer {name} has shape {values.shape} for {n_probe} probe rows")
        elif math.prod(dump.layer_shapes[name]) != values.shape[1]:
            problems.append(
                f"layer {name}: shape attribute {dump.layer_shapes[name]} does not "
                f"match {values.shape[1]} features"
            )
    if problems:
        raise damaged_file_error(dump.path, "; ".join(problems))


# --------------------------------------------------------------------------- accuracy table


def accuracy_table(paths: Iterable[str | os.PathLike]):
    """Table 1: ``model, family, level, accuracy`` from the dumps' attributes, base first, then
    coresets by decreasing fraction, pruning by increasing ratio, quantisation by decreasing
    bits."""
    import pandas as pd

    rows = []
    for path in paths:
        attrs = read_attributes(path)
        if attrs["family"] not in FAMILY_ORDER:
            raise damaged_file_error(path, f"unknown family {attrs['family']!r}")
        rows.append({key: attrs[key] for key in ("model", "family", "level", "accuracy")})
    if not rows:
        raise CompRepsError("accuracy-table needs at least one activation file")
    table = pd.DataFrame(rows, columns=["model", "family", "level", "accuracy"])
    duplicated = table["model"][table["model"].duplicated()].tolist()
    if duplicated:
        raise CompRepsError(f"model(s) listed twice: {', '.join(duplicated)}")
    table["level"] = table["level"].astype(float)
    table["accuracy"] = table["accuracy"].astype(float)
    signed_level = [
        -level if LEVEL_DESCENDING[family] else level
        for family, level in zip(table["family"], table["level"], strict=True)
    ]
    sort_key = pd.DataFrame(
        {"family": table["family"].map(FAMILY_ORDER.index), "level": signed_level}
    )
    order = sort_key.sort_values(["family", "level"], kind="stable").index
    return table.loc[order].reset_index(drop=True)


def write_accuracy_table(paths: Sequence[str | os.PathLike], out: str | os.PathLike):
    table = accuracy_table(paths)
    with atomic_write(out) as tmp:
        table.to_csv(tmp, index=False)
    return table


# --------------------------------------------------------------------------- CLI


def _activations_main(argv: list[str]) -> int:
    from compreps.data import DATASETS, load_dataset

    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}",
        description="Dump test-set logits and probe-set layer activations of one model.",
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--probe-size", type=int, default=200)
    parser.add_argument("--probe-seed", type=int, default=42)
    parser.add_argument("--layers", nargs="+", required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    data = load_dataset(args.dataset, args.data_root, download=False)
    dump_activations(
        args.checkpoint,
        data,
        args.probe_size,
        args.probe_seed,
        args.layers,
        args.out,
        batch_size=args.batch_size,
    )
    return 0


def _accuracy_table_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"compreps {argv[0]}", description="Collect the test accuracies (Table 1)."
    )
    parser.add_argument("--activations", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv[1:])
    table = write_accuracy_table(args.activations, args.out)
    print(f"accuracy-table: {len(table)} models -> {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    """``activations`` or ``accuracy-table`` (``argv[0]`` is the step name)."""
    if not argv:
        raise CompRepsError("no step given: expected 'activations' or 'accuracy-table'")
    if argv[0] == "activations":
        return _activations_main(argv)
    if argv[0] == "accuracy-table":
        return _accuracy_table_main(argv)
    raise CompRepsError(f"compreps.activations has no step {argv[0]!r}")
