"""Time the metrics of N compressed models against base at the paper's probe size.

Generated data, no files needed: for each model, activations of the paper's layers at width 64
(200 probe samples × layer1 65,536 / layer2 32,768 / layer3 16,384 / layer4 8,192 /
layer4.1.conv2 8,192 / fc 10 features), logits for 10,000 test images and ResNet-18 weights
(11.2 M, random, with the CIFAR ResNet-18's module names and sizes). The timed call is
:func:`compreps.analysis.metrics.step.compare_models`, the same code path as the ``metrics`` step
after the
dumps are read; base's decompositions are computed once (timed separately) and reused. Settings
are config.yaml's (``compreps.core.settings``). ``--io`` also times reading one dump (weights
included) written through :func:`compreps.core.dump.write_dump`. No torch is imported.

    .venv/bin/python benchmarks/metrics_speed.py [--models 24] [--threads 2] [--io]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

LAYER_WIDTHS = {  # features per probe sample at width 64 (CIFAR 32×32 input)
    "layer4.1.conv2": 512 * 4 * 4,
    "fc": 10,
    "layer1": 64 * 32 * 32,
    "layer2": 128 * 16 * 16,
    "layer3": 256 * 8 * 8,
    "layer4": 512 * 4 * 4,
    "avgpool": 512,
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=24)
    parser.add_argument("--probe", type=int, default=200)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    parser.add_argument("--io", action="store_true", help="also time reading one HDF5 dump")
    return parser.parse_args(argv)


def structured_activations(rng, n, d, labels, rank=60):
    """Non-negative, low-rank-plus-noise, class-dependent activations (ReLU-like)."""
    import numpy as np

    basis = rng.standard_normal((rank, d), dtype=np.float32)
    scores = rng.standard_normal((n, rank), dtype=np.float32) / np.arange(1, rank + 1) ** 0.7
    scores[:, :10] += 2.0 * np.eye(10, dtype=np.float32)[labels % 10]
    x = scores @ basis + 0.3 * rng.standard_normal((n, d), dtype=np.float32)
    return np.maximum(x, 0, out=x)


def perturbed(rng, x, scale):
    import numpy as np

    noise = rng.standard_normal(x.shape, dtype=np.float32)
    noise *= scale * float(x.std())
    return np.maximum(x + noise, 0)


def make_dump(layers, logits, labels, probe, weights, name):
    from compreps.core.dump import Dump

    return Dump(
        labels=labels,
        logits=logits,
        probe_indices=probe,
        probe_labels=labels[probe],
        layers=layers,
        layer_shapes={k: (v.shape[1],) for k, v in layers.items()},
        weights=weights,
        attrs={
            "accuracy": 0.9,
            "model": name,
            "family": "prune",
            "level": 0.5,
            "checkpoint_sha256": "0",
            "dataset": "cifar10",
            "arch": "resnet18",
            "width": 64,
        },
        path=Path(f"<generated {name}>"),
    )


def resnet18_weight_sizes(width: int) -> dict[str, int]:
    """Conv2d/Linear module name -> weight size of the CIFAR ResNet-18 at ``width``."""
    sizes = {"conv1": 3 * 9 * width}
    channels = [width, width, 2 * width, 4 * width, 8 * width]
    for stage in range(1, 5):
        c_in, c_out = channels[stage - 1], channels[stage]
        for block in range(2):
            sizes[f"layer{stage}.{block}.conv1"] = (c_in if block == 0 else c_out) * 9 * c_out
            sizes[f"layer{stage}.{block}.conv2"] = c_out * 9 * c_out
            if block == 0 and c_in != c_out:
                sizes[f"layer{stage}.0.downsample.0"] = c_in * c_out
    sizes["fc"] = 8 * width * 10
    return sizes


def base_weights(rng, width):
    import numpy as np

    return {
        name: (rng.standard_normal(size, dtype=np.float32) / np.sqrt(size / 64))
        for name, size in resnet18_weight_sizes(width).items()
    }


def time_hdf5_read(dump, layers):
    from compreps.core.dump import read_dump, write_dump

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prune-0.5.h5"
        write_dump(path, dump)
        size_mb = path.stat().st_size / 2**20
        start = time.perf_counter()
        read_dump(path, layers, weights=True)
        return time.perf_counter() - start, size_mb


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import numpy as np  # after the thread settings
    import yaml

    from compreps.analysis.metrics.compare import compare_layer
    from compreps.analysis.metrics.step import Reference, compare_models, summarize
    from compreps.analysis.metrics.value import Metric
    from compreps.core.settings import settings_from_config

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    config["probe"]["trajectory_layers"] = [k for k in LAYER_WIDTHS if k not in ("layer4.1.conv2",)]

    rng = np.random.default_rng(0)
    n_classes = 10
    labels = np.arange(args.test_size) % n_classes
    probe = np.sort(rng.choice(args.test_size, args.probe, replace=False))
    everything = settings_from_config(config)
    settings, probe_settings = everything.metrics, everything.probe
    base_layers = {
        name: structured_activations(rng, args.probe, d, labels[probe])
        for name, d in LAYER_WIDTHS.items()
    }
    base_logits = rng.standard_normal((args.test_size, n_classes), dtype=np.float32) * 4
    weights0 = base_weights(rng, args.width)
    reference = Reference(make_dump(base_layers, base_logits, labels, probe, weights0, "base"))

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, BLAS threads "
        f"{args.threads or 'default'}, load average {os.getloadavg()[0]:.2f}; numpy "
        f"{np.__version__}",
    )
    print(
        f"data: {args.models} models, probe {args.probe}, test set {args.test_size}, layers "
        + ", ".join(f"{k} {v}" for k, v in LAYER_WIDTHS.items())
        + f", {sum(w.size for w in weights0.values()) / 1e6:.1f} M weights"
    )
    start = time.perf_counter()
    for layer in probe_settings.layers:
        reference.summary(layer, settings)
    base_time = time.perf_counter() - start
    print(f"base decompositions (once): {base_time:.2f} s")

    total = 0.0
    per_layer = dict.fromkeys(probe_settings.layers, 0.0)
    for i in range(args.models):
        scale = 0.1 + 0.05 * i
        layers = {name: perturbed(rng, x, scale) for name, x in base_layers.items()}
        logits = base_logits + scale * rng.standard_normal(base_logits.shape, dtype=np.float32)
        weights = {
            k: w + scale * float(w.std()) * rng.standard_normal(w.size, dtype=np.float32)
            for k, w in weights0.items()
        }
        outputs = make_dump(layers, logits, labels, probe, weights, "prune-0.5")
        start = time.perf_counter()
        frame = compare_models("prune-0.5", reference, outputs, settings, probe_settings)
        total += time.perf_counter() - start
        for layer in probe_settings.layers:  # the per-layer share, timed separately
            start = time.perf_counter()
            compare_layer(
                reference.summary(layer, settings),
                summarize(outputs, layer, settings),
                Metric(1.0),
                Metric(1.0),
                settings,
            )
            per_layer[layer] += time.perf_counter() - start
        assert frame["value"].notna().all()
    print(
        f"compare_models, {args.models} models: total {total:.2f} s "
        f"({total / args.models:.2f} s per model); with base: {total + base_time:.2f} s"
    )
    print(
        "per layer (summary + comparison, summed over models): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in per_layer.items())
    )
    if args.io:
        seconds, size_mb = time_hdf5_read(outputs, probe_settings.layers)
        print(
            f"reading one dump with weights ({size_mb:.0f} MB, lzf + fletcher32, 1 sample "
            f"per chunk): {seconds:.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
