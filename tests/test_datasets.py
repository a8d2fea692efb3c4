"""Loaders against the real files in ../shared/data, malformed files, the bundled sample, the hub path,
the one seeded subset and the one UTF-8/NUL check.

Expected counts are those of shared/data/README.md. The real-data tests skip with a reason
when that folder is absent (set RWKV_EVAL_DATA to point elsewhere).
"""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from rwkv_eval import datasets as ds
from rwkv_eval.datasets import (DATA_ENV, DatasetFormatError, DatasetNotFound, PairSet, decode_text, get, load_pairs,
                                load_sample, parsers, pooled, registry, sample)

SAMPLE = Path(ds.__file__).parent.parent / "data" / "stsb_sample.tsv"

STS_COUNTS = {
    "sts12": {"MSRpar": 750, "MSRvid": 750, "OnWN": 750, "SMTeuroparl": 459, "SMTnews": 399},
    "sts13": {"FNWN": 189, "OnWN": 561, "headlines": 750},
    "sts14": {"OnWN": 750, "deft-forum": 450, "deft-news": 300, "headlines": 750, "images": 750, "tweet-news": 750},
    "sts15": {"answers-forums": 375, "answers-students": 750, "belief": 375, "headlines": 750, "images": 750},
    "sts16": {"answer-answer": 254, "headlines": 249, "plagiarism": 230, "postediting": 244, "question-question": 209},
}
STS_TOTALS = {"sts12": 3108, "sts13": 1500, "sts14": 3750, "sts15": 3000, "sts16": 1186}


@pytest.fixture(autouse=True)
def no_env_no_hub(monkeypatch):
    """Each test sees no $RWKV_EVAL_DATA (the loaders never read it; a test that sets it shows that)
    and no `datasets` package unless it sets them."""
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- real files


@pytest.mark.parametrize("split,n,pos,first", [
    ("train", 3668, 2474, "Amrozi accused his brother, whom he called \"the witness\", of deliberately"),
    ("validation", 408, 279, "He said the foodservice pie business doesn't fit"),
    ("test", 1725, 1147, "PCCW's chief operating officer, Mike Butcher, and Alex Arena"),
], ids=["train", "validation", "test"])
def test_mrpc_counts_and_first_row(shared_data, split, n, pos, first):
    p = load_pairs("mrpc", split, shared_data, allow_hub=False)
    assert (len(p), int(p.gold.sum())) == (n, pos)
    assert p.sentence1[0].startswith(first), p.sentence1[0]
    assert not p.sentence1[0].startswith("\ufeff")  # the BOM sits on the header and is not part of row 1
    assert set(np.unique(p.gold)) == {0.0, 1.0} and p.gold.dtype == np.float64
    assert (p.gold_kind, p.gold_range, p.name, p.split) == ("binary", (0.0, 1.0), "mrpc", split)
    file = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}[split]
    assert p.source == str(shared_data / "mrpc" / file) and p.revision == _sha(shared_data / "mrpc" / file)


def test_mrpc_lone_double_quote_survives(shared_data):
    p = load_pairs("mrpc", "train", shared_data, allow_hub=False)
    odd = [s for s in p.sentence1 + p.sentence2 if s.count('"') % 2 == 1]
    assert odd, "MRPC train has sentences with an unbalanced double quote"
    assert all("\n" not in s and "\t" not in s for s in odd)  # a quote-aware reader would merge lines here
    assert len(p) == 3668


def test_mrpc_train_1000_is_a_seeded_subset_in_file_order(shared_data):
    train = load_pairs("mrpc", "train", shared_data, allow_hub=False)
    a = load_pairs("mrpc", "train-1000", shared_data, allow_hub=False)
    b = load_pairs("mrpc", "train-1000", shared_data / "mrpc", allow_hub=False)
    assert len(a) == 1000 and a.split == "train-1000"
    assert a.sentence1 == b.sentence1 and np.array_equal(a.gold, b.gold)
    idx = np.sort(np.random.default_rng(seed=0).choice(3668, size=1000, replace=False))
    assert a.sentence1 == tuple(train.sentence1[i] for i in idx)
    assert a.sentence2 == tuple(train.sentence2[i] for i in idx)
    assert np.array_equal(a.gold, train.gold[idx])
    assert "default_rng(seed=0)" in a.note and "file order" in a.note
    assert a.revision == train.revision


