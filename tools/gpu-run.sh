#!/usr/bin/env bash
# gpu-run.sh [REPORT_DIR] [--dry-run] - the whole GPU-side validation in one
# command (docs/cuda.md "One-call GPU run"): run from the repository root with
# the pack (make gpu-pack, default .gpu/; GPU_PACK=DIR for another) beside it.
#
# Steps, each under its own `timeout` so the run ends within 8 minutes (the
# budgets below sum to 465 s): nvidia-smi facts, the kernel suite, the forward
# suite, compute-sanitizer memcheck (small-model suite) and racecheck (kernel
# suite, quick form) when the tool is there, bench-gpu (1B and 8B, F16 and
# BF16), the transformers baseline (tools/gpu-baseline.py). Writes
# REPORT_DIR/report.md (default gpu-report/) and each step's raw log
# REPORT_DIR/NN-step.log; prints the summary tables last.
#
# --dry-run: every step's command line, budget and report section as on the
# GPU, run here: the binaries are GPU_RUN_BIN (default: the pack's, which
# print "SKIP: no CUDA device" without a GPU; bin-emu for the CUDA emulator
# build, where the suites run in quick form and bench-gpu with --smoke), the
# baseline with --dry-run (shapes only, no torch needed). A missing tool is
# a SKIP row, not a failure. Exit status: 0 when no step failed or timed out
# (in a dry run: when none failed; the emulator is slower than the budgets).
set -uo pipefail
REPORT=gpu-report
DRY=0
for a in "$@"; do
  case "$a" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n 2,19p "$0"; exit 0 ;;
    -*) echo "gpu-run: unknown option $a" >&2; exit 2 ;;
    *) REPORT=$a ;;
  esac
done
PACK=${GPU_PACK:-.gpu}
BIN=${GPU_RUN_BIN:-$PACK/bin}
[ -x "$BIN/inferno-test-gpu" ] && [ -x "$BIN/inferno-bench-gpu" ] ||
  { echo "gpu-run: $BIN/inferno-test-gpu or inferno-bench-gpu missing (make gpu-pack)" >&2; exit 2; }
