"""The sentence-transformers / MTEB adapter, through the protocol, offline: what it
returns equals the encoder's own vectors, STS scored through it equals our evaluation,
mteb 2's DataLoader batches and keywords work, and results land in MTEB's layout."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr

from rwkv_eval.datasets import load_sample
from rwkv_eval.evaluation import evaluate
from rwkv_eval.models.rwkv import load_rwkv
from rwkv_eval.st_adapter import SentenceEncoder, export_mteb

SENTENCES = ["A man is playing a guitar.", "", "Two dogs run through a snowy field.", "Ünïcödé 日本語"]


@pytest.fixture(scope="module")
def tiny(tiny_assets):
    return load_rwkv(tiny_assets / "tiny-rwkv-6v0-1m.pth")


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


def test_mteb_dataloader_batches_and_task_keywords(tiny):
    """mteb 2 calls encode(DataLoader of {"text": [...]}, task_metadata=..., hf_split=..., prompt_type=...)."""
    model = SentenceEncoder(tiny, layer=2)
    batches = [{"text": SENTENCES[:3]}, {"text": SENTENCES[3:]}]
    out = model.encode(batches, task_metadata=object(), hf_split="test", hf_subset="default", prompt_type=None)
    np.testing.assert_allclose(out, model.encode(SENTENCES), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="strings or batches with a 'text' list; got a int"):
        model.encode([1, 2])
    s = model.similarity(out, out[:2])
    assert s.shape == (4, 2) and s[0, 0] == pytest.approx(1.0, abs=1e-6) and s[1, 1] == 0.0
    np.testing.assert_allclose(model.similarity_pairwise(out, out[::-1]), np.diag(model.similarity(out, out[::-1])),
                               rtol=1e-6)


@pytest.mark.parametrize("template,prompt", [
    ("promptEOL", lambda s: 'This sentence : "' + s + '" means in one word:"'),  # Jiang et al. 2023, by hand
    ("{x} Q: {sentence}", lambda s: "{x} Q: " + s),  # other braces stay verbatim, as in templates.py
])
def test_template_is_applied_before_encoding(tiny, template, prompt):
    model = SentenceEncoder(tiny, layer=4, pooling="last", template=template)
    expected = tiny.encode([prompt(s) for s in SENTENCES], [4], ["last"]).vectors[(4, "last")]
    np.testing.assert_allclose(model.encode(SENTENCES), expected, rtol=1e-5, atol=1e-6)
    assert model.name.endswith("__L04-last-" + ("promptEOL" if template == "promptEOL" else "custom"))


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
    with pytest.raises(ValueError, match="no sentences"):
        SentenceEncoder(tiny, layer=3).encode([])


def test_sts_through_the_protocol_equals_our_evaluation_and_exports_to_mteb_layout(tiny, tmp_path):
    """What an MTEB STS task does (encode both sides, cosine, Spearman with scipy) gives
    our evaluate()'s number; the exported file has MTEB's TaskResult fields."""
    full = load_sample()
    pairs = replace(full, sentence1=full.sentence1[:80], sentence2=full.sentence2[:80], gold=full.gold[:80])
    model = SentenceEncoder(tiny, layer=7, pooling="mean")
    a, b = model.encode(pairs.sentence1, batch_size=16), model.encode(pairs.sentence2, batch_size=16)
    rho = spearmanr(model.similarity_pairwise(a, b), pairs.gold).statistic
    [record] = evaluate(tiny, pairs, [7], ["mean"])
    assert rho == pytest.approx(record["spearman"], abs=1e-6)

    record = record | {"dataset": "stsb", "split": "test"}  # filed as the MTEB task STSBenchmark
    [path] = export_mteb([record], tmp_path)
    rev = record["revision"][:64]
    assert path == tmp_path / f"{tiny.name.replace('/', '__')}__L07-mean" / rev / "STSBenchmark.json"
    doc = json.loads(path.read_text())
    assert {"dataset_revision", "task_name", "mteb_version", "scores", "evaluation_time"} <= set(doc)
    [scores] = doc["scores"]["test"]
    assert doc["task_name"] == "STSBenchmark"
    assert scores["main_score"] == scores["cosine_spearman"] == record["spearman"]
    assert scores["hf_subset"] == "default" and scores["languages"] == ["eng-Latn"]
    assert json.loads((path.parent / "model_meta.json").read_text())["layer"] == 7


def test_export_files_a_multi_domain_year_from_its_pooled_set(tmp_path):
    base = {"model": "m", "layer": 1, "pooling": "mean", "split": "test", "spearman": 0.5, "pearson": 0.4,
            "revision": "r"}
    records = [base | {"dataset": "sts16/headlines"}, base | {"dataset": "sts16/all", "spearman": 0.6},
               base | {"dataset": "sts16/mean"}]
    [path] = export_mteb(records, tmp_path)
    assert path.name == "STS16.json"
    assert json.loads(path.read_text())["scores"]["test"][0]["main_score"] == 0.6