@pytest.mark.parametrize("split,n,first,score", [
    ("train", 5749, "A plane is taking off.", 5.0),
    ("validation", 1500, "A man with a hard hat is dancing.", 5.0),
    ("test", 1379, "A girl is styling her hair.", 2.5),
], ids=["train", "validation", "test"])
def test_stsb_counts_and_first_row(shared_data, split, n, first, score):
    p = load_pairs("stsb", split, shared_data, allow_hub=False)
    assert len(p) == n and p.sentence1[0] == first and p.gold[0] == score
    assert p.gold.min() == 0.0 and p.gold.max() == 5.0 and (p.gold_kind, p.gold_range) == ("graded", (0.0, 5.0))


def test_stsb_rows_with_nine_columns_keep_the_first_seven(shared_data):
    p = load_pairs("stsb", "test", shared_data, allow_hub=False)
    assert not any("StackExchange Network" in s for s in p.sentence2)
    assert any(s.endswith(" ") for s in p.sentence1)  # text is kept verbatim, trailing space and all


@pytest.mark.parametrize("split,n,first", [
    ("train", 4500, "A group of kids is playing in a yard and an old man is standing in the background"),
    ("validation", 500, "The young boys are playing outdoors and the man is smiling nearby"),
    ("test", 4927, "There is no boy playing outdoors and there is no man smiling"),
], ids=["train", "validation", "test"])
def test_sick_counts_first_row_and_crlf(shared_data, split, n, first):
    p = load_pairs("sickr", split, shared_data, allow_hub=False)
    assert len(p) == n and p.sentence1[0] == first
    assert not any(s.endswith("\r") for s in p.sentence2)  # the test file's CRLF is not in the text
    assert 1.0 <= p.gold.min() and p.gold.max() <= 5.0 and p.gold_range == (1.0, 5.0)


@pytest.mark.parametrize("name", sorted(STS_COUNTS))
def test_sts_years_per_domain_counts(shared_data, name):
    sets = load_pairs(name, "test", shared_data, allow_hub=False)
    assert {s.name.split("/")[1]: len(s) for s in sets} == STS_COUNTS[name]
    assert all(s.name.startswith(f"{name}/") and s.split == "test" for s in sets)
    assert all(0.0 <= s.gold.min() and s.gold.max() <= 5.0 for s in sets)
    unscored = sum(s.n_skipped for s in sets)
    assert (unscored > 0) == (name in ("sts15", "sts16"))
    assert all(("empty score" in s.note) == (s.n_skipped > 0) for s in sets)
    allset = pooled(sets, f"{name}/all")
    assert (allset.name, len(allset), allset.n_skipped) == (f"{name}/all", STS_TOTALS[name], unscored)
    assert allset.sentence1[:len(sets[0])] == sets[0].sentence1


def test_sts15_skip_count_matches_the_file(shared_data):
    path = shared_data / "sts12-16" / "2015" / "belief.test.tsv"
    empty = sum(line.startswith("\t") for line in path.read_text(encoding="utf-8").splitlines())
    [belief] = [s for s in load_pairs("sts15", "test", shared_data, allow_hub=False) if s.name == "sts15/belief"]
    assert belief.n_skipped == empty == 1625 and len(belief) == 375


def test_sts_year_folder_and_collection_folder_are_accepted(shared_data):
    a = load_pairs("sts13", "test", shared_data / "sts12-16", allow_hub=False)
    b = load_pairs("sts13", "test", shared_data / "sts12-16" / "2013", allow_hub=False)
    assert [s.revision for s in a] == [s.revision for s in b]


