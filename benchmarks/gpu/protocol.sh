#!/usr/bin/env bash
# The whole visit to the lent GPU machine as ONE call: stages time-boxed and in priority order,
# and after every stage the result files rewritten in the output folder, so a run cut short
# still returns what finished. docs/performance.md ("GPU") has the device tool's call.
#
#   bash benchmarks/gpu/protocol.sh [OUT_DIR]          # default: $OUT, else /tmp/compreps-protocol
#
# Environment (all optional):
#   PRESET     the DAG's preset (presets/gpu-cifar-shaped.yaml; presets/gpu-fashion.yaml ...)
#   EXTRA_CONFIG  more config files after the preset (e.g. a smaller width for a CPU rehearsal)
#   FAMILIES   paper: coreset, prune and quant first, then (STRUCTURED=1, time left) the
#              preset's structured families too | all: every family of the preset at once
#   STAGES     which stages run, in this order: facts setup data bf16 bench gpu_tests dag
#   BUDGET_S   seconds for the whole call, packing included (540: a device call of 570 s)
#   BENCH_ARGS benchmarks/train_throughput.py's arguments (default: width 64, batch 128 on CUDA)
#   PY         the Python (python3; on the GPU machine its torch is the CUDA one)
# Without CUDA (a CPU rehearsal) the stages that need it are recorded as skipped.
#
# OUT_DIR receives at most 8 files (the device tool returns 8): summary.md stages.tsv env.txt
# gpu.txt jobs.tsv epochs.tsv accuracy.tsv logs.tar.gz; stdout ends with summary.md.
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${1:-${OUT:-/tmp/compreps-protocol}}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
PY=${PY:-python3}
PRESET=${PRESET:-presets/gpu-cifar-shaped.yaml}
EXTRA_CONFIG=${EXTRA_CONFIG:-}
FAMILIES=${FAMILIES:-paper}
STRUCTURED=${STRUCTURED:-1}
STAGES=${STAGES:-facts setup data bf16 bench gpu_tests dag}
BUDGET_S=${BUDGET_S:-540}
RESERVE_S=${RESERVE_S:-25}   # kept for the SIGINT->KILL grace (10 s) and the last packing
W=$(mktemp -d "${TMPDIR:-/tmp}/compreps-protocol.XXXXXX")
# Jobs run `python -m compreps` from PATH with src/ first on the path, as the Snakefile says.
PATH="$(dirname "$(command -v "$PY")"):$PATH"
export PATH PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
SUM=$OUT/summary.md STG=$OUT/stages.tsv
printf 'stage\tstart_s\twall_s\trc\tcap_s\n' >"$STG"
{ echo "# compreps GPU protocol, $(date -u +%FT%TZ), budget ${BUDGET_S} s"
  echo "preset: $PRESET ${EXTRA_CONFIG}; families: $FAMILIES; stages: $STAGES"; echo; } >"$SUM"
CUDA=0; "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null && CUDA=1

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
left() { echo $(( T0 + BUDGET_S - RESERVE_S - $(date +%s) )); }
wanted() { [[ " $STAGES " == *" $1 "* ]]; }
pack() { "$PY" benchmarks/gpu/pack.py "$ROOT" "$W" "$OUT" 2>>"$W/pack.log"; }
skip() { echo "- $1: skipped ($2)" >>"$SUM"; printf '%s\t\t\tskipped: %s\t\n' "$1" "$2" >>"$STG"; }

stage() { # stage NAME CAP_S COMMAND...: time-boxed, logged, timed, then packed
  local name=$1 cap=$2; shift 2
  wanted "${name%_structured}" || { skip "$name" "not in STAGES"; return 0; }
  local l; l=$(left); local t=$(( cap < l ? cap : l ))
  (( t >= 15 )) || { skip "$name" "${l} s of the budget left"; return 0; }
  local s; s=$(now_ms)
  echo "== $(date -u +%T) $name (cap ${t} s): $*"
  timeout -s INT -k 10 "$t" "$@" >"$W/$name.log" 2>&1; local rc=$?
  local ms=$(( $(now_ms) - s )) note=""
  (( rc == 124 || rc == 137 )) && note=", TIMED OUT"
  printf '%s\t%d\t%d.%03d\t%d\t%d\n' "$name" $(( s / 1000 - T0 )) $(( ms / 1000 )) \
    $(( ms % 1000 )) "$rc" "$t" >>"$STG"
  echo "- $name: ran, rc $rc, $(( ms / 1000 )) s (cap ${t} s$note)" >>"$SUM"
  pack >/dev/null
  return 0
}
cuda_stage() { # the same for a stage that needs CUDA
  if (( CUDA )) || ! wanted "$1"; then stage "$@"; else skip "$1" "no CUDA device"; fi
}
quote() { sed 's/^/    /' >>"$SUM"; }

