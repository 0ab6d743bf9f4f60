#!/usr/bin/env bash
# Run HERE (a machine with the package registry): the wheels the offline GPU machine lacks.
# It has Python 3.12 with torch, numpy, scipy, pandas, h5py, matplotlib, pyyaml, pytest, jinja2
# but not Snakemake, jsonschema or torch-pruning (docs/performance.md, "GPU"). Writes .whl/
# (git-ignored, 53 wheels, ~13 MiB), which travels with the tree (`carry: [".whl"]`); there,
# benchmarks/gpu/setup_gpu_machine.sh installs from it.
#   PY_VERSION=3.11 WHEEL_DIR=/tmp/whl311 bash benchmarks/gpu/download_wheels.sh   # another Python
set -euo pipefail
cd "$(dirname "$0")/../.."
PIP="${PIP:-.venv/bin/pip}"
PY_VERSION="${PY_VERSION:-3.12}"
WHEEL_DIR="${WHEEL_DIR:-.whl}"
pinned() { # the version constraints.txt pins for package $1 (case-insensitive)
  grep -i -E "^$1==" constraints.txt | head -n 1 | cut -d= -f3
}
mkdir -p "$WHEEL_DIR"
# Snakemake (pinned as in constraints.txt) and its dependencies as wheels for that Python; the
# dependencies are not held to constraints.txt: some of its pins (greenlet) have no cp312 wheel
# in the registry here. connection_pool ships no wheel: built from its sdist (pure Python).
"$PIP" wheel --no-deps -w "$WHEEL_DIR" "connection_pool==$(pinned connection_pool)"
"$PIP" download --only-binary=:all: --python-version "$PY_VERSION" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  --find-links "$WHEEL_DIR" -d "$WHEEL_DIR" "snakemake==$(pinned snakemake)"
# torch-pruning without its dependencies (torch and numpy are the machine's own): without it
# every structured-family job fails there with ModuleNotFoundError.
"$PIP" download --no-deps --only-binary=:all: -d "$WHEEL_DIR" "torch-pruning==$(pinned torch-pruning)"
# PuLP (16 MiB) is left out: the tree, the wheels and Fashion-MNIST must fit in 64 MiB together;
# Snakemake falls back to its greedy scheduler without it.
rm -f "$WHEEL_DIR"/pulp-*.whl
ls "$WHEEL_DIR" | wc -l
du -sh "$WHEEL_DIR"
