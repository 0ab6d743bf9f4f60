"""The HDF5 dump: the one interface between the model world and the analysis world.

One file per model, ``results/activations/<id>.h5``, written by the ``activations`` step and
read by every analysis step (metrics, tables, figures). Layout::

    /labels                    int64 (N_test,)            whole test set
    /logits                    float32 (N_test, classes)  whole test set
    /probe/indices             int64 (n_probe,)           sorted test-set indices
    /probe/labels              int64 (n_probe,)
    /probe/layers/<layer>      float32 (n_probe, features), attribute ``shape`` (per sample)
    /weights/<module>          float32 (n,): flattened weight of every Conv2d/Linear module,
                               in definition order (no biases)
    file attributes            ATTRIBUTES below, plus any extra plain values

Every dataset is chunked, lzf-compressed and carries the Fletcher-32 checksum, so a flipped byte
in a data chunk fails on read; every read failure raises one :class:`CompRepsError` naming the
file and the rule that rebuilds it. A NaN or Inf in the logits, a layer or a weight is refused
on write and on read, naming the array. Provenance: ``checkpoint_sha256`` is the sha256 of the
checkpoint the dump was made from, ``parent_sha256`` (compressed models) that of the base
checkpoint that one was made from. This module imports neither torch nor model code.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compreps.core.files import CompRepsError, atomic_write, damaged_file_error, rebuilding_rule

# File attributes every dump carries (level is NaN for base).
ATTRIBUTES = (
    "accuracy",
    "model",
    "family",
    "level",
    "checkpoint_sha256",
    "dataset",
    "arch",
    "width",
)
# Whole-test-set arrays are always read whole: blocks of rows, not one chunk per sample
# (per-sample chunks made /logits 3x larger and 40x slower to write for 10,000 rows).
ROW_BLOCK = 1024
WEIGHT_BLOCK = 1 << 16  # float32 elements per chunk of a flattened weight (256 KiB)
# float activations compress poorly; lzf is cheap. fletcher32: a checksum per chunk.
FILTERS = {"compression": "lzf", "fletcher32": True}
_READ_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


@dataclass
class Dump:
    """The content of one dump (numpy arrays, attributes as plain Python values)."""

    labels: np.ndarray  # int64 (N_test,)
    logits: np.ndarray  # float32 (N_test, classes)
    probe_indices: np.ndarray  # int64 (n_probe,), sorted test-set indices
    probe_labels: np.ndarray  # int64 (n_probe,)
    layers: dict[str, np.ndarray]  # float32 (n_probe, features) per probed layer
    layer_shapes: dict[str, tuple[int, ...]]  # per-sample shape of each layer
    weights: dict[str, np.ndarray]  # module name -> flattened float32 weight
    attrs: dict[str, object]  # ATTRIBUTES (+ extras)
    path: Path | None = None


# --------------------------------------------------------------------------- writing


def _dataset(group, name: str, data: np.ndarray, chunks: tuple[int, ...]):
    # HDF5 chunks are at least 1 along every axis; an empty array needs a resizable first axis
    chunks = tuple(max(1, c) for c in chunks)
    maxshape = (None, *data.shape[1:]) if data.size == 0 else None
    return group.create_dataset(name, data=data, chunks=chunks, maxshape=maxshape, **FILTERS)


def write_dump(path: str | os.PathLike, dump: Dump) -> None:
    """Write ``dump`` to ``path`` atomically (temp file, close, fsync, rename)."""
    import h5py

    missing = [key for key in ATTRIBUTES if key not in dump.attrs]
    if missing:
        raise CompRepsError(f"dump for {path} lacks attribute(s) {', '.join(missing)}")
    dump.path = Path(path)
    check_consistency(dump)
    problem = first_nonfinite(dump)
    if problem is not None:
        raise CompRepsError(
            f"{path} not written: {problem} (model {dump.attrs['model']}): the model computes "
            "non-finite values; check its checkpoint (and the one it was made from)"
        )
    labels = np.asarray(dump.labels, dtype=np.int64)
    logits = np.asarray(dump.logits, dtype=np.float32)
    block = min(len(labels), ROW_BLOCK)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as h5:
        _dataset(h5, "labels", labels, (block,))
        _dataset(h5, "logits", logits, (block, logits.shape[1]))
        probe = h5.create_group("probe")
        n_probe = len(dump.probe_indices)
        _dataset(probe, "indices", np.asarray(dump.probe_indices, np.int64), (n_probe,))
        _dataset(probe, "labels", np.asarray(dump.probe_labels, np.int64), (n_probe,))
        layers = probe.create_group("layers", track_order=True)
        for name, values in dump.layers.items():
            values = np.asarray(values, dtype=np.float32)
            dset = _dataset(layers, name, values, (1, values.shape[1]))
            dset.attrs["shape"] = np.asarray(dump.layer_shapes[name], dtype=np.int64)
        weights = h5.create_group("weights", track_order=True)  # definition order on read
        for name, values in dump.weights.items():
            values = np.asarray(values, dtype=np.float32).ravel()
            _dataset(weights, name, values, (min(len(values), WEIGHT_BLOCK),))
        for key, value in dump.attrs.items():
            if value is None:
                raise CompRepsError(f"dump attribute {key!r} for {path} is None")
            h5.attrs[key] = value


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


@contextlib.contextmanager
def _reading(path: Path) -> Iterator:
    """The open file; any read failure becomes one error naming the file and the rule."""
    h5 = _open(path)
    try:
        with h5:
            yield h5
    except _READ_ERRORS as err:
        raise damaged_file_error(path, f"{type(err).__name__}: {err}") from err


def _attributes(h5, path: Path) -> dict[str, object]:
    missing = [key for key in ATTRIBUTES if key not in h5.attrs]
    if missing:
        raise damaged_file_error(path, f"missing attribute(s) {', '.join(missing)}")
    return {key: _plain(value) for key, value in h5.attrs.items()}


def read_attributes(path: str | os.PathLike) -> dict[str, object]:
    """The file attributes alone (cheap: no dataset is read)."""
    path = Path(path)
    with _reading(path) as h5:
        return _attributes(h5, path)


def stored_layers(path: str | os.PathLike) -> list[str]:
    """The names of the probed layers a dump holds (cheap: no data is read)."""
    path = Path(path)
    with _reading(path) as h5:
        return list(h5["probe/layers"].keys()) if "probe/layers" in h5 else []


def _wanted_layers(h5, path: Path, layers: Iterable[str] | None) -> list[str]:
    stored = list(h5["probe/layers"].keys()) if "probe/layers" in h5 else []
    wanted = stored if layers is None else list(dict.fromkeys(layers))
    absent = [name for name in wanted if name not in stored]
    if absent:
        raise CompRepsError(
            f"{path} holds no activations for layer(s) {', '.join(absent)} (it has: "
            f"{', '.join(stored) or 'none'}); rerun rule '{rebuilding_rule(path)}' with "
            "them in probe.metric_layers or probe.trajectory_layers"
        )
    return wanted


def _read_weights(h5, path: Path) -> dict[str, np.ndarray]:
    if "weights" not in h5 or not len(h5["weights"]):
        raise CompRepsError(
            f"{path} holds no weights (written by an older version); rerun rule "
            f"'{rebuilding_rule(path)}' (e.g. `snakemake --cores all --forcerun {path}`)"
        )
    return {name: values[...] for name, values in h5["weights"].items()}


def read_dump(
    path: str | os.PathLike, layers: Iterable[str] | None = None, weights: bool = False
) -> Dump:
    """Read a dump: ``layers=None`` reads every stored layer, ``weights=True`` every stored
    weight (``False``: none, ``weights`` is then empty). A damaged file, a failed checksum or a
    missing dataset raises one :class:`CompRepsError` naming the file and the rule."""
    path = Path(path)
    with _reading(path) as h5:
        wanted = _wanted_layers(h5, path, layers)
        group = h5["probe/layers"] if wanted else {}
        dump = Dump(
            labels=h5["labels"][...],
            logits=h5["logits"][...],
            probe_indices=h5["probe/indices"][...],
            probe_labels=h5["probe/labels"][...],
            layers={name: group[name][...] for name in wanted},
            layer_shapes={
                name: tuple(int(d) for d in group[name].attrs["shape"]) for name in wanted
            },
            weights=_read_weights(h5, path) if weights else {},
            attrs=_attributes(h5, path),
            path=path,
        )
    check_consistency(dump)
    problem = first_nonfinite(dump)
    if problem is not None:
        raise CompRepsError(
            f"{path}: {problem}; no metric is computed on it. Delete it and rerun rule "
            f"'{rebuilding_rule(path)}' once its checkpoint gives finite values"
        )
    return dump


def check_consistency(dump: Dump) -> None:
    """Shapes agree with one another (a hand-edited or partly written dump fails here)."""
    n_test, n_probe = len(dump.labels), len(dump.probe_indices)
    problems = []
    if np.ndim(dump.logits) != 2 or len(dump.logits) != n_test:
        problems.append(f"logits {np.shape(dump.logits)} for {n_test} labels")
    if np.shape(dump.probe_labels) != (n_probe,):
        problems.append(f"{np.shape(dump.probe_labels)} probe labels for {n_probe} indices")
    elif n_probe and (np.min(dump.probe_indices) < 0 or np.max(dump.probe_indices) >= n_test):
        problems.append("probe indices outside the test set")
    for name, values in dump.layers.items():
        shape = dump.layer_shapes.get(name)
        if np.ndim(values) != 2 or len(values) != n_probe:
            problems.append(f"layer {name} has shape {np.shape(values)} for {n_probe} probe rows")
        elif shape is None or math.prod(shape) != np.shape(values)[1]:
            problems.append(
                f"layer {name}: shape attribute {shape} does not match "
                f"{np.shape(values)[1]} features"
            )
    if problems:
        raise damaged_file_error(dump.path, "; ".join(problems))


def first_nonfinite(dump: Dump) -> str | None:
    """``"<array> holds n NaN and m Inf of k values"`` for the first of the logits, the probed
    layers and the weights (in that order) that is not all finite, or None."""
    arrays = {
        "/logits": dump.logits,
        **{f"layer {name}": values for name, values in dump.layers.items()},
        **{f"weight {name}": values for name, values in dump.weights.items()},
    }
    for name, values in arrays.items():
        values = np.asarray(values)
        finite = np.isfinite(values)
        if not finite.all():
            nan = int(np.isnan(values).sum())
            inf = int(values.size - finite.sum()) - nan
            return f"{name} holds {nan} NaN and {inf} Inf of {values.size} values"
    return None
