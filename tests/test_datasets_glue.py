"""RTE and QQP loaders: the real RTE files, QQP in GLUE layout, the hub fallback, malformed rows."""

import numpy as np
import pytest

from rwkv_eval.datasets import DATA_ENV, DatasetFormatError, DatasetNotFound, load_pairs
from tests.test_datasets import _fake_hub

QQP_HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


@pytest.mark.parametrize("split, n, entail", [("train", 2490, 1249), ("validation", 277, 146)])
def test_rte_real_files(shared_data, split, n, entail):
    """Counts from ../shared/data/README.md; entailment is the positive (similar) class."""
    p = load_pairs("rte", split, shared_data, allow_hub=False)
    assert (len(p), int(p.gold.sum()), p.gold_kind, p.gold_range) == (n, entail, "binary", (0.0, 1.0))
    if split == "validation":
        assert p.sentence2[0] == "Christopher Reeve had an accident." and p.gold[0] == 0.0


def test_rte_train_1000_is_the_seeded_subset(shared_data):
    train = load_pairs("rte", "train", shared_data, allow_hub=False)
    sub = load_pairs("rte", "train-1000", shared_data / "rte", allow_hub=False)
    idx = np.sort(np.random.default_rng(0).choice(len(train), 1000, replace=False))
    assert sub.sentence1 == tuple(train.sentence1[i] for i in idx) and (sub.gold == train.gold[idx]).all()


def test_qqp_glue_layout(tmp_path):
    (tmp_path / "QQP").mkdir()
    (tmp_path / "QQP" / "dev.tsv").write_text(QQP_HEADER + '1\t2\t3\tHow do I "learn?\tWhat is it?\t0\n'
                                              "4\t5\t6\tWhy?\tWhy not?\t1\n")
    p = load_pairs("qqp", "validation", tmp_path, allow_hub=False)
    assert p.sentence1 == ('How do I "learn?', "Why?") and list(p.gold) == [0.0, 1.0] and p.gold_kind == "binary"


@pytest.mark.parametrize("name, body, match", [
    ("qqp", QQP_HEADER + "1\t2\t3\ta\tb\t2\n", r"line 2: is_duplicate '2'; expected 0 or 1"),
    ("qqp", QQP_HEADER + "1\t2\ta\tb\t1\n", r"line 2: expected 6 columns"),
    ("rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tneutral\n", r"line 2: label 'neutral'; expected entailment"),
    ("rte", "idx\tsentence1\tsentence2\tlabel\n", r"line 1: expected the header"),
])
def test_malformed_rows_name_file_and_line(tmp_path, name, body, match):
    (tmp_path / name).mkdir()
    (tmp_path / name / "dev.tsv").write_text(body)
    with pytest.raises(DatasetFormatError, match=match):
        load_pairs(name, "validation", tmp_path, allow_hub=False)


def test_hub_fallback_qqp_and_rte_labels(monkeypatch, tmp_path):
    calls = []
    _fake_hub(monkeypatch, {
        ("nyu-mll/glue", "qqp", "validation"): {"question1": ["a?", "b?"], "question2": ["c?", "d?"], "label": [1, 0],
                                               "idx": [0, 1]},
        ("nyu-mll/glue", "rte", "validation"): {"sentence1": ["p", "q"], "sentence2": ["h", "k"], "label": [0, 1],
                                               "idx": [0, 1]}}, calls)
    q = load_pairs("qqp", "validation", tmp_path)
    assert q.sentence1 == ("a?", "b?") and list(q.gold) == [1.0, 0.0] and q.source.startswith("nyu-mll/glue[qqp]@")
    r = load_pairs("rte", "validation", tmp_path)
    assert list(r.gold) == [1.0, 0.0]  # the hub's 0 is entailment
    assert [c[0] for c in calls] == [("nyu-mll/glue", "qqp"), ("nyu-mll/glue", "rte")]


def test_qqp_missing_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)
    with pytest.raises(DatasetNotFound, match=r"GLUE QQP: run GLUE's download_glue_data.py"):
        load_pairs("qqp", "validation", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'test' for rte"):
        load_pairs("rte", "test", tmp_path)
