#!/usr/bin/env bash
# The prepared GPU check: one short run on a CUDA machine, output under reports/.
#
#   scripts/gpu_check.sh              # run it (needs torch with CUDA and a visible GPU)
#   scripts/gpu_check.sh --dry-run    # list the steps without running them (no GPU needed)
#   scripts/gpu_check.sh --out DIR    # write to DIR instead of reports/gpu-check-<UTC time>
#
# Steps:
#   1. the gpu-marked tests: fp16/bf16 vs float64 on the growth model (residual > 65504)
#      on every CUDA device (cuda:N included), CUDA-event timing and per-device peak
#      memory without fakes;
#   2. the throughput benchmarks in bfloat16 and float16 on cuda:0 (matmul limit from
#      back-to-back matmuls, native RWKV-6 12 x 768, Finch-1B6 shape 24 x 2048 sweep
#      vs full pass), one JSON each;
#   3. a summary: achieved TFLOP/s and the fraction of the device's matmul peak.
# Environment: PYTHON (default: python).
set -euo pipefail

PY="${PYTHON:-python}"
OUT="reports/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)"
DRY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1; shift ;;
    --out) [[ $# -ge 2 ]] || { echo "gpu_check: --out needs a directory" >&2; exit 2; }; OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (use --dry-run, --out DIR)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."

STEPS=(
  "$PY -m pytest tests -m gpu -q -p no:cacheprovider -rs"
  "$PY -m pytest benchmarks/test_throughput.py --rwkv-profile perf -q -p no:cacheprovider --device cuda:0 --dtype bfloat16 --benchmark-json $OUT/throughput-bfloat16.json"
  "$PY -m pytest benchmarks/test_throughput.py --rwkv-profile perf -q -p no:cacheprovider --device cuda:0 --dtype float16 --benchmark-json $OUT/throughput-float16.json"
  "$PY scripts/gpu_summary.py $OUT/throughput-bfloat16.json $OUT/throughput-float16.json"
)

if [[ $DRY -eq 1 ]]; then
  echo "gpu_check (dry run): would write $OUT/gpu_check.log and run:"
  printf '  %s\n' "${STEPS[@]}"
  exit 0
fi

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to torch ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo "torch not importable with $PY")): run it on a CUDA machine with a CUDA build of torch, or --dry-run to list the steps" >&2
  exit 2
fi

mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
{
  echo "# scripts/gpu_check.sh at $(git rev-parse HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv 2>/dev/null || true
} | tee "$LOG"
status=0
for step in "${STEPS[@]}"; do
  echo "\$ $step" | tee -a "$LOG"
  # shellcheck disable=SC2086  # the steps are word-split on purpose
  $step 2>&1 | tee -a "$LOG" || status=1
done
echo "gpu_check: $( [[ $status -eq 0 ]] && echo passed || echo FAILED ); log in $LOG" | tee -a "$LOG"
exit $status
