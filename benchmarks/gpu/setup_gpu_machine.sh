#!/usr/bin/env bash
# Run ON the GPU machine (no network), from anywhere, after download_wheels.sh filled .whl/ here
# and the tree travelled with it (`carry: [".whl"]`). Changes only what is missing:
#   1. snakemake and torch-pruning from .whl/ without dependencies (torch-pruning would
#      otherwise pull a torch; Snakemake's PuLP is not carried);
#   2. the requirements of compreps and Snakemake (benchmarks/gpu/requirements.py) from .whl/
#      with --no-index: pip keeps every package the machine has in a fitting version (its own
#      jinja2, pyyaml, requests, ...) and installs what is missing or does not fit;
#   3. compreps itself, editable, without dependencies (the machine's CUDA torch stays).
# No `set -e`: every step runs and reports; the exit status says whether all of them passed.
#   PY=/path/to/python3 bash benchmarks/gpu/setup_gpu_machine.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
PY="${PY:-python3}"
WHEEL_DIR="${WHEEL_DIR:-.whl}"
failed=()
step() { # step NAME COMMAND...: run, report, remember a failure, go on
  echo "== $1"
  "${@:2}" || { echo "!! $1 failed (exit $?)"; failed+=("$1"); }
}
pip_install() { "$PY" -m pip install --no-index --disable-pip-version-check "$@"; }

if [[ -d $WHEEL_DIR ]]; then
  step "snakemake and torch-pruning, no dependencies" pip_install --no-deps \
    "$WHEEL_DIR"/snakemake-[0-9]*.whl "$WHEEL_DIR"/torch_pruning-*.whl
  mapfile -t wanted < <("$PY" benchmarks/gpu/requirements.py)
  if ! step "requirements, only what is missing" pip_install --find-links "$WHEEL_DIR" "${wanted[@]}"
  then # one requirement pip cannot meet offline must not keep the others out
    for requirement in "${wanted[@]}"; do
      step "requirement $requirement" pip_install --find-links "$WHEEL_DIR" "$requirement"
    done
  fi
else
  echo "no $WHEEL_DIR: nothing installed (bash benchmarks/gpu/download_wheels.sh fills it)"
fi
if ! "$PY" -c "import compreps" 2>/dev/null; then
  step "compreps, editable, no dependencies" pip_install --no-deps --no-build-isolation -e .
fi
"$PY" -m pip check  # informational: e.g. "snakemake requires pulp" (not carried)
step "imports" "$PY" -c "import snakemake, torch_pruning, jsonschema, compreps, torch
from importlib.metadata import version
print('snakemake', version('snakemake'), 'torch-pruning', version('torch-pruning'),
      'torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
if (( ${#failed[@]} )); then
  printf 'setup: failed: %s\n' "${failed[@]}"
  exit 1
fi
echo "setup: all steps passed"
