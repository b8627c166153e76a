#!/usr/bin/env bash
# The GPU check of issue 7, on a machine with an NVIDIA GPU, in one run under 8 minutes:
#   1. the CUDA backend's tests on the real device (NUMBA_ENABLE_CUDASIM=0), with the tests marked `gpu`;
#   2. gradlab cuda vs gradlab cpu vs PyTorch cuDNN (benchmarks/gpu_compare.py), written to
#      reports/performance/gpu.md and gpu.csv (and to $OUT/ when OUT is set), row by row;
#   3. with GPU_CHECK_BREAKDOWN=1 only (about three minutes more): where the time goes, each time loop timed,
#      the per-step product plans of the stepwise loop, the product kernel and launch costs,
#      benchmarks/gpu_breakdown.py and benchmarks/gpu_step_latency.py (to $OUT/gpu_breakdown.txt).
# Runs from the repository root without installing gradlab (PYTHONPATH=.) and without the internet.
# Every step has a hard timeout, so the script cannot hang; it prints progress as it goes.
#
#   bash scripts/gpu_check.sh                          # PYTHON=python3.12 to choose the interpreter
#   GPU_CHECK_BREAKDOWN=1 bash scripts/gpu_check.sh    # and step 3
#   GPU_CHECK_TINY=1 bash scripts/gpu_check.sh         # every step at a tiny size on the CUDA simulator, writing
#                                                      # nothing under reports/ (the test suite runs this)
#   GPU_CHECK_COMPARE_ARGS="--configs 1000x1x32,100x8x128 --dtypes float32"   # a part of the comparison
#   GPU_CHECK_BREAKDOWN_ARGS="--sections time,profile --configs 1000x1x32"     # a part of step 3
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
TINY=${GPU_CHECK_TINY:-0}
if [ "$TINY" = 1 ]; then
  export NUMBA_ENABLE_CUDASIM=1
  TESTS=(tests/test_cuda.py -k "test_agrees_with_reference and rnn_tanh and float64")
  SIZE=(--tiny)
  REPORTS=${GPU_CHECK_REPORTS:-$(mktemp -d)}  # the tiny table does not replace the measured one
  WHERE="on the CUDA simulator, tiny"
else
  export NUMBA_ENABLE_CUDASIM=0        # the real device, not the simulator (tests/conftest.py respects this)
  TESTS=(tests/test_cuda.py tests/test_cuda_gemm.py tests/test_cuda_launch.py tests/test_cuda_views.py)
  SIZE=()
  REPORTS=reports/performance
  WHERE="on the device"
fi
export PYTHONUNBUFFERED=1
OUTDIR=${OUT:-}
TEST_TIMEOUT=${GPU_CHECK_TEST_TIMEOUT:-200}
COMPARE_BUDGET=${GPU_CHECK_COMPARE_BUDGET:-210}   # no new measurement starts after this many seconds
COMPARE_TIMEOUT=${GPU_CHECK_COMPARE_TIMEOUT:-260}
BREAKDOWN_TIMEOUT=${GPU_CHECK_BREAKDOWN_TIMEOUT:-240}
start=$(date +%s)
log() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*"; }

log "machine"
(command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv) || log "nvidia-smi not available"
timeout 60 "$PY" - <<'PY' || log "version check failed"
import numpy, numba
try:
    from importlib.metadata import version
    nc = version("numba-cuda")
except Exception:
    nc = "absent"
from numba import cuda
print("python", __import__("sys").version.split()[0], "numpy", numpy.__version__, "numba", numba.__version__,
      "numba-cuda", nc, "cuda available:", cuda.is_available())
try:
    import torch
    print("torch", torch.__version__, "cuda:", torch.cuda.is_available(), "cudnn:", torch.backends.cudnn.version())
except Exception as err:
    print("torch: absent", err)
PY

log "1/3 the CUDA tests $WHERE (timeout ${TEST_TIMEOUT}s)"
TEST_LOG=$(mktemp)
timeout -k 10 "$TEST_TIMEOUT" "$PY" -m pytest "${TESTS[@]}" -q -ra -p no:cacheprovider --durations=8 2>&1 | tee "$TEST_LOG"
test_rc=${PIPESTATUS[0]}
log "tests exit code: $test_rc (124 = timed out)"
if [ -n "$OUTDIR" ]; then mkdir -p "$OUTDIR" && cp "$TEST_LOG" "$OUTDIR/gpu_tests.log"; fi

log "2/3 the comparison (budget ${COMPARE_BUDGET}s, timeout ${COMPARE_TIMEOUT}s)"
# shellcheck disable=SC2086  # the extra arguments are meant to split
timeout -k 10 "$COMPARE_TIMEOUT" "$PY" benchmarks/gpu_compare.py --budget "$COMPARE_BUDGET" --out "$REPORTS" \
  ${SIZE[@]+"${SIZE[@]}"} ${GPU_CHECK_COMPARE_ARGS:-}
cmp_rc=$?
log "comparison exit code: $cmp_rc (124 = timed out; rows written so far are kept)"
if [ -f "$REPORTS/gpu.md" ]; then cat "$REPORTS/gpu.md"; fi

if [ "${GPU_CHECK_BREAKDOWN:-0}" = 1 ]; then
  log "3/3 where the time goes (timeout ${BREAKDOWN_TIMEOUT}s + 60s)"
  BD_LOG=$(mktemp)
  # shellcheck disable=SC2086
  { timeout -k 10 "$BREAKDOWN_TIMEOUT" "$PY" benchmarks/gpu_breakdown.py --repeats 10 ${SIZE[@]+"${SIZE[@]}"} \
      ${GPU_CHECK_BREAKDOWN_ARGS:-}
    timeout -k 10 60 "$PY" benchmarks/gpu_step_latency.py ${SIZE[@]+"${SIZE[@]}"}; } 2>&1 | tee "$BD_LOG"
  if [ -n "$OUTDIR" ]; then cp "$BD_LOG" "$OUTDIR/gpu_breakdown.txt"; fi
fi
log "done: tests $test_rc, comparison $cmp_rc"
[ "$test_rc" -eq 0 ] && [ "$cmp_rc" -eq 0 ]
