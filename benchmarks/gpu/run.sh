#!/usr/bin/env bash
# The GPU benchmark, end to end on a fresh machine in under 5 minutes (BUDGET_S=300):
# a Python with CUDA JAX, then benchmarks.pooling and benchmarks.hybrid trimmed to fit,
# results in $OUT as pooling-<gpu>.md|json and hybrid-<gpu>.md|json (<gpu>: the slug of
# jax.devices()[0].device_kind, e.g. nvidia-h200), plus the index README.md and run.log.
#
#   OUT=/tmp/out benchmarks/gpu/run.sh           # on a GPU machine
#   OUT=/tmp/out benchmarks/gpu/run.sh --cpu     # rehearsal on a CPU machine (CPU jax, --quick sizes)
#
# Which Python (first that applies):
#   --python PATH   that interpreter, as it is (no install);
#   python3         if it already has a JAX with a GPU backend, flax and numpy (machines
#                   with no package index, e.g. this workplace's GPU image: nothing is installed);
#   a venv          $VENV (default /tmp/jaxpool-bench-venv; reused if it imports jax and flax)
#                   with $JAX_SPEC (default jax[cuda12]==0.10.2, the CPU tables' version;
#                   jax==0.10.2 with --cpu), $FLAX_SPEC (flax==0.12.8) and numpy from the
#                   package index, and $TORCH_SPEC (torch==2.13.0) from $TORCH_INDEX
#                   (default https://download.pytorch.org/whl/cpu: the CPU build, ~190 MB,
#                   instead of PyPI's CUDA build and its GBs; empty: pip's own index).
#                   jax[cuda12] brings the CUDA wheels (~3 GB): 1-2 minutes on a fast link.
# --no-torch: the venv gets no torch (then its candidates are n/a and nothing is checked
# against torch; a Python that has torch keeps using it).
# A CPU build of torch is not timed beside a GPU, only used for the checks; a CUDA torch
# (python3 on a machine that has one) is timed too.
#
# Trimming: batch 256 for the batch-32 cases (the default on an accelerator), 0.2 s of
# timed calls per candidate and direction (3 to 50 samples of 10 back-to-back calls),
# 2 warm-up calls; pooling starts no new case once its share of the time left is spent
# (the report lists the cases not run), hybrid gets the rest (it is skipped under 40 s).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
START=$SECONDS
BUDGET_S=${BUDGET_S:-300}
OUT=${OUT:-$ROOT/benchmarks/results}
VENV=${VENV:-/tmp/jaxpool-bench-venv}
ARGS="$*"
CPU=0
PY=""
TORCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1 ;;
    --python) PY=$2; shift ;;
    --no-torch) TORCH=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$CPU" = 1 ]; then
  JAX_SPEC=${JAX_SPEC:-jax==0.10.2}
  BACKEND=cpu
else
  JAX_SPEC=${JAX_SPEC:-jax[cuda12]==0.10.2}
  BACKEND=gpu
fi
FLAX_SPEC=${FLAX_SPEC:-flax==0.12.8}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX=${TORCH_INDEX-https://download.pytorch.org/whl/cpu}
mkdir -p "$OUT"
LOG=$OUT/run.log
: >"$LOG"
say() { echo "[run.sh $((SECONDS - START)) s] $*" | tee -a "$LOG" >&2; }
left() { echo $((BUDGET_S - (SECONDS - START))); }

# 1. Python ---------------------------------------------------------------------------
has_jax() {  # has_jax PYTHON: JAX on $BACKEND, flax and numpy import
  "$1" -c "import sys, jax, flax, numpy; sys.exit(jax.default_backend() != '$BACKEND')" >/dev/null 2>&1
}
if [ -n "$PY" ]; then
  say "python: $PY (as given)"
elif command -v python3 >/dev/null && has_jax python3; then
  PY=$(command -v python3)
  say "python: $PY already has JAX on $BACKEND and flax: nothing to install"
elif [ -x "$VENV/bin/python" ] && has_jax "$VENV/bin/python"; then
  PY=$VENV/bin/python
  say "python: reusing the venv $VENV"
else
  say "python: creating the venv $VENV and installing $JAX_SPEC $FLAX_SPEC numpy"
  python3 -m venv "$VENV"
  PY=$VENV/bin/python
  "$PY" -m pip install -q --disable-pip-version-check --prefer-binary "$JAX_SPEC" "$FLAX_SPEC" numpy 2>&1 | tee -a "$LOG"
  if [ "$TORCH" = 1 ]; then
    say "installing $TORCH_SPEC${TORCH_INDEX:+ from $TORCH_INDEX}"
    "$PY" -m pip install -q --disable-pip-version-check ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH_SPEC" 2>&1 | tee -a "$LOG"
  fi
  say "installed: $(du -sh "$VENV" | cut -f1) in $VENV"
fi

export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # leave GPU memory to a CUDA torch as well
export PYTHONUNBUFFERED=1
export BENCHMARK_LAUNCHER="benchmarks/gpu/run.sh${ARGS:+ $ARGS}"  # recorded in the reports
if ! "$PY" -c "
import jax, jaxpool
assert jaxpool.__file__.startswith('$ROOT'), jaxpool.__file__
assert jax.default_backend() == '$BACKEND', f'JAX runs on {jax.default_backend()}, not $BACKEND'
print('jax', jax.__version__, jax.devices(), '- jaxpool from', jaxpool.__file__)
" 2>&1 | tee -a "$LOG"; then
  say "FAILED: this Python cannot run jaxpool on $BACKEND (see above)"
  exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
  --format=csv 2>&1 | tee -a "$LOG" || true

# 2. Benchmarks -------------------------------------------------------------------------
TRIM=(--budget 0.2 --warmup 2 --min-repeats 3 --max-repeats 50 --out "$OUT")
[ "$CPU" = 1 ] && TRIM+=(--quick)
SPARE=25  # seconds kept for writing the reports and for the last case's overrun
POOLING_S=$(( ($(left) - SPARE) * 3 / 4 ))
if [ "$POOLING_S" -lt 30 ]; then
  say "FAILED: only $(left) s left of BUDGET_S=$BUDGET_S after the install"
  exit 1
fi
say "pooling: new cases until ${POOLING_S} s have passed (hard stop at $(( $(left) - 5 )) s)"
timeout $(( $(left) - 5 )) "$PY" -m benchmarks.pooling "${TRIM[@]}" --time-limit "$POOLING_S" 2>&1 | tee -a "$LOG" \
  || say "pooling failed or was stopped (exit ${PIPESTATUS[0]}): see run.log"
HYBRID_S=$(( $(left) - 10 ))
if [ "$HYBRID_S" -ge 40 ]; then
  say "hybrid: ${HYBRID_S} s at most"
  timeout "$HYBRID_S" "$PY" -m benchmarks.hybrid "${TRIM[@]}" 2>&1 | tee -a "$LOG" \
    || say "hybrid did not finish in ${HYBRID_S} s: no hybrid table"
else
  say "hybrid skipped: $(left) s left"
fi
say "done in $((SECONDS - START)) s; in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