def test_default_root_is_the_data_root_the_caller_passes(shared_data, monkeypatch):
    p = load_pairs("stsb", "validation", default_root=shared_data, allow_hub=False)
    assert len(p) == 1500 and p.source == str(shared_data / "stsb" / "sts-dev.csv")


def test_the_loader_never_reads_the_environment(shared_data, monkeypatch):
    """Only cli.py and the pytest plugin read $RWKV_EVAL_DATA; they pass it as default_root."""
    monkeypatch.setenv(DATA_ENV, str(shared_data))
    with pytest.raises(DatasetNotFound, match=r"\$RWKV_EVAL_DATA: not set"):
        load_pairs("stsb", "validation", allow_hub=False)


def test_data_dir_comes_before_the_default_root(shared_data, tmp_path):
    (tmp_path / "sick").mkdir()
    (tmp_path / "sick" / "SICK_trial.txt").write_text(
        "\t".join(parsers.SICK.columns) + "\n1\tA dog runs.\tA dog is running.\t4.5\tENTAILMENT\n",
        encoding="utf-8")
    assert len(load_pairs("sickr", "validation", tmp_path, default_root=shared_data, allow_hub=False)) == 1
    assert len(load_pairs("sickr", "validation", default_root=shared_data, allow_hub=False)) == 500


