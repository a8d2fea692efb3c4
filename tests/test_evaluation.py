"""evaluation (STS12-16 aggregates, kept similarities) and paired (significance against the
best setting and a baseline), on a fake encoder whose vectors are known, against numpy and
scipy computed here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rwkv_eval.datasets import PairSet
from rwkv_eval.encoder import Embeddings
from rwkv_eval.evaluation import evaluate, evaluate_pairs
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


def test_evaluation_keeps_the_similarities_it_scored():
    sets = make_sets()
    ev = evaluate_pairs(make_encoder(sets, {(0, "mean"): 0.3}), sets, [0], ["mean"], aggregate="sts12")
    for r in ev.records:
        if r["dataset"] in ev.gold:
            sims = ev.similarities[(r["dataset"], 0, "mean")]
            assert r["spearman"] == pytest.approx(stats.spearmanr(sims, ev.gold[r["dataset"]]).statistic, abs=1e-12)
    assert len(ev.similarities[("sts12/concat", 0, "mean")]) == 160


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
