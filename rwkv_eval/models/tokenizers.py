"""Tokenizers of the native RWKV encoder: RWKV World, raw bytes, or a Hugging Face tokenizer.

    world  greedy longest match over the UTF-8 bytes, on the World vocabulary
           rwkv_vocab_v20230424.txt (65529 tokens, ids 1..65529; ids 1..256 are the single
           bytes, so every input is covered). The same algorithm as BlinkDL's
           `rwkv.rwkv_tokenizer.TRIE_TOKENIZER` (rwkv pip package 0.8.32) and the HF
           remote-code hf_rwkv_tokenizer.py; the vocabulary file ships with the `rwkv` package.
    byte   id = UTF-8 byte value (vocab 256): the tiny test checkpoints.
    hf     `transformers.AutoTokenizer` from a model directory, without special tokens.

`choose_tokenizer` picks one from the checkpoint unless a name is given: a model directory
that ships the World vocabulary -> world; one with other tokenizer files -> hf; else by
vocabulary size, 256 -> byte, 65536 -> world.

No tokenizer adds special tokens; an empty sentence gives [], which the encoder pools to
the zero vector. Text is encoded with errors="surrogatepass", so any Python str works.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.resources
from pathlib import Path
from typing import Sequence

WORLD_VOCAB = "rwkv_vocab_v20230424.txt"
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
TOKENIZER_NAMES = ("world", "byte", "hf")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


class ByteTokenizer:
    name = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(_utf8(text))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(_utf8(t)) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def describe(self) -> str:
        return "byte"


@functools.lru_cache(maxsize=4)
def _read_world_vocab(path: str) -> tuple[str, dict[int, bytes], dict[int, list]]:
    """(sha256, id -> bytes, byte trie) of a World vocabulary file; cached, the trie is read-only."""
    raw = Path(path).read_bytes()
    id_to_bytes: dict[int, bytes] = {}
    for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        # "<id> <python str or bytes literal> <byte length>"
        idx, rest = line.split(" ", 1)
        literal, length = rest.rsplit(" ", 1)
        token = ast.literal_eval(literal)
        token = _utf8(token) if isinstance(token, str) else token
        if not isinstance(token, bytes) or len(token) != int(length):
            raise ValueError(f"{path}:{n}: malformed entry {line[:60]!r}")
        id_to_bytes[int(idx)] = token
    root: dict[int, list] = {}  # byte -> [child node, token id or None]
    for idx, token in id_to_bytes.items():
        node = root
        for i, byte in enumerate(token):
            entry = node.setdefault(byte, [{}, None])
            if i == len(token) - 1:
                entry[1] = idx
            node = entry[0]
    missing = [b for b in range(256) if b not in root or root[b][1] is None]
    if missing:
        raise ValueError(f"{path}: no single-byte token for byte(s) {missing[:5]}; greedy matching needs all 256")
    return hashlib.sha256(raw).hexdigest(), id_to_bytes, root


class WorldTokenizer:
    """RWKV World tokenizer: greedy longest match on a byte trie of nested dicts.

    Args:
        vocab_file: a rwkv_vocab_v20230424.txt; default: the copy in the `rwkv` package.
    """

    name = "world"

    def __init__(self, vocab_file: str | Path | None = None):
        if vocab_file is None:
            try:
                vocab_file = Path(str(importlib.resources.files("rwkv") / WORLD_VOCAB))
            except ModuleNotFoundError as e:
                raise ImportError(f"the World tokenizer reads {WORLD_VOCAB} from the rwkv package: pip install rwkv") from e
        self.vocab_file = Path(vocab_file)
        self.sha256, self.id_to_bytes, self._root = _read_world_vocab(str(self.vocab_file.resolve()))
        self.vocab_size = max(self.id_to_bytes) + 1

    def encode(self, text: str) -> list[int]:
        data = _utf8(text)
        root, out, i, n = self._root, [], 0, len(data)
        while i < n:
            node, j, best, end = root, i, -1, i
            while j < n:
                entry = node.get(data[j])
                if entry is None:
                    break
                node, idx = entry
                j += 1
                if idx is not None:
                    best, end = idx, j
            out.append(best)
            i = end
        return out

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.id_to_bytes[i] for i in ids).decode("utf-8", errors="replace")

    def describe(self) -> str:
        return f"world:{self.vocab_file.name}:sha256={self.sha256}"


class HFTokenizer:
    """A Hugging Face tokenizer from a model directory, without special tokens."""

    name = "hf"

    def __init__(self, directory: str | Path):
        from transformers import AutoTokenizer

        self.directory = Path(directory)
        self.tokenizer = AutoTokenizer.from_pretrained(self.directory)
        self.vocab_size = len(self.tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def describe(self) -> str:
        return f"hf:{self.directory}:{type(self.tokenizer).__name__}"


Tokenizer = ByteTokenizer | WorldTokenizer | HFTokenizer


def choose_tokenizer(name: str | None, vocab_size: int, directory: Path | None = None, source: str = "model") -> Tokenizer:
    """The tokenizer for a checkpoint: by `name` ('world', 'byte', 'hf') or, if None, detected.

    Raises ValueError if the tokenizer can produce ids the model's embedding does not have.
    """
    if name is None:
        if directory is not None and (directory / WORLD_VOCAB).is_file():
            name = "world"
        elif directory is not None and any((directory / f).is_file() for f in HF_TOKENIZER_FILES):
            name = "hf"
        elif vocab_size == 256:
            name = "byte"
        elif vocab_size == 65536:
            name = "world"
        else:
            raise ValueError(f"{source}: cannot tell the tokenizer from a vocabulary of {vocab_size} and no "
                             f"tokenizer files; pass tokenizer= one of {', '.join(TOKENIZER_NAMES)}")
    if name == "byte":
        tok: Tokenizer = ByteTokenizer()
    elif name == "world":
        local = directory / WORLD_VOCAB if directory is not None else None
        tok = WorldTokenizer(local if local is not None and local.is_file() else None)
    elif name == "hf":
        if directory is None:
            raise ValueError(f"{source}: tokenizer 'hf' needs a model directory with tokenizer files")
        tok = HFTokenizer(directory)
    else:
        raise ValueError(f"unknown tokenizer {name!r}; choose from {', '.join(TOKENIZER_NAMES)}")
    if tok.vocab_size > vocab_size:
        raise ValueError(f"{source}: tokenizer {name!r} has {tok.vocab_size} ids but the model embeds only "
                         f"{vocab_size}; pick another tokenizer")
    return tok