def test_glue_stsb_layout(tmp_path):
    glue = tmp_path / "STS-B"
    glue.mkdir()
    header = "\t".join(parsers.GLUE_STSB.columns)
    rows = ["0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\t"
            "A man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\t5.000",
            "1\tmain-news\theadlines\t2013\t0001\tnone\tnone\tHe said \"yes.\tShe said no.\t0.5"]
    (glue / "dev.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    for root in (tmp_path, glue):
        p = load_pairs("stsb", "validation", root, allow_hub=False)
        assert p.sentence1 == ("A man with a hard hat is dancing.", 'He said "yes.') and list(p.gold) == [5.0, 0.5]
    (glue / "test.tsv").write_text(header.rsplit("\t", 1)[0] + "\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="no score column"):
        load_pairs("stsb", "test", tmp_path, allow_hub=False)


def test_bare_glue_file_of_another_task_is_not_taken(shared_data):
    # .../mrpc holds train.tsv; asked for STS-B, the header check refuses it instead of misreading MRPC.
    with pytest.raises(DatasetNotFound, match="header is not stsb's"):
        load_pairs("stsb", "train", shared_data / "mrpc", allow_hub=False)


# ---------------------------------------------------------------- names, not-found


def test_unknown_name_and_split_list_the_valid_ones():
    with pytest.raises(ValueError, match="expected one of.*'mrpc'.*'sts16'"):
        load_pairs("sts17", "test")
    with pytest.raises(ValueError, match=r"expected one of \['test'\]"):
        load_pairs("sts12", "train")
    assert get("mrpc").splits == ("train", "train-1000", "validation", "test")


def test_not_found_lists_every_try_and_how_to_get_it(tmp_path):
    env_root = tmp_path / "env"
    env_root.mkdir()
    with pytest.raises(DatasetNotFound) as e:
        load_pairs("mrpc", "validation", default_root=env_root)
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError) and "\n" not in msg
    assert "data_dir: not given" in msg
    assert str(env_root / "mrpc" / "dev.tsv") in msg and str(env_root / "MRPC" / "dev.tsv") in msg
    assert "hub nyu-mll/glue: the `datasets` package is not installed" in msg
    assert "--data-dir" in msg and DATA_ENV in msg and "gluebenchmark.com" in msg
    assert msg.index("data_dir") < msg.index(f"${DATA_ENV}") < msg.index("hub nyu-mll")


@pytest.mark.parametrize("kind", ["missing", "file", "empty-dir"])
def test_a_given_data_dir_is_the_only_place_tried(shared_data, tmp_path, kind):
    """A path the user named that does not hold the set is an error, never a switch to the env root or hub."""
    root = {"missing": tmp_path / "nowhere", "file": tmp_path / "f.txt", "empty-dir": tmp_path}[kind]
    if kind == "file":
        root.write_text("x")
    with pytest.raises(DatasetNotFound) as e:
        load_pairs("stsb", "test", root, default_root=shared_data)  # the default root would hold stsb test
    msg = str(e.value)
    assert str(root) in msg and "\n" not in msg
    assert {"missing": "does not exist", "file": "not a directory", "empty-dir": "not found in data_dir"}[kind] in msg
    assert str(shared_data) not in msg  # the env root was not even looked at


def test_env_root_that_is_not_a_directory_is_an_error(tmp_path):
    with pytest.raises(DatasetNotFound, match=r"\$RWKV_EVAL_DATA=.*nowhere is missing"):
        load_pairs("stsb", "test", default_root=tmp_path / "nowhere")


def test_not_found_without_hub_says_so(tmp_path):
    with pytest.raises(DatasetNotFound, match="allow_hub=False") as e:
        load_pairs("sts14", "test", allow_hub=False)
    assert "not given" in str(e.value) and "not set" in str(e.value)
    with pytest.raises(DatasetNotFound, match="the hub are not tried when a data directory is given") as e:
        load_pairs("sts14", "test", tmp_path)
    assert "missing OnWN.test.tsv" in str(e.value)


# ---------------------------------------------------------------- malformed files


def _write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


MRPC_HEAD = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
SICK_HEAD = "\t".join(parsers.SICK.columns) + "\r\n"
GOOD_STSB = "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man plays.\tA man is playing.\n"

BAD = {  # id: (dataset, split, file under the root, content, 1-based line, message fragment)
    "mrpc-columns": ("mrpc", "train", "mrpc/train.tsv",
                     MRPC_HEAD + "1\t1\t2\tonly one sentence\n", 2, "expected 5 columns"),
    "mrpc-label": ("mrpc", "validation", "mrpc/dev.tsv",
                   MRPC_HEAD + "1\t1\t2\ta\tb\n2\t1\t2\ta\tb\n", 3, "Quality '2'; expected 0 or 1"),
    "mrpc-header": ("mrpc", "test", "mrpc/test.tsv", "1\t1\t2\ta\tb\n", 1, "expected the header"),
    "mrpc-empty": ("mrpc", "train", "mrpc/train.tsv", MRPC_HEAD + "1\t1\t2\t \tb\n", 2, "#1 String is empty"),
    "stsb-columns": ("stsb", "train", "stsb/sts-train.csv",
                     GOOD_STSB + "g\tf\t2012\t1\t3.0\tonly one\n", 2, "expected 7 columns"),
    "stsb-score": ("stsb", "validation", "stsb/sts-dev.csv",
                   GOOD_STSB * 2 + "g\tf\t2012\t1\tx\ta\tb\n", 3, "'x' is not a number"),
    "stsb-range": ("stsb", "test", "stsb/sts-test.csv",
                   "g\tf\t2012\t1\t5.2\ta\tb\n", 1, "5.2 out of range; expected [0, 5]"),
    "stsb-nan": ("stsb", "test", "stsb/sts-test.csv", "g\tf\t2012\t1\tnan\ta\tb\n", 1, "not a number"),
    "stsb-empty": ("stsb", "test", "stsb/sts-test.csv",
                   GOOD_STSB + "g\tf\t2012\t1\t3\ta\t\n", 2, "sentence 2 is empty"),
    "stsb-blank": ("stsb", "test", "stsb/sts-test.csv", GOOD_STSB + "\n" + GOOD_STSB, 2, "blank line"),
    "sick-range": ("sickr", "test", "sick/SICK_test_annotated.txt",
                   SICK_HEAD + "1\ta\tb\t0.5\tNEUTRAL\r\n", 2, "0.5 out of range; expected [1, 5]"),
    "sick-columns": ("sickr", "train", "sick/SICK_train.txt",
                     SICK_HEAD + "1\ta\tb\t3.0\r\n", 2, "expected 5 columns"),
    "sts12-empty-score": ("sts12", "test", "sts12-16/2012/MSRpar.test.tsv",
                          "3.0\ta\tb\n\ta\tb\n", 2, "'' is not a number"),
    "sts16-columns": ("sts16", "test", "sts12-16/2016/plagiarism.test.tsv",
                      "\ta\tb\n4.0\ta b\n", 2, "expected 3 columns"),
    "sts15-range": ("sts15", "test", "sts12-16/2015/belief.test.tsv", "\ta\tb\n-1\ta\tb\n", 2, "-1 out of range"),
    "utf8": ("stsb", "test", "stsb/sts-test.csv",
             GOOD_STSB.encode() + b"g\tf\t2012\t1\t3\ta\xff\tb\n", 2,
             f"not UTF-8 at line 2, byte offset {len(GOOD_STSB) + 14}: 0xff"),
    # the offset is in the file as stored: BOM (3 bytes) + header, then 'a' of row 2
    "utf8-after-bom": ("mrpc", "validation", "mrpc/dev.tsv",
                       MRPC_HEAD.encode() + b"1\t1\t2\ta\xff\tb\n", 2,
                       f"line 2, byte offset {len(MRPC_HEAD.encode()) + 7}: 0xff "),
    "nul": ("stsb", "test", "stsb/sts-test.csv", GOOD_STSB + "g\tf\t2012\t1\t3\ta\0b\tc\n", 2,
            f"NUL byte on line 2, byte offset {len(GOOD_STSB) + 14}"),
}


@pytest.mark.parametrize("bad_id", sorted(BAD))
def test_malformed_rows_raise_naming_file_and_line(tmp_path, bad_id):
    name, split, rel, content, line, fragment = BAD[bad_id]
    path = _write(tmp_path, rel, content)
    if name.startswith("sts1"):  # the other domains of the year, well-formed
        for domain in ds.STS_DOMAINS[name]:
            if not (path.parent / f"{domain}.test.tsv").exists():
                _write(path.parent, f"{domain}.test.tsv", "2.5\ta\tb\n")
    with pytest.raises(DatasetFormatError) as e:
        load_pairs(name, split, tmp_path, allow_hub=False)
    assert isinstance(e.value, ValueError)
    assert str(path) in str(e.value) and f"line {line}" in str(e.value) and fragment in str(e.value), str(e.value)


def test_bom_offset_points_at_the_bad_byte_in_the_file_as_stored(tmp_path):
    name, split, rel, content, line, fragment = BAD["utf8-after-bom"]
    path = _write(tmp_path, rel, content)
    with pytest.raises(DatasetFormatError) as e:
        load_pairs(name, split, tmp_path)
    offset = int(str(e.value).split("byte offset ")[1].split(":")[0])
    assert path.read_bytes()[offset] == 0xFF


def test_a_sentence_longer_than_the_csv_field_limit_is_read(tmp_path):
    long = "word " * 40_000  # 200,000 characters > csv's default 131,072
    _write(tmp_path, "stsb/sts-test.csv", GOOD_STSB + f"g\tf\t2012\t1\t3\t{long}\tb\n")
    assert load_pairs("stsb", "test", tmp_path).sentence1[1] == long


def test_a_directory_where_the_data_file_should_be_is_an_error(tmp_path):
    (tmp_path / "stsb" / "sts-test.csv").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match="sts-test.csv is a directory"):
        load_pairs("stsb", "test", tmp_path)


