"""Layer aggregations: values against an independent computation from token states, one pass
that stops at the deepest layer needed, every pooling, records, errors."""

import numpy as np
import pytest

from rwkv_eval.analyses.aggregation import aggregation_seconds, default_aggregations, evaluate_aggregations
from rwkv_eval.datasets import PairSet
from rwkv_eval.evaluation import Aggregation, concat, first_last_layer_avg, layer_mean, single, weighted_sum
from rwkv_eval.models.rwkv import RWKVEncoder
from rwkv_eval.models.rwkv6 import RWKV6, RWKV6Config
from rwkv_eval.models.tokenizers import ByteTokenizer
from rwkv_eval.pooling import POOLINGS

SENTENCES = ["a cat sat on the mat", "dogs bark", "the quick brown fox", "x", "rain again", "hello world!"]
N_LAYER = 6


@pytest.fixture(scope="module")
def enc():
    cfg = RWKV6Config(n_layer=N_LAYER, n_embd=32, n_head=4, head_size=8, dim_ffn=64, vocab_size=256, dim_mix=4,
                      dim_decay=8)
    return RWKVEncoder(RWKV6.random(cfg, seed=2), ByteTokenizer(), name="test-rwkv6", revision="seed=2")


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(1)
    i = rng.permutation(len(SENTENCES))
    return PairSet("toy", "test", tuple(SENTENCES), tuple(SENTENCES[j] for j in i), rng.uniform(0, 5, len(i)),
                   "graded", (0.0, 5.0), "test", "rev")


def test_mean_aggregation_equals_mean_pooling_of_layer_averaged_token_states(enc):
    """Independent path: token states of every layer, averaged over layers, then over tokens."""
    emb = enc.encode(SENTENCES, list(range(N_LAYER)), ["mean"], keep_states=True)
    for agg in (layer_mean(1, 4), first_last_layer_avg(0, N_LAYER - 1), weighted_sum([0, 2, 5], [1, 1, 2])):
        got = agg.combine(emb.vectors, "mean")
        w = agg.weights or [1 / len(agg.layers)] * len(agg.layers)
        want = np.stack([sum(wi * emb.states[la][s] for wi, la in zip(w, agg.layers)).mean(axis=0)
                         for s in range(len(SENTENCES))])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=agg.name)


def test_concat_and_names(enc):
    emb = enc.encode(SENTENCES, [2, 5], ["max"])
    v = concat(2, 5).combine(emb.vectors, "max")
    np.testing.assert_array_equal(v, np.concatenate([emb[(2, "max")], emb[(5, "max")]], axis=1))
    assert first_last_layer_avg(0, 5).name == "first_last_layer_avg[0,5]"  # not the first_last token pooling
    assert layer_mean(0, 3).name == "layer_mean[0..3]" and layer_mean(0, 3).depth == 4
    assert weighted_sum([1, 3]).weights == pytest.approx((1 / 3, 2 / 3))  # default: proportional to k + 1


def test_one_pass_stops_at_the_deepest_layer_needed(enc, pairs):
    calls = [0] * N_LAYER
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: calls.__setitem__(k, calls[k] + 1))
             for k, b in enumerate(enc.model.blocks)]
    try:
        recs = evaluate_aggregations(enc, pairs, [layer_mean(0, 2), concat(1, 2), single(0)], ["mean", "last"],
                                     batch_size=64)
    finally:
        for h in hooks:
            h.remove()
    assert calls == [1, 1, 1, 0, 0, 0]  # one batch, blocks 0..2 once each, 3.. never
    assert {r["depth"] for r in recs} == {3, 1} and len(recs) == 6


def test_every_aggregation_with_every_pooling_against_scipy_on_the_encoders_vectors(enc, pairs):
    """Each record's Spearman is scipy's on numpy cosines of the aggregation combined from the
    encoder's vectors of each side in pair order (no deduplication, batches of one)."""
    from scipy import stats

    aggs = [layer_mean(0, 2), concat(2, 5), first_last_layer_avg(0, 5), weighted_sum(range(N_LAYER)), single(2)]
    assert len(default_aggregations(N_LAYER)) == N_LAYER + 6
    recs = evaluate_aggregations(enc, pairs, aggs, POOLINGS, batch_size=4)
    assert len(recs) == len(aggs) * len(POOLINGS)
    assert all(r["spearman"] is not None and -1 <= r["spearman"] <= 1 for r in recs)
    sides = [enc.encode(list(side), list(range(N_LAYER)), POOLINGS, batch_size=1).vectors
             for side in (pairs.sentence1, pairs.sentence2)]
    by_name = {a.name: a for a in aggs}
    for r in recs:
        a, b = (by_name[r["aggregation"]].combine(v, r["pooling"]).astype(np.float64) for v in sides)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert r["spearman"] == pytest.approx(stats.spearmanr(cos, pairs.gold).statistic, abs=1e-6), r["aggregation"]
        if r["kind"] == "concat":
            assert r["vector_size"] == 32 * len(r["layers"])
    assert {"model", "revision", "dataset_revision", "spearman_ci95", "n_pairs"} <= set(recs[0])


