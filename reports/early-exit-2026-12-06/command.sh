#!/bin/sh
# The early-exit figures of README.md ("Research questions", question 4), run from the repository root
# with the data root of /work/shared/data (ROOT/stsb/...). One torch thread: the host is a shared,
# loaded 2-core VM, where two OpenMP threads spin-wait against other jobs and single calls vary 10-40x.
# --max-pairs 300 (seeded sample, seed 0; the threshold is chosen on 300 validation pairs): the full test
# split (9 CPU-minutes of work here) did not fit the shared host's budget; the command without it is the full run.
OMP_NUM_THREADS=1 python -m rwkv_eval exit --model tests/assets/tiny-rwkv-6v0-1m.pth \
    --dataset stsb --split test --data-dir "${ROOT:-/work/shared/data}" \
    --criterion saturation --tau 1,0.999,0.99,0.95,-1 --patience 1 --depths 0,1,5,11 \
    --choose-threshold-on validation --max-rho-loss 0.01 --rounds 5 --min-time 1 --max-pairs 300 \
    --output reports/early-exit-2026-12-06/stsb-test-300.json > reports/early-exit-2026-12-06/stsb-test-300.txt
