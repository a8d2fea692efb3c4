"""evaluation (the one scorer, STS12-16 aggregates, kept similarities) and paired
(significance against the best setting and a baseline), against numpy and scipy computed
here: on a fake encoder whose vectors are known, and on a small random RWKV-6 whose vectors
are taken one sentence at a time (no batching, no deduplication, no shared code path)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rwkv_eval.datasets import PairSet
from rwkv_eval.encoder import Embeddings
from rwkv_eval.evaluation import evaluate, evaluate_pairs, first_last_layer_avg, score_sets, sts_aggregate
from rwkv_eval.metrics import paired_difference
from rwkv_eval.analyses.paired import BETTER, SAME, WORSE, PairedSet, compare


class TableEncoder:
    """Sentence 'sN' -> a fixed random vector per (layer, pooling); 'good' settings follow the gold."""

    name, revision = "table", "t1"

    def __init__(self, vectors: dict[tuple, dict[str, np.ndarray]]):
        self.table = vectors

    def layers(self):
        return (0, 1)

    def encode(self, sentences, layers, poolings, batch_size=32, keep_states=False):
        return Embeddings({(l, p): np.stack([self.table[(l, p)][s] for s in sentences]) for l in layers
                           for p in poolings if (l, p) in self.table}, n_sentences=len(sentences))

    def provenance(self):
        return {"model": self.name, "revision": self.revision}


def make_sets(sizes=(40, 120), seed=0):
    rng = np.random.default_rng(seed)
    sets, k = [], 0
    for j, n in enumerate(sizes):
        s1 = tuple(f"s{k + i}" for i in range(n))
        s2 = tuple(f"s{k + n + i}" for i in range(n))
        k += 2 * n
        sets.append(PairSet(f"sts12/dom{j}", "test", s1, s2, rng.uniform(0, 5, n), "graded", (0.0, 5.0),
                            f"file{j}", f"{j:064x}"))
    return sets


def make_encoder(sets, noise, seed=1):
    """Vectors whose pair cosine tracks gold with the given noise per (layer, pooling)."""
    rng = np.random.default_rng(seed)
    table = {}
    for key, sigma in noise.items():
        vec = {}
        for p in sets:
            for a, b, g in zip(p.sentence1, p.sentence2, p.gold):
                angle = (5 - g) / 5 * np.pi / 2 + rng.normal(0, sigma)
                vec[a], vec[b] = np.array([1.0, 0.0]), np.array([np.cos(angle), np.sin(angle)])
        table[key] = vec
    return TableEncoder(table)


def test_sts_aggregates_concat_mean_and_wmean_as_the_field_names_them():
    sets = make_sets()
    enc = make_encoder(sets, {(0, "mean"): 0.3})
    recs = {r["dataset"]: r for r in evaluate(enc, sets, [0], ["mean"], aggregate="sts12")}
    assert list(recs) == ["sts12/dom0", "sts12/dom1", "sts12/concat", "sts12/mean", "sts12/wmean"]
    sims = {}
    for p in sets:  # cosine of the 2-d vectors, by hand
        a = np.stack([enc.table[(0, "mean")][s] for s in p.sentence1])
        b = np.stack([enc.table[(0, "mean")][s] for s in p.sentence2])
        sims[p.name] = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    per = [stats.spearmanr(sims[p.name], p.gold).statistic for p in sets]
    assert [recs[p.name]["spearman"] for p in sets] == pytest.approx(per, abs=1e-9)
    concat = stats.spearmanr(np.concatenate(list(sims.values())), np.concatenate([p.gold for p in sets])).statistic
    assert recs["sts12/concat"]["spearman"] == pytest.approx(concat, abs=1e-9)
    assert recs["sts12/mean"]["spearman"] == pytest.approx((per[0] + per[1]) / 2, abs=1e-12)
    assert recs["sts12/wmean"]["spearman"] == pytest.approx((40 * per[0] + 120 * per[1]) / 160, abs=1e-12)
    assert recs["sts12/wmean"]["spearman"] != pytest.approx(recs["sts12/mean"]["spearman"], abs=1e-6)


@pytest.fixture(scope="module")
def rwkv():
    from rwkv_eval.models.rwkv import RWKVEncoder
    from rwkv_eval.models.rwkv6 import RWKV6, RWKV6Config
    from rwkv_eval.models.tokenizers import ByteTokenizer

    cfg = RWKV6Config(n_layer=3, n_embd=32, n_head=4, head_size=8, dim_ffn=64, vocab_size=256, dim_mix=4,
                      dim_decay=8)
    return RWKVEncoder(RWKV6.random(cfg, seed=4), ByteTokenizer(), name="test-rwkv6", revision="seed=4")


WORDS = "the a cat dog sat ran on under mat park red blue quickly slowly and rain sun".split()


def sentence_sets(sizes=(9, 23)):
    """Two domains of unequal size; sentences repeat within and across them (the scorer
    deduplicates, the oracle below does not)."""
    rng = np.random.default_rng(7)
    pool = [" ".join(rng.choice(WORDS, size=rng.integers(2, 9))) for _ in range(30)]
    sets = []
    for j, n in enumerate(sizes):
        s1 = tuple(pool[k] for k in rng.integers(0, len(pool), n))
        s2 = tuple(pool[k] for k in rng.integers(0, len(pool), n))
        sets.append(PairSet(f"sts13/d{j}", "test", s1, s2, rng.uniform(0, 5, n), "graded", (0.0, 5.0), f"f{j}",
                            f"{j:064x}"))
    return sets


_ALONE: dict = {}


def one_at_a_time(enc, sentences, layer, pooling):
    """(N, D) float64: each sentence encoded alone, in a batch of one (cached per sentence)."""
    for s in sentences:
        if s not in _ALONE:
            _ALONE[s] = enc.encode([s], ["emb", 0, 1, 2], ["mean", "last"], batch_size=1)
    return np.stack([_ALONE[s][(layer, pooling)][0] for s in sentences]).astype(np.float64)


def numpy_cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_records_are_numpy_cosines_and_scipy_spearman_of_vectors_taken_one_sentence_at_a_time(rwkv):
    sets = sentence_sets()
    ev = evaluate_pairs(rwkv, sets, [0, 2], ["mean", "last"], batch_size=4, aggregate="sts13")
    recs = {(r["dataset"], r["layer"], r["pooling"]): r for r in ev.records}
    for layer in (0, 2):
        for pooling in ("mean", "last"):
            sims, rhos = [], []
            for p in sets:
                sim = numpy_cosine(one_at_a_time(rwkv, p.sentence1, layer, pooling),
                                   one_at_a_time(rwkv, p.sentence2, layer, pooling))
                np.testing.assert_allclose(ev.similarities[(p.name, layer, pooling)], sim, atol=1e-5)
                rho = stats.spearmanr(sim, p.gold).statistic
                r = recs[(p.name, layer, pooling)]
                assert r["spearman"] == pytest.approx(rho, abs=1e-6)
                assert r["pearson"] == pytest.approx(stats.pearsonr(sim, p.gold).statistic, abs=1e-5)
                assert r["n_pairs"] == len(p) and r["n_zero_vector_pairs"] == 0
                sims.append(sim)
                rhos.append(rho)
            concat = stats.spearmanr(np.concatenate(sims), np.concatenate([p.gold for p in sets])).statistic
            assert recs[("sts13/concat", layer, pooling)]["spearman"] == pytest.approx(concat, abs=1e-6)
            assert recs[("sts13/mean", layer, pooling)]["spearman"] == pytest.approx(np.mean(rhos), abs=1e-6)
            wmean = (9 * rhos[0] + 23 * rhos[1]) / 32
            assert recs[("sts13/wmean", layer, pooling)]["spearman"] == pytest.approx(wmean, abs=1e-6)
    n_unique = len({s for p in sets for s in p.sentence1 + p.sentence2})
    assert {r["n_sentences"] for r in ev.records} == {n_unique} and n_unique < sum(2 * len(p) for p in sets)
    assert len(ev.records) == 2 * 2 * (2 + 3)


def test_an_aggregated_setting_is_the_layer_average_of_vectors_taken_one_sentence_at_a_time(rwkv):
    sets = sentence_sets()
    scored = score_sets(rwkv, sets, [1], ["mean"], batch_size=5, aggregations=["first_last", first_last_layer_avg(
        "emb", 1)])
    assert list(scored.aggregations) == ["first_last", "first_last_layer_avg[emb,1]"]
    assert scored.settings == [(1, "mean"), ("first_last_layer_avg[0,2]", "mean"),
                               ("first_last_layer_avg[emb,1]", "mean")]
    for name, (first, last) in (("first_last_layer_avg[0,2]", (0, 2)), ("first_last_layer_avg[emb,1]", ("emb", 1))):
        for i, p in enumerate(sets):
            side = [(one_at_a_time(rwkv, s, first, "mean") + one_at_a_time(rwkv, s, last, "mean")) / 2
                    for s in (p.sentence1, p.sentence2)]
            np.testing.assert_allclose(scored.sims[(name, "mean")][i], numpy_cosine(*side), atol=1e-5, err_msg=name)
        assert scored.vector_sizes[(name, "mean")] == 32
    assert scored.encode.batch_size == 5 and scored.blocks == 3


def test_sts_aggregate_on_unequal_domains_by_hand_on_floats_and_resampled_arrays():
    """Three domains of 3, 5 and 12 pairs: concat correlates the pooled pairs; mean and wmean
    average per-domain values (floats, or resampled arrays row by row) with weights 3, 5, 12."""
    rng = np.random.default_rng(11)
    gold = [rng.normal(size=n) for n in (3, 5, 12)]
    sims = [g + rng.normal(size=len(g)) for g in gold]
    rho = [0.1, 0.5, 0.9]
    assert sts_aggregate("mean", rho, sims, gold) == pytest.approx(0.5, abs=1e-15)
    assert sts_aggregate("wmean", rho, sims, gold) == pytest.approx((0.3 + 2.5 + 10.8) / 20, abs=1e-15)
    assert isinstance(sts_aggregate("wmean", rho, sims, gold), float)
    pooled = stats.spearmanr(np.concatenate(sims), np.concatenate(gold)).statistic
    assert sts_aggregate("concat", rho, sims, gold) == pytest.approx(pooled, abs=1e-12)
    resampled = [np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([0.5, 0.25])]
    np.testing.assert_allclose(sts_aggregate("mean", resampled, sims, gold), [0.5, 1.25 / 3], atol=1e-15)
    np.testing.assert_allclose(sts_aggregate("wmean", resampled, sims, gold), [(5 + 6) / 20, (3 + 3) / 20],
                               atol=1e-15)
    got = sts_aggregate("concat", resampled, sims, gold, correlate=lambda x, g: (len(x), float(g.sum())))
    assert got == (20, pytest.approx(float(sum(g.sum() for g in gold))))
    with pytest.raises(ValueError, match="unknown STS aggregate 'median'"):
        sts_aggregate("median", rho, sims, gold)
    with pytest.raises(ValueError, match="one correlation per domain; got 2 for 3 domains"):
        sts_aggregate("wmean", rho[:2], sims, gold)


def test_paired_comparison_finds_the_best_and_a_real_difference():
    sets = make_sets((300,))
    noise = {(0, "mean"): 0.1, (0, "max"): 0.1, (1, "mean"): 1.5}
    ev = evaluate_pairs(make_encoder(sets, noise), sets, [0, 1], ["mean", "max"])
    ps = PairedSet(ev, "sts12/dom0")
    out = compare(ps)
    best = ps.best()
    assert best in ((0, "mean"), (0, "max")) and out[best]["vs_best"]["is_best"]
    other = (0, "max") if best == (0, "mean") else (0, "mean")
    assert not out[other]["vs_best"]["significantly_worse"]  # same noise level: no real difference
    assert out[(1, "mean")]["vs_best"]["significantly_worse"] and out[(1, "mean")]["vs_best"]["delta_ci95"][1] < 0
    # the shared-resample shortcut gives exactly metrics.paired_difference
    d = paired_difference(ev.similarities[("sts12/dom0", 1, "mean")], ev.similarities[("sts12/dom0",) + best],
                          ev.gold["sts12/dom0"])
    mine = out[(1, "mean")]["vs_best"]
    assert mine["delta_ci95"] == pytest.approx(d.pop("delta_ci95"), abs=1e-12)
    assert {k: mine[k] for k in d} == pytest.approx(d, abs=1e-12)


def test_verdict_against_the_baseline_model():
    sets = make_sets((300,))
    good = evaluate_pairs(make_encoder(sets, {(0, "mean"): 0.1}, seed=1), sets, [0], ["mean"])
    alike = evaluate_pairs(make_encoder(sets, {(0, "mean"): 0.1}, seed=2), sets, [0], ["mean"])
    bad = evaluate_pairs(make_encoder(sets, {(0, "mean"): 1.5}, seed=3), sets, [0], ["mean"])
    base = PairedSet(good, "sts12/dom0")
    verdict = lambda ev: compare(PairedSet(ev, "sts12/dom0"), base, (0, "mean"))[(0, "mean")]["vs_baseline"]["verdict"]  # noqa: E731
    assert (verdict(bad), verdict(alike)) == (WORSE, SAME)
    assert compare(base, PairedSet(bad, "sts12/dom0"), (0, "mean"))[(0, "mean")]["vs_baseline"]["verdict"] == BETTER


def test_paired_comparison_refuses_different_pairs():
    a = evaluate_pairs(make_encoder(make_sets((50,)), {(0, "mean"): 0.1}), make_sets((50,)), [0], ["mean"])
    b_sets = make_sets((50,), seed=5)
    b = evaluate_pairs(make_encoder(b_sets, {(0, "mean"): 0.1}), b_sets, [0], ["mean"])
    with pytest.raises(ValueError, match="same pairs"):
        compare(PairedSet(a, "sts12/dom0"), PairedSet(b, "sts12/dom0"), (0, "mean"))