def test_seconds_are_measured_for_each_method(enc):
    tok = enc.tokenize(SENTENCES)
    t = aggregation_seconds(enc, tok, [single(0), layer_mean(0, 2)], "mean", batch_size=4, min_rounds=1, min_time=0.0)
    assert set(t.seconds) == {"final", "L0", "layer_mean[0..2]"} and t.baseline == "final"
    assert all(t.median(n) > 0 for n in t.seconds)


@pytest.mark.parametrize("make, match", [
    (lambda: Aggregation("median", (1, 2)), "unknown aggregation"),
    (lambda: Aggregation("single", (1, 2)), "takes 1 layer"),
    (lambda: Aggregation("concat", (3,)), "at least 2 layers"),
    (lambda: Aggregation("concat", (3, 3)), "listed twice"),
    (lambda: Aggregation("layer_mean", (1, 2), (0.5, 0.5)), "weights are for weighted_sum only"),
    (lambda: Aggregation("weighted_sum", (1, 2), (0.9, 0.9)), "summing to 1"),
    (lambda: weighted_sum([1, 2], [1.0]), "one finite weight"),
    (lambda: layer_mean(3, 1), "first < last"),
    (lambda: single(-1), "block indices >= 0"),
])
def test_bad_aggregations_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_layers_beyond_the_model_are_refused(enc, pairs):
    with pytest.raises(ValueError, match=r"layers \[6\] not in test-rwkv6 \(blocks 0..5\)"):
        evaluate_aggregations(enc, pairs, [concat(0, 6)], ["mean"])


def test_pareto_front_by_hand():
    from rwkv_eval.report.aggregation import pareto_front

    pts = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.7), (0.5, 0.1)]
    assert pareto_front(pts) == [4, 0, 1]  # (1.5, 0.4) is beaten by (1.0, 0.5); (3.0, 0.7) by (2.0, 0.7)


def _aggregation_record(name, kind, depth, rho, spp, final=False):
    return {"aggregation": name, "kind": kind, "layers": [depth - 1], "depth": depth, "vector_size": 32,
            "pooling": "mean", "spearman": rho, "spearman_ci95": [rho - 0.1, rho + 0.1], "n_pairs": 64,
            "seconds_per_pair": spp, "extra_seconds_per_pair": spp - 0.02, "time_ratio_vs_final": spp / 0.02,
            "extra_peak_memory_mb": 0.0, "is_final_layer": final}


def test_report_section_and_pareto_plot(tmp_path):
    from rwkv_eval.report import build_report

    recs = [_aggregation_record("L0", "single", 1, 0.30, 0.004), _aggregation_record("L5", "single", 6, 0.20, 0.02, True),
            _aggregation_record("layer_mean[0..2]", "layer_mean", 3, 0.35, 0.011)]
    run = {"benchmarks": [{"name": "test_aggregation_cost_vs_final_layer[m/stsb-test]", "stats": {"mean": 1.0},
                           "extra_info": {"analysis": "aggregation", "model_key": "m", "trained": True,
                                          "aggregation_dataset": "stsb-test", "timed_sentences": 32,
                                          "aggregation": recs}}],
           "datetime": "2026-11-28T08:00:00", "commit_info": {"id": "abc1234"}, "machine_info": {}}
    folder = build_report(run, [], tmp_path, "r")
    text = (folder / "summary.md").read_text()
    assert "## Layer aggregation vs final layer (question 3)" in text
    row = next(line for line in text.splitlines() if "layer_mean[0..2]" in line)
    assert row.startswith("| P |") and "0.3500 [0.250, 0.450]" in row
    assert next(line for line in text.splitlines() if "| L5 |" in line).startswith("| ★ |")
    assert next(line for line in text.splitlines() if "| L0 |" in line).startswith("| ◆P |")
    pytest.importorskip("matplotlib")
    assert (folder / "aggregation_pareto__m__stsb-test.png").stat().st_size > 1000
    assert "aggregation_pareto__m__stsb-test.png" in text
