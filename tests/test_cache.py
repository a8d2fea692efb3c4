"""The embedding cache (rwkv_eval/cache.py) through the one scorer: reruns encode nothing and
score the same; exact keys (one changed weight, dtype, template, max length, sentences miss);
corrupt or foreign files are errors naming them; LRU eviction; atomic writes."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_benchmark_suite import GLOVE, run_suite

from rwkv_eval.cache import FORMAT, EmbeddingCache, default_cache_dir, sentences_digest
from rwkv_eval.cli import main
from rwkv_eval.datasets import load_sample, sample
from rwkv_eval.evaluation import encode_settings, evaluate
from rwkv_eval.models.load import load_encoder

TINY7 = "tiny-rwkv-7v0-834K.pth"


@pytest.fixture(scope="module")
def pairs():
    return sample(load_sample(), 6, 0)


@pytest.fixture(scope="module")
def tiny(tiny_assets):
    return load_encoder(str(tiny_assets / TINY7))


def spy(monkeypatch, encoder) -> list:
    """Record every encode call (sentences, layers, poolings) the scorer makes."""
    calls, real = [], encoder.encode

    def encode(sentences, layers, poolings, batch_size=32, keep_states=False):
        calls.append((len(sentences), list(layers), list(poolings)))
        return real(sentences, layers, poolings, batch_size, keep_states)

    monkeypatch.setattr(encoder, "encode", encode)
    return calls


def rhos(records):
    return [(r["layer"], r["pooling"], r["spearman"]) for r in records]


def test_second_identical_run_encodes_nothing_and_scores_the_same(tmp_path, tiny, pairs, monkeypatch):
    c = EmbeddingCache(tmp_path)
    calls = spy(monkeypatch, tiny)
    first = evaluate(tiny, pairs, [0, 1], ["mean", "last"], cache=c)
    second = evaluate(tiny, pairs, [0, 1], ["mean", "last"], cache=c)
    assert len(calls) == 1
    assert {r["n_sentences_encoded"] for r in first} == {first[0]["n_sentences"]} and first[0]["n_sentences"] > 0
    assert {(r["cache_hits"], r["cache_misses"]) for r in first} == {(0, 4)}
    assert {(r["n_sentences_encoded"], r["cache_hits"], r["cache_misses"]) for r in second} == {(0, 4, 0)}
    assert rhos(first) == rhos(second)  # identical, not close
    for k in ("n_sentences", "n_tokens", "n_truncated", "n_empty_sentences"):
        assert [r[k] for r in first] == [r[k] for r in second], k


def test_cached_vectors_equal_fresh_ones_in_order(tmp_path, tiny, pairs):
    sentences = pairs.sentence1 + pairs.sentence2
    fresh = tiny.encode(sentences, ["emb", 2, 0], ["max", "mean"])
    c = EmbeddingCache(tmp_path)
    encode_settings(tiny, sentences, [2, "emb", 0], ["max", "mean"], cache=c)
    cached, stats = encode_settings(tiny, sentences, [2, "emb", 0], ["max", "mean"], cache=c)
    assert stats.n_encoded == 0 and stats.cache_hits == 6
    assert list(cached) == list(fresh.vectors)  # depth order, then pooling order, as encode gives them
    for k, v in fresh.vectors.items():
        np.testing.assert_array_equal(cached[k], v)


def test_adding_a_layer_and_a_pooling_encodes_only_the_missing_settings_in_one_pass(tmp_path, tiny, pairs,
                                                                                    monkeypatch):
    c = EmbeddingCache(tmp_path)
    calls = spy(monkeypatch, tiny)
    evaluate(tiny, pairs, [0, 1], ["mean"], cache=c)
    recs = evaluate(tiny, pairs, [0, 1, 3], ["mean", "last"], cache=c)
    n = recs[0]["n_sentences"]
    # second call: one pass over the layers and poolings that miss (never layer 0/1 with mean alone)
    assert calls == [(n, [0, 1], ["mean"]), (n, [0, 1, 3], ["mean", "last"])]
    assert {(r["cache_hits"], r["cache_misses"]) for r in recs} == {(2, 4)}
    calls.clear()
    recs = evaluate(tiny, pairs, [3], ["last", "mean"], cache=c)
    assert calls == [] and {r["n_sentences_encoded"] for r in recs} == {0}


def test_one_changed_weight_misses(tmp_path, tiny_assets, pairs):
    c = EmbeddingCache(tmp_path / "cache")
    sentences = list(pairs.sentence1)
    a = load_encoder(str(tiny_assets / TINY7))
    first, _ = encode_settings(a, sentences, [1], ["mean"], cache=c)
    sd = torch.load(tiny_assets / TINY7, map_location="cpu", weights_only=True)
    name = next(k for k, v in sd.items() if k.startswith("blocks.1.") and v.is_floating_point() and v.numel() > 1)
    sd[name].view(-1)[0] += 0.5
    changed = tmp_path / "changed.pth"
    torch.save(sd, changed)
    b = load_encoder(str(changed))
    assert b.provenance()["sha256"] != a.provenance()["sha256"]
    second, stats = encode_settings(b, sentences, [1], ["mean"], cache=c)
    assert (stats.cache_hits, stats.cache_misses, stats.n_encoded) == (0, 1, len(sentences))
    assert not np.array_equal(first[(1, "mean")], second[(1, "mean")])  # the stale vectors were not served
    again, stats = encode_settings(a, sentences, [1], ["mean"], cache=c)
    assert stats.cache_hits == 1
    np.testing.assert_array_equal(again[(1, "mean")], first[(1, "mean")])


@pytest.mark.parametrize("field,value", [("dtype", "bfloat16"), ("max_length", 7), ("template", "promptEOL"),
                                         ("template_text", "x {sentence}"), ("sha256", "0" * 64),
                                         ("revision", "other"), ("tokenizer", "world"), ("model", "other"), ("wkv_backend", "naive")])
def test_a_key_differs_when_anything_that_decides_the_vectors_differs(tiny, field, value):
    prov = tiny.provenance()
    assert prov.get(field) != value
    base = EmbeddingCache.key(prov, "d", 0, "mean")
    assert EmbeddingCache.key(prov | {field: value}, "d", 0, "mean") != base
    assert EmbeddingCache.key(prov, "e", 0, "mean") != base  # other sentences
    assert EmbeddingCache.key(prov, "d", 1, "mean") != base
    assert EmbeddingCache.key(prov, "d", 0, "last") != base
    assert EmbeddingCache.key(prov | {"device": "cpu:0"}, "d", 0, "mean") == base  # device type only


def test_sentences_digest_is_order_and_boundary_sensitive():
    assert sentences_digest(["ab", "c"]) != sentences_digest(["a", "bc"])
    assert sentences_digest(["a", "b"]) != sentences_digest(["b", "a"])


def test_unpinned_weights_are_not_cached(tmp_path, tiny, pairs):
    prov = tiny.provenance() | {"sha256": None, "revision": "unresolved:main"}
    assert EmbeddingCache.key(prov, "d", 0, "mean") is None
    assert EmbeddingCache.key(prov | {"revision": "abc123"}, "d", 0, "mean") is not None


def entry(value: float, n: int = 4, d: int = 8) -> tuple:
    meta = {"model": "m", "layer": 0, "pooling": "mean", "n_sentences": n, "n_tokens": n, "n_truncated": 0,
            "n_empty": 0}
    return np.full((n, d), value, dtype=np.float32), meta


def test_corrupt_vector_file_is_an_error_naming_it(tmp_path):
    c = EmbeddingCache(tmp_path)
    c.put({"k1": entry(1.0)})
    path = tmp_path / "k1.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{path}.*corrupt or foreign"):
        c.get(["k1"])
    path.write_bytes(b"not an array")
    with pytest.raises(ValueError, match=str(path)):
        c.get(["k1"])
    path.unlink()
    with pytest.raises(ValueError, match=f"{path}.*cannot be read"):
        c.get(["k1"])


@pytest.mark.parametrize("text", ["{broken", json.dumps({"format": "someone-else/1", "entries": {}}), "[1, 2]"])
def test_corrupt_or_foreign_index_is_an_error_naming_it(tmp_path, text):
    (tmp_path / "index.json").write_text(text)
    with pytest.raises(ValueError, match=str(tmp_path / "index.json")):
        EmbeddingCache(tmp_path).get(["k"])


def test_index_is_plain_json_and_vectors_plain_npy(tmp_path):
    c = EmbeddingCache(tmp_path)
    c.put({"k1": entry(2.0)})
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["format"] == FORMAT and index["entries"]["k1"]["file"] == "k1.npy"
    np.testing.assert_array_equal(np.load(tmp_path / "k1.npy"), entry(2.0)[0])
    assert c.get(["nope"]) == {}


def test_lru_eviction_keeps_the_recently_used(tmp_path):
    one = len(open_npy_bytes(entry(0.0)[0]))
    c = EmbeddingCache(tmp_path, max_bytes=2 * one)
    c.put({"a": entry(1.0)})
    c.put({"b": entry(2.0)})
    assert set(c.get(["a"])) == {"a"}  # a is now more recent than b
    c.put({"c": entry(3.0)})
    assert set(c.get(["a", "b", "c"])) == {"a", "c"}
    assert not (tmp_path / "b.npy").exists()
    index = json.loads((tmp_path / "index.json").read_text())
    assert sum(e["bytes"] for e in index["entries"].values()) <= 2 * one
    c.put({"big": entry(1.0, n=64)})  # larger than the whole limit: not stored, nothing evicted for it
    assert set(c.get(["a", "c", "big"])) == {"a", "c"}


def open_npy_bytes(v: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, v)
    return buf.getvalue()


@pytest.mark.parametrize("interrupt_at", [1, 2], ids=["vector-file", "index"])
def test_interrupted_write_leaves_no_temp_file_and_no_entry(tmp_path, monkeypatch, interrupt_at):
    c = EmbeddingCache(tmp_path)
    c.put({"a": entry(1.0)})
    before = sorted(p.name for p in tmp_path.iterdir())
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == interrupt_at:  # bytes are in the temp file; the rename has not happened
            raise KeyboardInterrupt
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        c.put({"b": entry(2.0)})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .tmp, no b.npy
    assert set(c.get(["a", "b"])) == {"a"}


def test_default_folder_follows_xdg(tmp_path):
    assert default_cache_dir(str(tmp_path), "/home/x") == tmp_path / "rwkv-eval" / "embeddings"
    assert default_cache_dir(None, "/home/x") == Path("/home/x/.cache/rwkv-eval/embeddings")
    assert default_cache_dir("", "/home/x") == Path("/home/x/.cache/rwkv-eval/embeddings")


def test_size_limit_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="positive number of bytes; got 0"):
        EmbeddingCache(tmp_path, max_bytes=0)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is not a directory"):
        EmbeddingCache(tmp_path / "file")


def test_cli_reruns_from_the_cache_and_no_cache_writes_nothing(tmp_path, capsys):
    args = ["evaluate", "--model", "glove-6b-50d", "--dataset", "stsb-sample", "--pooling", "mean,max", "--json"]
    runs = []
    for _ in range(2):
        assert main(args + ["--cache-dir", str(tmp_path / "c")]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert {r["n_sentences_encoded"] for r in runs[0]} == {runs[0][0]["n_sentences"]}
    assert {(r["n_sentences_encoded"], r["cache_hits"]) for r in runs[1]} == {(0, 2)}
    assert rhos(runs[0]) == rhos(runs[1])
    assert main(args + ["--no-cache"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {(r["cache_hits"], r["cache_misses"]) for r in out} == {(0, 0)}
    assert rhos(out) == rhos(runs[0])


def test_cli_default_folder_is_the_session_one(capsys):
    """tests/conftest.py points RWKV_EVAL_CACHE_DIR at a fresh folder: hermetic reruns."""
    root = Path(os.environ["RWKV_EVAL_CACHE_DIR"])
    assert main(["evaluate", "--model", "glove-6b-50d", "--dataset", "stsb-sample", "--pooling", "first_last"]) == 0
    capsys.readouterr()
    assert (root / "index.json").is_file()


def test_cli_cache_flags_are_checked(capsys):
    base = ["evaluate", "--model", "glove-6b-50d", "--dataset", "stsb-sample"]
    assert main(base + ["--no-cache", "--cache-dir", "x"]) == 2
    assert "--no-cache and --cache-dir contradict" in capsys.readouterr().err
    assert main(base + ["--cache-max-mb", "0"]) == 2
    assert "--cache-max-mb must be >= 1; got 0" in capsys.readouterr().err


def test_suite_rerun_encodes_nothing_for_accuracy(tmp_path):
    """Two identical `pytest benchmarks` runs (GloVe on the sample) share a cache folder: the second
    encodes zero sentences for accuracy, says so in every record, and gives the same Spearman."""
    args = ("-k", GLOVE, "--rwkv-cache-dir", str(tmp_path / "cache"))
    infos = []
    for name in ("one.json", "two.json"):
        res, out = run_suite(tmp_path, *args, name=name)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        infos.append([b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]])
    first, second = infos
    assert [i["n_sentences_encoded"] for i in first] == [596, 596]
    assert [(i["n_sentences_encoded"], i["cache_hits"], i["cache_misses"]) for i in second] == [(0, 2, 0)] * 2
    assert [i["spearman"] for i in first] == [i["spearman"] for i in second]
    res, out = run_suite(tmp_path, "-k", GLOVE, "--no-cache", name="three.json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert [b["extra_info"]["cache_misses"] for b in json.loads(out.read_text())["benchmarks"]] == [0, 0]



def test_compare_reuses_the_vectors_and_says_so(tmp_path, capsys):
    args = ["compare", "--model", "glove-6b-50d", "--model", "glove-6b-50d", "--dataset", "stsb-sample",
            "--subset", "30", "--resamples", "20", "--json", "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    # model B is model A: its settings are hits already in the first run
    assert [(r["provenance_a"]["n_sentences_encoded"] > 0, r["provenance_b"]["n_sentences_encoded"]) for r in first] \
        == [(True, 0)] * len(first)
    assert {(r["provenance_a"]["n_sentences_encoded"], r["provenance_b"]["cache_hits"]) for r in second} == {(0, 1)}
    assert [r["delta_spearman"] for r in first] == [r["delta_spearman"] for r in second]