def test_duplicate_pairs_are_kept_and_counted(tmp_path):
    swapped = "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man is playing.\tA man plays.\n"
    other = "g\tf\t2012\t2\t1.0\tA dog.\tA cat.\n"
    _write(tmp_path, "stsb/sts-test.csv", GOOD_STSB * 3 + swapped + other)
    p = load_pairs("stsb", "test", tmp_path)
    assert len(p) == 5 and p.n_duplicate_pairs == 3 and p.provenance()["n_duplicate_pairs"] == 3


def test_sts16_unscored_rows_are_counted_not_dropped_silently(tmp_path):
    for domain in ds.STS_DOMAINS["sts16"]:
        _write(tmp_path, f"sts12-16/2016/{domain}.test.tsv", "\ta\tb\n4\tc\td\n\te\tf\n")
    sets = load_pairs("sts16", "test", tmp_path, allow_hub=False)
    assert [(len(s), s.n_skipped) for s in sets] == [(1, 2)] * 5 and "2 rows with an empty score" in sets[0].note


def test_pooled_refuses_mixed_scales():
    a = PairSet("a", "test", ("x",), ("y",), np.array([1.0]), "graded", (0.0, 5.0), "a", "r")
    b = PairSet("b", "test", ("x",), ("y",), np.array([1.0]), "graded", (1.0, 5.0), "b", "r")
    with pytest.raises(ValueError, match="differ in gold_range"):
        pooled([a, b], "ab")
    with pytest.raises(ValueError, match="no sets"):
        pooled([], "none")


