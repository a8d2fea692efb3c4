"""Question 3: what aggregating intermediate layers costs next to final-layer inference.

Per native RWKV model and dataset: every single layer and the aggregations of
`aggregation.default_aggregations` are scored (Spearman with CI) from one forward pass;
then, on a fixed pre-tokenized batch of the set's sentences, the final layer alone
(pytest-benchmark's timed target) and each method are timed against it in the same run
(measure.compare_times: warm-up, alternating order, rounds by time, median, CI), and each
method's peak memory is measured in a separate call. extra_info["aggregation"] holds one
record per method: depth executed, vector size, ρ and CI, seconds per pair, extra seconds
per pair and time ratio (with CI) vs the final layer, the compute bound of the speed-up
(blocks of the final layer / blocks run) with its fault flag, peak memory
and its excess over the final layer. The report draws the Pareto plot from it.

Perf profile (light, for 2 CPU cores; `smoke_sample` in the records): the tiny trained
RWKV-6 on a seeded sample of SMOKE_PAIRS pairs of STS-B test (or the bundled STS-B sample
without a data root) and the random-init smoke shape on the bundled sample, sentences cut at SMOKE_MAX_LENGTH tokens. Other profiles (`--model
RWKV/v6-Finch-1B6-HF --device cuda`): the full STS-B test and MRPC validation.
"""

from __future__ import annotations

import pytest

from rwkv_eval.models.load import is_shipped
from rwkv_eval.records import environment

pytestmark = pytest.mark.rwkv_cost  # a cost benchmark: the perf profile runs it, smoke does not

SMOKE_PAIRS = 64
SMOKE_MAX_LENGTH = 128
TIMED_SENTENCES = 32
MIN_ROUNDS, MIN_TIME_S = 5, 1.0  # measure.compare_times: at least this many rounds and seconds (smoke: 5, 0.5)


def _cases(run):
    from rwkv_eval.datasets import load_pairs

    given = run.config.getoption("--model") or []  # repeatable option: a list
    smoke = run.profile_name == "perf"
    if given:
        models = [(m.rstrip("/").split("/")[-1].lower(), m) for m in given]
    else:
        models = [(m.key, m.spec) for m in run.profile.models if is_shipped(m.spec, "tiny-rwkv6")]
        models.append(("rwkv6-random-smoke", "random-rwkv6:smoke"))
    sets = [("stsb", "test")] + ([] if smoke else [("mrpc", "validation")])
    out = []
    for key, spec in models:
        found = []
        for name, split in sets:
            try:
                load_pairs(name, split, run.profile.data_dir, allow_hub=False)
                found.append((name, split))
            except FileNotFoundError:
                pass
        if spec.startswith("random-") or not found:
            found = [("stsb-sample", "test")]
        out += [((key, spec, smoke, n, s), f"{key}/{n}-{s}") for n, s in found]
    return out


def pytest_generate_tests(metafunc):
    if "agg_case" in metafunc.fixturenames:
        from rwkv_eval.suite.plugin import get_run

        cases = _cases(get_run(metafunc.config))
        metafunc.parametrize("agg_case", [c for c, _ in cases], ids=[i for _, i in cases])


def test_aggregation_cost_vs_final_layer(agg_case, run, timed, peak_memory, benchmark):
    import torch

    from rwkv_eval.analyses.aggregation import aggregation_seconds, default_aggregations, evaluate_aggregations, single
    from rwkv_eval.datasets import load_pairs, load_sample, sample
    from rwkv_eval.measure import bound_check
    from rwkv_eval.models.load import load_encoder

    key, spec, smoke, name, split = agg_case
    enc = load_encoder(spec, device=run.device, dtype=getattr(torch, run.dtype), seed=0,
                       max_length=SMOKE_MAX_LENGTH if smoke else None)
    pairs = load_sample() if name == "stsb-sample" else load_pairs(name, split, run.profile.data_dir)
    if smoke:
        pairs = sample(pairs, SMOKE_PAIRS)
    n_layer = max(la for la in enc.layers() if isinstance(la, int)) + 1
    aggs = default_aggregations(n_layer)
    records = evaluate_aggregations(enc, pairs, aggs, ["mean"], batch_size=32)

    sentences = list(dict.fromkeys(pairs.sentence1 + pairs.sentence2))[:TIMED_SENTENCES]
    tok = enc.tokenize(sentences)
    final = single(n_layer - 1)

    def encode(a):
        return lambda: a.combine(enc.encode_tokens(tok, list(a.layers), ["mean"], TIMED_SENTENCES).vectors, "mean")

    # peak memory in separate, untimed calls: the final layer and every aggregation (a single
    # layer keeps no more alive than the final layer does)
    memory = {a.name: peak_memory(encode(a), enc) for a in [final, *aggs] if a.kind != "single" or a == final}
    final_s = timed(encode(final), min_rounds=1, max_rounds=1, warmup_rounds=0)
    min_rounds, min_time = (5, 0.5) if smoke else (MIN_ROUNDS, MIN_TIME_S)
    timings = aggregation_seconds(enc, tok, aggs, "mean", batch_size=TIMED_SENTENCES, min_rounds=min_rounds,
                                  min_time=min_time)
    per_pair = 2 / len(sentences)  # a pair = two sentences
    base_mem = memory[final.name]["peak_memory_delta_mb"]
    for r in records:
        t = timings.record(r["aggregation"])
        s, final_s, (lo, hi) = t["seconds"], t["baseline_seconds"], t["speedup_ci95"]
        m = memory.get(r["aggregation"], {"peak_memory_mb": None, "peak_memory_delta_mb": None, "memory_kind": None})
        r.update({k: v for k, v in t.items() if k.startswith("timing")}
                 | bound_check(t["speedup"], t["speedup_ci95"], n_layer / r["depth"]))  # same tokens, fewer blocks
        r.update({"seconds_per_pair": s * per_pair, "final_seconds_per_pair": final_s * per_pair,
                  "extra_seconds_per_pair": (s - final_s) * per_pair, "time_ratio_vs_final": s / final_s,
                  "time_ratio_ci95": [1 / hi, 1 / lo],
                  "peak_memory_mb": m["peak_memory_mb"], "peak_memory_delta_mb": m["peak_memory_delta_mb"],
                  "extra_peak_memory_mb": (None if base_mem is None or m["peak_memory_delta_mb"] is None
                                           else m["peak_memory_delta_mb"] - base_mem),
                  "memory_kind": m["memory_kind"], "is_final_layer": r["aggregation"] == final.name})
    info = benchmark.extra_info
    info.update(environment(enc.device))
    info.update({"analysis": "aggregation", "model_key": key, "trained": not spec.startswith("random-"),
                 "aggregation_dataset": f"{name}-{split}", "smoke_sample": smoke, "device": run.device,
                 "dtype": run.dtype, "timed_sentences": len(sentences), "timing_rounds": timings.rounds,
                 "final_layer_seconds_pytest_benchmark": final_s, "aggregation": records})
    # an aggregation of the first half of the blocks runs half the depth
    assert {r["depth"] for r in records if r["kind"] == "single"} == set(range(1, n_layer + 1))
