"""The layer x pooling x dataset matrix of the chosen profile, for every model.

Each case: (1) look up the case's accuracy, computed once per (model, dataset) from a
single forward pass; (2) measure the model's own peak memory encoding a fixed
pre-tokenized batch up to the case's layer with that pooling (untimed, also the
warm-up); (3) time the same work on the encoder's device; (4) put everything in
extra_info, device and dtype taken from the encoder that computed them (GloVe: cpu,
float32 in every profile); (5) gate the Spearman two-sided against its reference
(rwkv_eval.suite.gates) and record the paired comparisons to the model's best setting and to
GloVe-50d (rwkv_eval.analyses.paired).

A prompted model (profile `template`, `--template`) is its own key beside the plain one
and shares its loaded weights; its timed batch is the prompted text, so tokens and time
include the prompt, as they would in use.
"""

from __future__ import annotations

import pytest

from rwkv_eval.suite.gates import FAIL, MISSING, judge_case
from rwkv_eval.records import LAYER_CONVENTION, environment

TIMED_SENTENCES = 32


def test_similarity(case, run, timed, peak_memory, benchmark):
    model_case, data_case, layer, pooling = case
    model = run.model(model_case)  # device, dtype and weights
    encoder = run.encoder(model_case)  # the model behind the case's template, if any
    accuracy = run.accuracy(model_case, data_case)
    records = [r for (_, l, p), r in accuracy.items() if l == layer and p == pooling]

    # a fixed batch: the first unique sentences of the set, prompted and tokenized outside the timer
    pairs = run.pairs(data_case)
    first = pairs[0] if isinstance(pairs, list) else pairs
    sentences = list(dict.fromkeys(first.sentence1[:TIMED_SENTENCES] + first.sentence2[:TIMED_SENTENCES]))[:TIMED_SENTENCES]
    token_ids = encoder.tokenize(sentences)
    n_tokens = sum(min(len(t), model.max_length) for t in token_ids)

    def work():
        return encoder.encode_tokens(token_ids, [layer], [pooling], batch_size=TIMED_SENTENCES)

    memory = peak_memory(work, model)  # untimed, so it is also the warm-up round
    seconds = timed(work, device=str(model.device))

    main = records[0] if len(records) == 1 else next(r for r in records if r["dataset"].endswith("/concat"))
    info = benchmark.extra_info
    info.update(environment(encoder.device))
    info.update({
        "profile": run.profile_name, "model_key": model_case.key, "trained": model_case.trained,
        "layer": layer, "layer_convention": LAYER_CONVENTION, "pooling": pooling,
        "timed_batch_sentences": len(sentences), "timed_batch_tokens": n_tokens,
        "seconds_per_sentence": seconds / len(sentences),
        "seconds_per_pair": 2 * seconds / len(sentences),
        "sentences_per_second": len(sentences) / seconds,
        "pairs_per_second": len(sentences) / seconds / 2,
        "tokens_per_second": n_tokens / seconds,
        "device": str(model.device), "dtype": str(model.dtype).removeprefix("torch."),
        "run_device": run.device, "run_dtype": run.dtype, "run_dtype_source": run.dtype_source,
    } | memory)
    for key in ("model", "revision", "arch", "dataset", "split", "n_pairs", "dataset_source", "dataset_revision",
                "sha256", "spearman", "pearson", "n_zero_vector_pairs", "n_truncated", "max_length", "wkv_backend",
                "n_sentences_encoded", "cache_hits", "cache_misses"):
        if key in main:
            info[key] = main[key]
    # None when unprompted, so every record says whether it was; part of the gate key when set
    info["template"], info["template_text"] = main.get("template"), main.get("template_text")
    lo, hi = main["spearman_ci95"]
    info["spearman_ci95_low"], info["spearman_ci95_high"] = lo, hi
    info["accuracy_encode_pairs_per_second"] = main.get("pairs_per_second")
    if len(records) > 1:  # a multi-domain year: every domain, the pooled set and the mean
        info["domains"] = {r["dataset"]: {"spearman": r["spearman"], "n_pairs": r["n_pairs"]} for r in records}
    if not model_case.trained:
        info["note"] = "random-init weights: Spearman is meaningless; timing and memory are real"

    # --- accuracy gate and paired significance (rwkv_eval.suite.gates, rwkv_eval.analyses.paired)
    for r in records:  # an STS year: gate the mean and size-weighted mean of the domains beside concat
        for agg in ("mean", "wmean"):
            if r["dataset"].endswith(f"/{agg}"):
                info[f"spearman_{agg}"] = r["spearman"]
    info.update(run.paired(model_case, data_case, main["dataset"]).get((layer, pooling), {}))
    verdicts = judge_case(info, run.references, run.accept_new_cases)
    run.gates += verdicts
    failures = [v.line() for v in verdicts if v.status in (FAIL, MISSING)]
    if failures:
        pytest.fail("Spearman gate: " + "; ".join(failures), pytrace=False)