mkdir -p "$REPORT" || exit 2
REPORT=$(cd "$REPORT" && pwd)
# The pack's libraries first; the CUDA toolkit's where the binaries' rpath
# does not reach (the GPU machine's toolkit may live elsewhere).
LIBS=$PWD/$PACK/lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d $d ] && LIBS=$LIBS:$d; done
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export INFERNO_SHARED=$PWD/$PACK/shared
export PYTHONUNBUFFERED=1
WORK=${GPU_RUN_TMP:-/dev/shm}
[ -d "$WORK" ] && [ -w "$WORK" ] || WORK=/tmp
WORK=$(mktemp -d "$WORK/inferno-gpu-run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export TMPDIR=$WORK

SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
      /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
PY=$(command -v python3 || true)
QUICK=() SMOKE=() PYDRY=() LB=()
# Line-buffered stdout, so a step stopped by its timeout keeps the rows it printed.
command -v stdbuf > /dev/null && LB=(stdbuf -oL)
if [ $DRY = 1 ]; then QUICK=(env INFERNO_GPU_TEST_QUICK=1); SMOKE=(--smoke); PYDRY=(--dry-run); fi

MD=$REPORT/report.md
STEPS=$REPORT/steps.tsv
: > "$STEPS"
{
  echo "# inferno-worker GPU run$([ $DRY = 1 ] && echo ' (DRY RUN: not a GPU result)')"
  echo
  echo "- started: $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(uname -n), $(uname -r)"
  echo "- binaries: $BIN; pack manifest: $(head -2 "$PACK/MANIFEST" 2>/dev/null | tail -1 || echo none)"
  echo "- compute-sanitizer: ${SAN:-not found}; python3: ${PY:-not found}"
  echo
} > "$MD"

N=0
# step NAME BUDGET_S CMD...: runs CMD under timeout, its log in NN-NAME.log,
# one report section and one steps.tsv row. A command given as "-" with a
# reason is a SKIP (tool absent).
step() {
  local name=$1 budget=$2; shift 2
  N=$((N + 1))
  local log; log=$(printf '%s/%02d-%s.log' "$REPORT" $N "$name")
  local status rc=0 t0 t1 secs
  t0=$(date +%s.%N)
  if [ "$1" = - ]; then
    shift; echo "SKIP: $*" > "$log"; status=SKIP
  else
    echo "\$ $*" > "$log"
    timeout -k 5 "$budget" "$@" >> "$log" 2>&1; rc=$?
    if [ $rc = 124 ] || [ $rc = 137 ]; then status=TIMEOUT
    elif [ $rc != 0 ]; then status=FAIL
    elif grep -q '^SKIP' "$log"; then status=SKIP
    else status=ok; fi
  fi
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$budget" "$secs" "$status" "$rc" >> "$STEPS"
  {
    echo "## $N. $name: $status ($secs s of $budget s, exit $rc)"
    echo
    echo '```'
    echo "$(head -1 "$log")"
    echo '```'
    echo
    echo "Log: $(basename "$log"), last lines:"
    echo
    echo '```'
    tail -n 25 "$log"
    echo '```'
    echo
  } >> "$MD"
  echo "gpu-run: $name: $status ($secs s of $budget s)" >&2
}

facts() {
  if ! command -v nvidia-smi > /dev/null; then echo "SKIP: nvidia-smi not found"; return 0; fi
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem,power.limit,temperature.gpu \
    --format=csv || return 1
  nvidia-smi
  nvcc --version 2>/dev/null | tail -1
  [ -n "$PY" ] && "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
  return 0
}

# Budgets (seconds): 20 + 45 + 60 + 45 + 45 + 150 + 100 = 465 < 480 (facts imports
# torch, which can take seconds on a cold machine).
step facts 20 env PY="$PY" bash -c "$(declare -f facts); facts"
step gpu_kernels 45 "${QUICK[@]}" "${LB[@]}" "$BIN/inferno-test-gpu" gpu_kernels
step gpu_forward 60 "${QUICK[@]}" "${LB[@]}" "$BIN/inferno-test-gpu" gpu_forward
if [ -n "$SAN" ] && [ $DRY = 0 ]; then
  step memcheck 45 env INFERNO_CUDA_GRAPHS=0 "$SAN" --tool memcheck --error-exitcode 1 "$BIN/inferno-test-gpu" gpu_memcheck
  step racecheck 45 env INFERNO_GPU_TEST_QUICK=1 "$SAN" --tool racecheck --error-exitcode 1 "$BIN/inferno-test-gpu" gpu_kernels
else
  # The command lines stand in the report either way.
  why="compute-sanitizer ${SAN:+not run in a dry run}${SAN:-not found}"
  step memcheck 45 - "$why: env INFERNO_CUDA_GRAPHS=0 compute-sanitizer --tool memcheck --error-exitcode 1 $BIN/inferno-test-gpu gpu_memcheck"
  step racecheck 45 - "$why: env INFERNO_GPU_TEST_QUICK=1 compute-sanitizer --tool racecheck --error-exitcode 1 $BIN/inferno-test-gpu gpu_kernels"
fi
# 1b first: bench-gpu still writes each random model as a GGUF file (into
# $WORK, RAM-backed /dev/shm when there) before loading it, and the 8B ones
# (16 GB each) may not fit the budget; the 1B rows land either way.
step bench_gpu 150 "${LB[@]}" "$BIN/inferno-bench-gpu" --models 1b,8b --types bf16,f16 --quick --dir "$WORK" "${SMOKE[@]}"
if [ -n "$PY" ]; then
  step baseline 100 "$PY" tools/gpu-baseline.py --models 8b,1b --budget 90 "${PYDRY[@]}"
else
  step baseline 100 - "python3 not found: python3 tools/gpu-baseline.py --models 8b,1b --budget 90"
fi

# ---- summary tables (printed last) -------------------------------------------
BENCH_LOG=$(ls "$REPORT"/*-bench_gpu.log)
BASE_LOG=$(ls "$REPORT"/*-baseline.log)
{
  echo "## Summary"
  echo
  echo "| step | budget s | took s | status | exit |"
  echo "|---|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$STEPS"
  echo
  echo "### bench-gpu (ours)"
  echo
  grep -E '^(device|read bandwidth)' "$BENCH_LOG"
  echo
  grep '^|' "$BENCH_LOG" || echo "(no rows)"
  echo
  echo "### transformers baseline (theirs)"
  echo
  grep '^|' "$BASE_LOG" || echo "(no rows)"
  echo
  echo "### ours / theirs (time per step or per prefill; under 1: ours faster)"
  echo
  echo "| model | test | ours ms | ours of floor | theirs ms | ratio |"
  echo "|---|---|---|---|---|---|"
  # Rows match on model and test name; ours in BF16 (the baseline's type).
  # Prefill rows carry tok/s: converted to ms per prompt.
  awk -F'|' '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function ms(test, v) { if (test ~ /^prefill/) { split(test, w, " "); return v > 0 ? 1e3 * w[2] / v : 0 } return v }
    FNR == NR && NF >= 8 && trim($3) == "bf16" { t = trim($4); split(trim($5), m, " "); ours[trim($2) "|" t] = ms(t, m[1]); pct[trim($2) "|" t] = trim($7) }
    FNR != NR && NF >= 6 && trim($2) != "model" && trim($2) !~ /^-/ {
      k = trim($2) "|" trim($4); split(trim($5), m, " "); th = ms(trim($4), m[1])
      if (k in ours && th > 0)
        printf "| %s | %s | %.3f | %s | %.3f | %.2f |\n", trim($2), trim($4), ours[k], pct[k], th, ours[k] / th
      else printf "| %s | %s | %s | %s | %.3f | - |\n", trim($2), trim($4), (k in ours) ? ours[k] : "-",
                  (k in ours) ? pct[k] : "-", th
    }' "$BENCH_LOG" "$BASE_LOG"
} > "$REPORT/summary.md"
cat "$REPORT/summary.md" >> "$MD"
echo
cat "$REPORT/summary.md"
echo
echo "report: $MD"
# A dry run on the CUDA emulator runs the suites far slower than a GPU, so
# there a TIMEOUT shows the budget is enforced; only a FAIL fails it.
if [ $DRY = 1 ]; then ! grep -qE $'\tFAIL\t' "$STEPS"; else ! grep -qE $'\t(FAIL|TIMEOUT)\t' "$STEPS"; fi