# ---------------------------------------------------------------- bundled sample


def derive_stsb_sample(sts_test_csv: bytes) -> bytes:
    """The selection of rwkv_eval/data/stsb_sample.tsv, as its NOTICE describes it.

    Rows of the original sts-test.csv whose source-file column is images or track5.en-en (the
    CC BY-SA texts); stable-sorted by score; the ranks round(linspace(0, n-1, 300)); back in
    file order; lines unchanged.
    """
    lines = sts_test_csv.decode("utf-8").split("\n")
    assert lines[-1] == ""
    rows = [line for line in lines[:-1] if line.split("\t")[1] in registry.SAMPLE_SOURCES]
    assert all(len(r.split("\t")) == 7 for r in rows)
    order = sorted(range(len(rows)), key=lambda i: float(rows[i].split("\t")[4]))
    keep = sorted(order[int(r)] for r in np.linspace(0, len(rows) - 1, registry.SAMPLE_SIZE).round())
    assert len(set(keep)) == registry.SAMPLE_SIZE
    return "".join(rows[i] + "\n" for i in keep).encode("utf-8")


def test_sample_is_rederived_byte_for_byte(shared_data):
    assert derive_stsb_sample((shared_data / "stsb" / "sts-test.csv").read_bytes()) == SAMPLE.read_bytes()


def test_sample_rows_are_redistributable_and_unchanged(shared_data):
    original = set((shared_data / "stsb" / "sts-test.csv").read_text(encoding="utf-8").split("\n"))
    lines = SAMPLE.read_text(encoding="utf-8").split("\n")[:-1]
    assert all(line in original for line in lines)  # never an edited row, never an invented score
    assert {tuple(line.split("\t")[:3]) for line in lines} <= {
        ("main-captions", "images", "2014"), ("main-captions", "images", "2015"),
        ("main-captions", "track5.en-en", "2017")}


def test_the_shipped_sample_takes_no_data_root(shared_data):
    assert load_pairs("stsb-sample", "test", default_root=shared_data).revision == _sha(SAMPLE)  # not looked at
    with pytest.raises(ValueError, match="does not apply to stsb-sample .it ships inside the package"):
        load_pairs("stsb-sample", "test", shared_data)
    with pytest.raises(ValueError, match=r"unknown split 'validation' for stsb-sample; expected one of \['test'\]"):
        load_pairs("stsb-sample", "validation")