start_sampler() { # GPU power, utilisation, clocks, memory every second, for the whole call
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi dmon -s pucm -o DT -d 1 >"$W/dmon.txt" 2>&1 &
    DMON=$!
  fi
}
facts() {
  date -u; uname -a; echo "cores: $(nproc)"; free -g; df -h "$ROOT" /tmp
  command -v nvidia-smi >/dev/null && nvidia-smi --format=csv \
    --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit
  "$PY" - <<'PYEOF'
import sys, numpy, torch
cuda = torch.cuda.is_available()
print(sys.version)
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
      torch.backends.cudnn.version(), "device", torch.cuda.get_device_name(0) if cuda else "none")
print("numpy", numpy.__version__)
PYEOF
  echo "wheels carried: $(ls .whl 2>/dev/null | wc -l)"; ls data
}
bench_args() {
  [[ -n ${BENCH_ARGS:-} ]] && { echo "$BENCH_ARGS"; return; }
  local dataset root
  read -r dataset root < <("$PY" benchmarks/gpu/prepare_data.py --show "$PRESET" $EXTRA_CONFIG)
  echo -n "--dataset $dataset --data-root $root "
  if (( CUDA )); then echo "--steps 100 --warmup 15 --compile-modes default,reduce-overhead"
  else echo "--width 8 --steps 4 --warmup 1 --num-workers 1"; fi
}
dag() { # dag NAME [overlay]: the preset's DAG, base first, repacked every minute while it runs
  local dag_args=(--workflow-profile profiles/gpu --configfile "$PRESET" $EXTRA_CONFIG "${@:2}"
                  --keep-going --prioritize results/seed-42/checkpoints/base.pt)
  rm -f "$W/stop"
  # Its own output goes nowhere: a sleep left behind must not hold the caller's pipe open.
  ( n=0; while [[ ! -f $W/stop ]]; do sleep 5; (( ++n % 12 )) || pack; done ) >/dev/null 2>&1 &
  local packer=$!
  stage "$1" 100000 "$PY" -m snakemake "${dag_args[@]}"
  touch "$W/stop"; kill "$packer" 2>/dev/null; wait "$packer" 2>/dev/null
  grep -E "steps \([0-9]+%\) done" "$W/$1.log" 2>/dev/null | tail -n 1 | quote
}
cleanup() { [[ -n ${DMON:-} ]] && kill "$DMON" 2>/dev/null; DMON=; }
trap cleanup EXIT

echo "facts: not in STAGES" >"$OUT/env.txt"
wanted facts && { start_sampler; facts >"$OUT/env.txt" 2>&1; }
HAS_CUDA=no; ((CUDA)) && HAS_CUDA=yes
echo "- facts: CUDA $HAS_CUDA, $(grep -m1 '^torch ' "$OUT/env.txt")" >>"$SUM"
stage setup 120 env PY="$PY" bash benchmarks/gpu/setup_gpu_machine.sh
tail -n 2 "$W/setup.log" 2>/dev/null | quote
stage data 90 "$PY" benchmarks/gpu/prepare_data.py "$PRESET" $EXTRA_CONFIG
tail -n 1 "$W/data.log" 2>/dev/null | quote
cuda_stage bf16 90 "$PY" -m pytest -p no:cacheprovider -q -m gpu tests/test_gpu.py -k bf16
tail -n 1 "$W/bf16.log" 2>/dev/null | quote
stage bench 150 "$PY" benchmarks/train_throughput.py $(bench_args)
grep -E "^\||^ratio|^ResNet" "$W/bench.log" 2>/dev/null | quote
cuda_stage gpu_tests 150 "$PY" -m pytest -p no:cacheprovider -q -m gpu tests/test_gpu.py \
  -k "kill or ci_dag"
tail -n 1 "$W/gpu_tests.log" 2>/dev/null | quote
if [[ $FAMILIES == paper ]]; then
  printf '%s\n' "families: [coreset, prune, quant]" "struct_l1: {levels: []}" \
    "nexp: {levels: []}" "fold: {levels: []}" >"$W/paper.yaml"
  dag dag "$W/paper.yaml"
  (( STRUCTURED )) && dag dag_structured
else
  dag dag
fi
cleanup
pack | quote
echo "- total: $(( $(date +%s) - T0 )) s" >>"$SUM"
pack >/dev/null
cat "$SUM"
