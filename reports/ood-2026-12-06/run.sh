#!/bin/sh
# The committed OOD runs of issue 18 (CPU, 2 shared cores, HF_HUB_OFFLINE=1, data root /work/shared/data).
# 1. GloVe-50d on every pair of every set: the overlap table and novel vs whole-domain figures.
# 2. tiny RWKV-6 (all blocks, mean) and GloVe-50d on seeded 150-pair subsets, paired: the corrected verdicts.
set -e
D=${RWKV_EVAL_DATA:-/work/shared/data}
OUT=reports/ood-2026-12-06
python -m rwkv_eval ood --model glove-6b-50d --data-dir "$D" --pooling mean --output $OUT/ood-glove-full.json > $OUT/ood-glove-full.txt
python -m rwkv_eval ood --model tests/assets/tiny-rwkv-6v0-1m.pth --model glove-6b-50d \
    --pair tests/assets/tiny-rwkv-6v0-1m.pth,glove-6b-50d --pooling mean --data-dir "$D" --subset 150 \
    --output $OUT/ood-rwkv6-glove-subset150.json > $OUT/ood-rwkv6-glove-subset150.txt
# 3. GloVe-50d on MRPC validation: the record's spearman_max beside ρ
python -m rwkv_eval evaluate --model glove-6b-50d --dataset mrpc --split validation --data-dir "$D" \
    --output $OUT/mrpc-glove-validation.json > $OUT/mrpc-glove-validation.txt
# 4. the binary-gold ceiling of every binary split in the data root (a property of the labels alone)
python - "$D" > $OUT/spearman_max.json <<'PY'
import json, sys
from rwkv_eval.datasets import DatasetNotFound, get, load_pairs, names
out = {}
for n in names():
    for s in (get(n).splits if get(n).binary else ()):
        try:
            p = load_pairs(n, s, sys.argv[1])
        except DatasetNotFound:
            continue
        out[f"{n}/{s}"] = {"n_pairs": len(p), "positives": int(p.gold.sum()), "spearman_max": p.provenance()["spearman_max"]}
print(json.dumps(out, indent=1))
PY
