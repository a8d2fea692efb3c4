#!/bin/sh
# The committed run of README "Label-free layer diagnostics": 300 seeded STS-B test pairs,
# layers chosen on 300 seeded validation pairs, post-processing fitted on 300 seeded train pairs.
# Run from the checkout root with RWKV_EVAL_DATA pointing at the data root (stsb/, rwkv-tiny/).
set -e
OUT=reports/diagnostics-2026-12-06
CACHE=${CACHE:-$(mktemp -d)}
for spec in glove-6b-50d "$RWKV_EVAL_DATA/rwkv-tiny/tiny-rwkv-6v0-1m.pth" "$RWKV_EVAL_DATA/rwkv-tiny/tiny-rwkv-7v0-834K.pth" \
            sentence-transformers/all-MiniLM-L6-v2; do
  name=$(basename "$spec" .pth)
  for post in none center whiten; do
    python -m rwkv_eval evaluate --model "$spec" --dataset stsb --split test --subset 300 --pooling mean \
      --diagnostics --postprocess $post --resamples 1000 --cache-dir "$CACHE" \
      --output "$OUT/$name--$post.json" > "$OUT/$name--$post.txt"
  done
done
