"""Tokenizers of the native RWKV encoder: World vs BlinkDL's own TRIE_TOKENIZER, bytes, HF, choice."""

import importlib.resources
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwkv_eval.models.rwkv import load_rwkv
from rwkv_eval.models.tokenizers import WORLD_VOCAB, ByteTokenizer, HFTokenizer, WorldTokenizer, choose_tokenizer

TEXTS = [
    "Hello world!", "A man is playing a guitar.", "  leading, trailing and   inner spaces  ",
    "line\nbreaks\r\nand\ttabs", "日本語のテキスト、中文字符，한국어", "emoji 👍🏽 👨‍👩‍👧 🇫🇷 done",
    "Ünïcödé façade naïve coöperate", "\x00\x01\x7f\u200b\ufeff", "A" * 300, "http://example.com/a?b=c&d=e",
    "The quick brown fox jumps over the lazy dog. " * 4, "1234567890 3.14159 -42", "ελληνικά русский العربية",
]


@pytest.fixture(scope="module")
def world():
    return WorldTokenizer()


@pytest.fixture(scope="module")
def reference():
    from rwkv.rwkv_tokenizer import TRIE_TOKENIZER

    return TRIE_TOKENIZER(str(importlib.resources.files("rwkv") / WORLD_VOCAB))


@pytest.mark.parametrize("text", TEXTS, ids=[f"text{i}" for i in range(len(TEXTS))])
def test_world_equals_rwkv_package(world, reference, text):
    ids = world.encode(text)
    assert ids == reference.encode(text)
    assert world.decode(ids) == text


@given(st.text(max_size=80))
def test_world_equals_rwkv_package_on_any_text(world, reference, text):
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):  # lone surrogates: the reference cannot encode them
        assert len(world.encode(text)) > 0
        return
    assert world.encode(text) == reference.encode(text)


def test_world_vocabulary(world):
    assert world.vocab_size == 65530 and world.encode("") == []
    assert world.encode_batch(["a", "", "ab"]) == [world.encode("a"), [], world.encode("ab")]
    assert world.describe().startswith("world:rwkv_vocab_v20230424.txt:sha256=")


def test_byte_tokenizer():
    tok = ByteTokenizer()
    assert tok.encode("") == []
    assert tok.encode('"in') == [34, 105, 110]
    assert tok.encode("é👍") == list("é👍".encode("utf-8"))
    assert tok.decode(tok.encode("é👍 ok")) == "é👍 ok"
    assert tok.encode_batch(["a", ""]) == [[97], []]


def test_truncation_is_counted_by_the_encoder(tiny_assets):
    enc = load_rwkv(tiny_assets / "tiny-rwkv-6v0-1m.pth", max_length=8)
    e = enc.encode(["short", "exactly8", "nine byte", "a much longer sentence", ""], layers=[0], poolings=["mean"])
    assert e.n_truncated == 2 and e.n_empty == 1 and e.n_tokens == 5 + 8 + 8 + 8 + 0
    assert enc.provenance()["max_length"] == 8


def test_autodetect(tmp_path):
    assert choose_tokenizer(None, 256).name == "byte"
    assert choose_tokenizer(None, 65536).name == "world"
    (tmp_path / WORLD_VOCAB).write_bytes((importlib.resources.files("rwkv") / WORLD_VOCAB).read_bytes())
    tok = choose_tokenizer(None, 65536, tmp_path)
    assert tok.name == "world" and tok.vocab_file == tmp_path / WORLD_VOCAB
    assert choose_tokenizer("byte", 65536).name == "byte"  # a name overrides detection
    with pytest.raises(ValueError, match="cannot tell the tokenizer from a vocabulary of 1000"):
        choose_tokenizer(None, 1000)
    with pytest.raises(ValueError, match="tokenizer 'world' has 65530 ids but the model embeds only 256"):
        choose_tokenizer("world", 256)
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'"):
        choose_tokenizer("bpe", 256)
    with pytest.raises(ValueError, match="'hf' needs a model directory"):
        choose_tokenizer("hf", 256)


def test_hf_tokenizer_from_a_model_directory(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "!": 3}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                                "unk_token": "[UNK]"}))
    chosen = choose_tokenizer(None, 256, tmp_path)
    assert isinstance(chosen, HFTokenizer)
    assert chosen.encode_batch(["hello world !", "", "hello there"]) == [[1, 2, 3], [], [1, 0]]