def test_load_sample():
    p = load_sample()
    assert (p.name, p.split, len(p), p.gold_kind, p.gold_range) == ("stsb-sample", "test", 300, "graded", (0.0, 5.0))
    assert p.gold.dtype == np.float64 and p.gold.min() == 0.0 and p.gold.max() == 5.0
    assert p.revision == _sha(SAMPLE) and "CC BY-SA" in p.note
    rows = [line.split("\t") for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    assert all(r[1] in ("images", "track5.en-en") for r in rows) and len(rows) == 300
    # spread over the whole scale: every unit band of scores is represented
    assert np.histogram(p.gold, bins=[0, 1, 2, 3, 4, 5.01])[0].min() >= 30
    notice = (SAMPLE.parent / "stsb_sample.NOTICE.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in notice and "SemEval-2017" in notice and "track5.en-en" in notice


# ---------------------------------------------------------------- hub, with fake modules


class _FakeDataset:
    def __init__(self, columns: dict[str, list]):
        self._columns = columns
        self.column_names = list(columns)

    def __getitem__(self, column: str) -> list:
        return self._columns[column]


def _fake_hub(monkeypatch, tables: dict[tuple, dict[str, list]], calls: list):
    def load_dataset(*args, split, revision):
        calls.append((args, split, revision))
        if (*args, split) not in tables:
            raise ConnectionError("offline")
        return _FakeDataset(tables[(*args, split)])

    class HfApi:
        def dataset_info(self, repo_id):
            return types.SimpleNamespace(sha="c0ffee" + repo_id.replace("/", "-"))

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(HfApi=HfApi))


def test_hub_stsb_is_scaled_to_0_5_and_pinned(monkeypatch, tmp_path):
    calls = []
    _fake_hub(monkeypatch, {("sentence-transformers/stsb", "test"): {
        "sentence1": ["a", "b"], "sentence2": ["c", "d"], "score": [0.5, 1.0]}}, calls)
    p = load_pairs("stsb", "test")
    assert list(p.gold) == [2.5, 5.0] and p.gold_range == (0.0, 5.0) and "multiplied by 5" in p.note
    rev = "c0ffeesentence-transformers-stsb"
    assert calls == [(("sentence-transformers/stsb",), "test", rev)]
    assert (p.revision, p.source) == (rev, f"sentence-transformers/stsb@{rev}")


def test_hub_mrpc_and_its_train_1000(monkeypatch):
    calls = []
    n = 1200
    labels = [i % 2 for i in range(n)]
    _fake_hub(monkeypatch, {("nyu-mll/glue", "mrpc", "train"): {
        "sentence1": [f"s{i}" for i in range(n)], "sentence2": [f"t{i}" for i in range(n)], "label": labels,
        "idx": list(range(n))}}, calls)
    p = load_pairs("mrpc", "train")
    assert len(p) == n and p.gold_kind == "binary" and "tokenized" in p.note
    sub = load_pairs("mrpc", "train-1000")
    idx = np.sort(np.random.default_rng(0).choice(n, 1000, replace=False))
    assert sub.sentence1 == tuple(f"s{i}" for i in idx) and sub.split == "train-1000"
    assert calls[0][0] == ("nyu-mll/glue", "mrpc")


def test_hub_mrpc_test_has_no_labels_so_it_is_not_offered(monkeypatch):
    _fake_hub(monkeypatch, {}, [])
    with pytest.raises(DatasetNotFound, match="no gold-scored 'test' split"):
        load_pairs("mrpc", "test")


def test_hub_sts_year_is_one_pooled_set_and_skips_unscored(monkeypatch):
    _fake_hub(monkeypatch, {("mteb/sts15-sts", "test"): {
        "sentence1": ["a", "b", "c"], "sentence2": ["d", "e", "f"], "score": [4.0, None, 1.0]}}, [])
    [p] = load_pairs("sts15", "test")
    assert (p.name, len(p), p.n_skipped) == ("sts15/all", 2, 1) and "no domain column" in p.note


def test_hub_bad_rows_and_failures(monkeypatch):
    _fake_hub(monkeypatch, {("mteb/sickr-sts", "test"): {
        "sentence1": ["a", "b"], "sentence2": ["c", "d"], "score": [3.0, 0.2]}}, [])
    with pytest.raises(DatasetFormatError, match=r"mteb/sickr-sts@[\w-]+ split test, row 2: score 0.2 out of range"):
        load_pairs("sickr", "test")
    with pytest.raises(DatasetNotFound, match="hub mteb/sts12-sts: ConnectionError: offline"):
        load_pairs("sts12", "test")


# ---------------------------------------------------------------- the one seeded subset


def _drawn(full: PairSet, n: int, seed: int) -> np.ndarray:
    """The documented draw, written out with numpy alone."""
    return np.sort(np.random.default_rng(seed).choice(len(full), size=n, replace=False))


@pytest.mark.parametrize("n,seed", [(50, 3), (3, 0), (1378, 7)])
def test_sample_is_the_documented_numpy_draw_in_file_order(shared_data, n, seed):
    full = load_pairs("stsb", "test", shared_data)
    sub = sample(full, n, seed)
    idx = _drawn(full, n, seed)
    assert sub.sentence1 == tuple(full.sentence1[i] for i in idx)
    assert sub.sentence2 == tuple(full.sentence2[i] for i in idx)
    assert np.array_equal(sub.gold, full.gold[idx]) and sub.split == f"test-{n}" and len(sub) == n
    assert f"default_rng(seed={seed}).choice({len(full)}, size={n}, replace=False)" in sub.note
    assert (sub.revision, sub.source, sub.gold_range) == (full.revision, full.source, full.gold_range)


def test_sample_edge_cases(shared_data):
    full = load_pairs("stsb", "test", shared_data)
    assert sample(full, None) is full  # no subset asked
    for n in (2, 0, -1):
        with pytest.raises(ValueError, match=f"at least 3 pairs.*got n={n}"):
            sample(full, n)
    for n in (len(full), len(full) + 1, 10**6):
        everything = sample(full, n, 5)
        # the whole split, visibly: same pairs and split name, the note says what was asked
        assert everything.sentence1 == full.sentence1 and np.array_equal(everything.gold, full.gold)
        assert everything.split == "test" and f"a subset of {n} pairs was asked; test has {len(full)}" in everything.note


def test_sample_keeps_the_sets_own_note(shared_data):
    [belief] = [s for s in load_pairs("sts15", "test", shared_data) if s.name == "sts15/belief"]
    sub = sample(belief, 10)
    assert sub.note.endswith("; " + belief.note) and sub.n_skipped == belief.n_skipped


def test_mrpc_train_1000_note_is_unchanged(shared_data):
    """The note of the named subset split, character for character as before the registry."""
    a = load_pairs("mrpc", "train-1000", shared_data, allow_hub=False)
    assert a.note == ("1000 of 3668 train pairs: numpy.random.default_rng(seed=0).choice(3668, size=1000, "
                      "replace=False), sorted into file order")


def test_train_1000_of_a_train_split_too_small_is_an_error(tmp_path):
    _write(tmp_path, "rte/train.tsv", "index\tsentence1\tsentence2\tlabel\n"
           + "".join(f"{i}\ta{i}\tb{i}\tentailment\n" for i in range(999)))
    assert len(load_pairs("rte", "train", tmp_path)) == 999
    with pytest.raises(ValueError, match="train has 999 pairs, fewer than the 1000 of train-1000"):
        load_pairs("rte", "train-1000", tmp_path)


# ---------------------------------------------------------------- the one UTF-8/NUL check


@pytest.mark.parametrize("raw,fragment", [
    (b"ok\nbad \xe9 here\n", "where: not UTF-8 at line 2, byte offset 7: 0xe9 (0-based, in the file as stored); "
                             "re-encode it as UTF-8"),
    (b"\xef\xbb\xbfok\n\x00\n", "where: NUL byte on line 2, byte offset 6 (0-based, in the file as stored); "
                                "expected a text file: is it binary, or corrupted?"),
], ids=["latin1", "nul-after-bom"])
def test_decode_text_says_what_where_and_how_to_fix(raw, fragment):
    with pytest.raises(DatasetFormatError) as e:
        decode_text(raw, "where", DatasetFormatError)
    assert str(e.value) == fragment
    offset = int(fragment.split("byte offset ")[1].split(" ")[0].rstrip(":"))
    assert raw[offset] in (0xE9, 0x00)  # the offset is in the bytes as stored, BOM included


def test_decode_text_drops_the_bom_only():
    assert decode_text(b"\xef\xbb\xbfa\tb\r\n", "x") == "a\tb\r\n"
