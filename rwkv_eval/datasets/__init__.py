"""Scored sentence-pair sets: GLUE MRPC, RTE, QQP, STS Benchmark, SICK-R, SemEval STS12-16.

Every loader returns a frozen `PairSet`: sentences, gold scores, the gold scale, and where
the data came from (file path and sha256, or hub id and commit). Files are read exactly as
published, with quoting disabled (`csv.QUOTE_NONE`): MRPC and STS sentences carry unbalanced
double quotes that a quote-aware parser would silently merge across lines.

Sources and layouts (a data root holds one folder per dataset, as below):

- MRPC (Dolan & Brockett 2005), GLUE split (Wang et al. 2019, https://gluebenchmark.com):
  ``mrpc/{train,dev,test}.tsv``, UTF-8 with a BOM, header
  ``Quality #1 ID #2 ID #1 String #2 String``; hub ``nyu-mll/glue`` config ``mrpc``.
- STS Benchmark (Cer et al., SemEval-2017 Task 1, https://aclanthology.org/S17-2001):
  ``stsb/sts-{train,dev,test}.csv`` (tab-separated, no header, 7 columns, some rows with 2
  extra trailing source notes) or the GLUE copy ``STS-B/{train,dev}.tsv``; hub
  ``sentence-transformers/stsb`` (scores 0-1, scaled here to 0-5).
- SICK-R (Marelli et al., SemEval-2014 Task 1): ``sick/SICK_{train,trial,test_annotated}.txt``;
  hub ``mteb/sickr-sts`` (test only).
- GLUE RTE (Wang et al. 2019): ``rte/{train,dev}.tsv``, header ``index sentence1 sentence2 label``
  (entailment -> 1, not_entailment -> 0); GLUE QQP: ``qqp/{train,dev}.tsv``, header
  ``id qid1 qid2 question1 question2 is_duplicate``; hub ``nyu-mll/glue`` configs ``rte``/``qqp``.
  Binary like MRPC: scored as similarity, with accuracy at a threshold tuned on train.
- SemEval STS 2012-2016 (Agirre et al.): ``sts12-16/YEAR/DOMAIN.test.tsv`` (score, s1, s2);
  hub ``mteb/sts12-sts`` ... ``mteb/sts16-sts``.

Reference code: facebookresearch/SentEval, senteval/sts.py at commit
961edcb3160302ba28c71c58e037cc50cc68021d, reads STS12-16 per domain and drops rows with an
empty gold score as done here; it reports "all" as the (weighted) mean of per-domain
correlations, and `pooled` adds the pooled-pairs variant.

Where the data is looked for: a `data_dir` argument is the only place tried (a path the user
gave that does not hold the set is an error, never a silent switch to other data); without
one, the data root named by the environment variable RWKV_EVAL_DATA (read when `load_pairs`
is called, never at import; it must be a directory when set), then the Hugging Face hub;
`DatasetNotFound` lists every place it tried.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

DATA_ENV = "RWKV_EVAL_DATA"


@dataclass(frozen=True)
class PairSet:
    """One scored pair set, immutable so a cached set cannot be edited under a benchmark.

    gold_kind is "binary" (MRPC 0/1 paraphrase labels) or "graded" (STS 0-5, SICK 1-5);
    gold_range is the scale's (min, max). revision is the sha256 of the source file(s)
    (or the hub dataset revision); source is the path or hub id it came from.
    """

    name: str  # "mrpc", "stsb", "sickr", "sts12/MSRpar", "stsb-sample", ...
    split: str  # "train", "train-1000", "validation", "test"
    sentence1: tuple[str, ...]
    sentence2: tuple[str, ...]
    gold: np.ndarray  # (N,) float64
    gold_kind: str
    gold_range: tuple[float, float]
    source: str
    revision: str
    n_skipped: int = 0  # rows dropped by a documented rule (e.g. unscored STS15/16 rows)
    note: str = ""  # how a subset was drawn, what was skipped, licence

    def __len__(self) -> int:
        return len(self.gold)

    @property
    def n_duplicate_pairs(self) -> int:
        """Rows repeating an earlier row's two sentences (either order). They are kept, as
        published, but they weigh twice in a correlation and narrow its bootstrap CI."""
        return len(self) - len({(a, b) if a <= b else (b, a) for a, b in zip(self.sentence1, self.sentence2)})

    def provenance(self) -> dict:
        return {"dataset": self.name, "split": self.split, "n_pairs": len(self), "dataset_source": self.source,
                "dataset_revision": self.revision, "n_skipped": self.n_skipped,
                "n_duplicate_pairs": self.n_duplicate_pairs}


class DatasetNotFound(FileNotFoundError):
    """No copy of the requested set in any place tried; the message lists them and how to get one."""


class DatasetFormatError(ValueError):
    """A row that does not fit the published layout; the message names file, 1-based line and expectation."""


_STS_YEARS = {"sts12": "2012", "sts13": "2013", "sts14": "2014", "sts15": "2015", "sts16": "2016"}

# The scored domains of each year as released (2013's SMT is LDC-licensed and not public).
STS_DOMAINS: dict[str, tuple[str, ...]] = {
    "sts12": ("MSRpar", "MSRvid", "OnWN", "SMTeuroparl", "SMTnews"),
    "sts13": ("FNWN", "OnWN", "headlines"),
    "sts14": ("OnWN", "deft-forum", "deft-news", "headlines", "images", "tweet-news"),
    "sts15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "sts16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}

DATASETS: dict[str, tuple[str, ...]] = {
    "mrpc": ("train", "train-1000", "validation", "test"),
    "stsb": ("train", "validation", "test"),
    "sickr": ("train", "validation", "test"),
    **{name: ("test",) for name in _STS_YEARS},
    "rte": ("train", "train-1000", "validation"),  # GLUE's test labels are not public
    "qqp": ("train", "train-1000", "validation"),
}

GOLD_RANGE = {"mrpc": (0.0, 1.0), "stsb": (0.0, 5.0), "sickr": (1.0, 5.0), **{n: (0.0, 5.0) for n in _STS_YEARS},
              "rte": (0.0, 1.0), "qqp": (0.0, 1.0)}
# Binary GLUE tasks scored as similarity (cosine vs a 0/1 label; accuracy at a tuned threshold)
BINARY = ("mrpc", "rte", "qqp")

# train-1000: numpy.random.default_rng(seed=0).choice(n_train, size=1000, replace=False), sorted
# back into file order. A fixed subset keeps the (slow) train-split runs comparable across models.
TRAIN_SUBSET_SIZE = 1000
TRAIN_SUBSET_SEED = 0

_MRPC_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
_RTE_HEADER = ["index", "sentence1", "sentence2", "label"]
_RTE_LABELS = {"entailment": 1.0, "not_entailment": 0.0}  # entailment = the "similar" class
_QQP_HEADER = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
_SICK_HEADER = ["pair_ID", "sentence_A", "sentence_B", "relatedness_score", "entailment_judgment"]
_GLUE_STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                     "sentence2", "score"]
_SPLIT_STEM = {"train": "train", "validation": "dev", "test": "test"}
_SICK_FILES = {"train": "SICK_train.txt", "validation": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}

_HUB = {  # name -> (hub id, config, splits the hub copy has with gold scores)
    "mrpc": ("nyu-mll/glue", "mrpc", ("train", "validation")),  # GLUE's test labels are -1
    "stsb": ("sentence-transformers/stsb", None, ("train", "validation", "test")),
    "sickr": ("mteb/sickr-sts", None, ("test",)),
    **{name: (f"mteb/{name}-sts", None, ("test",)) for name in _STS_YEARS},
    "rte": ("nyu-mll/glue", "rte", ("train", "validation")),
    "qqp": ("nyu-mll/glue", "qqp", ("train", "validation")),
}
# hub columns (sentence 1, sentence 2, label) and label -> gold where they differ from MRPC's
_HUB_COLUMNS = {"qqp": ("question1", "question2", "label")}
_HUB_LABEL_GOLD = {"rte": {0: 1.0, 1: 0.0}}  # GLUE hub RTE: 0 = entailment, 1 = not_entailment

_HOW_TO_GET = {
    "mrpc": "GLUE MRPC: run GLUE's download_glue_data.py (https://gluebenchmark.com) or take "
            "msr_paraphrase_{train,test}.txt from https://www.microsoft.com/en-us/download/details.aspx?id=52398; "
            "put train.tsv, dev.tsv, test.tsv in ROOT/mrpc/",
    "stsb": "STS Benchmark: unpack stsbenchmark.tar.gz (http://ixa2.si.ehu.eus/stswiki/index.php/STSbenchmark) "
            "so that ROOT/stsb/sts-{train,dev,test}.csv exist (or GLUE's STS-B/ folder as ROOT/STS-B/)",
    "sickr": "SICK: download SICK_train.txt, SICK_trial.txt, SICK_test_annotated.txt "
             "(https://marcobaroni.org/composes/sick.html, SemEval-2014 Task 1) into ROOT/sick/",
    **{name: f"SemEval STS {year}: put the per-domain DOMAIN.test.tsv files (score, s1, s2) in ROOT/sts12-16/{year}/ "
             f"(e.g. from https://github.com/brmson/dataset-sts data/sts/semeval-sts/{year}/)"
       for name, year in _STS_YEARS.items()},
    "rte": "GLUE RTE: run GLUE's download_glue_data.py (https://gluebenchmark.com) and put train.tsv and dev.tsv "
           "(header index, sentence1, sentence2, label) in ROOT/rte/",
    "qqp": "GLUE QQP: run GLUE's download_glue_data.py (https://gluebenchmark.com) and put train.tsv and dev.tsv "
           "(header id, qid1, qid2, question1, question2, is_duplicate) in ROOT/qqp/",
}


# ---------------------------------------------------------------- public API


def load_pairs(name: str, split: str, data_dir: str | Path | None = None, *,
               allow_hub: bool = True) -> PairSet | list[PairSet]:
    """Load one split of a scored pair set.

    Args:
        name: one of DATASETS: "mrpc", "stsb", "sickr", "sts12" ... "sts16".
        split: one of DATASETS[name]. "validation" is MRPC/STS-B dev.tsv / sts-dev.csv and
            SICK's trial file. MRPC "train-1000" is a fixed subset of train:
            ``numpy.random.default_rng(seed=0).choice(n_train, size=1000, replace=False)``,
            sorted back into file order (the method is repeated in the set's `note`).
        data_dir: a data root laid out as ``mrpc/``, ``stsb/`` (or GLUE's ``STS-B/``), ``sick/``,
            ``sts12-16/YEAR/``; or the dataset's own folder (e.g. ``.../mrpc``,
            ``.../sts12-16``, ``.../sts12-16/2012``). When given, nothing else is tried.
        allow_hub: without data_dir, if $RWKV_EVAL_DATA has no copy, read the Hugging Face
            hub copy (needs the `datasets` package and the network).

    Returns:
        A PairSet with gold of shape (N,) float64; for sts12 ... sts16 a list of PairSets, one
        per domain, named "sts12/MSRpar" etc. (`pooled` makes the "sts12/all" set). STS15/16
        rows with an empty score (not gold-annotated) are dropped and counted in n_skipped.

    Raises:
        ValueError: unknown name or split.
        DatasetNotFound: no copy in data_dir (or, without it, in $RWKV_EVAL_DATA or the hub);
            a data_dir or $RWKV_EVAL_DATA that is not a directory. Lists every try, on one line.
        DatasetFormatError: a malformed row (file, 1-based line, what was expected).

    Example:
        >>> sets = load_pairs("sts12", "test", "/data")           # doctest: +SKIP
        >>> [s.name for s in sets][:2], len(pooled(sets, "sts12/all"))  # doctest: +SKIP
        (['sts12/MSRpar', 'sts12/MSRvid'], 3108)
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)} "
                         "(or load_sample() for the bundled STS-B sample)")
    if split not in DATASETS[name]:
        raise ValueError(f"unknown split {split!r} for {name}; expected one of {list(DATASETS[name])}")
    tried: list[str] = []
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise DatasetNotFound(f"data_dir {root}: {'not a directory' if root.exists() else 'does not exist'}; "
                                  f"give the data root that holds {name} (nothing else is tried when a data "
                                  f"directory is given: not ${DATA_ENV}, not the hub)")
        found = _load_local(name, split, root, tried, "data_dir")
        if found is not None:
            return found
        raise DatasetNotFound(f"{name} split {split!r} not found in data_dir {root}. Tried: " + "; ".join(tried)
                              + f". To get it: {_HOW_TO_GET[name]}; then pass --data-dir ROOT (data_dir=ROOT). "
                              f"${DATA_ENV} and the hub are not tried when a data directory is given")
    tried.append("data_dir: not given")
    env = os.environ.get(DATA_ENV)
    if env:
        if not Path(env).is_dir():
            raise DatasetNotFound(f"${DATA_ENV}={env} is {'not a directory' if Path(env).exists() else 'missing'}; "
                                  f"point it at the data root that holds {name}, or unset it")
        found = _load_local(name, split, Path(env), tried, f"${DATA_ENV}")
        if found is not None:
            return found
    else:
        tried.append(f"${DATA_ENV}: not set")
    if allow_hub:
        found = _load_hub(name, split, tried)
        if found is not None:
            return found
    else:
        tried.append("hub: not tried (allow_hub=False)")
    hub_id, config, _ = _HUB[name]
    hub = f"{hub_id} (config {config})" if config else hub_id
    raise DatasetNotFound(
        f"{name} split {split!r} not found. Tried: " + "; ".join(tried) + ". "
        f"To get it: {_HOW_TO_GET[name]}; then pass --data-dir ROOT (data_dir=ROOT) or set {DATA_ENV}=ROOT. "
        f"Or install the hub extra (pip install 'rwkv-eval[hub]') to read {hub} from the Hugging Face hub.")


def pooled(sets: Sequence[PairSet], name: str) -> PairSet:
    """Concatenate the domain sets of one year into one set (SentEval's "all"), e.g. "sts12/all".

    The sets must share split, gold_kind and gold_range. revision is the sha256 of the members'
    revisions joined by newlines in the given order; source lists the members' sources.
    """
    sets = list(sets)
    if not sets:
        raise ValueError(f"pooled({name!r}) got no sets; pass the list load_pairs returns for an STS year")
    for attr in ("split", "gold_kind", "gold_range"):
        values = {getattr(s, attr) for s in sets}
        if len(values) > 1:
            raise ValueError(f"pooled({name!r}): the sets differ in {attr} ({sorted(map(str, values))}); "
                             "pool only sets of one split and scale")
    revision = hashlib.sha256("\n".join(s.revision for s in sets).encode()).hexdigest()
    skipped = sum(s.n_skipped for s in sets)
    return PairSet(
        name=name, split=sets[0].split,
        sentence1=tuple(x for s in sets for x in s.sentence1),
        sentence2=tuple(x for s in sets for x in s.sentence2),
        gold=np.concatenate([s.gold for s in sets]).astype(np.float64),
        gold_kind=sets[0].gold_kind, gold_range=sets[0].gold_range,
        source="; ".join(s.source for s in sets), revision=revision, n_skipped=skipped,
        note=f"pooled pairs of {', '.join(f'{s.name} ({len(s)})' for s in sets)}; "
             "revision = sha256 of the member revisions joined by newlines"
             + (f"; {skipped} unscored rows skipped in the members" if skipped else ""))


def sample(pairs: PairSet, n: int, seed: int = 0) -> PairSet:
    """A seeded subset of n pairs (all of them if there are no more), kept in file order:
    numpy.random.default_rng(seed).choice(len, n, replace=False), sorted; the method is in `note`."""
    if n < 1:
        raise ValueError(f"a sample needs n >= 1 pairs; got {n}")
    if n >= len(pairs):
        return pairs
    idx = np.sort(np.random.default_rng(seed).choice(len(pairs), size=n, replace=False))
    how = f"{n} of {len(pairs)} pairs: numpy.random.default_rng({seed}).choice({len(pairs)}, {n}, replace=False), sorted"
    return PairSet(name=pairs.name, split=pairs.split, sentence1=tuple(pairs.sentence1[i] for i in idx),
                   sentence2=tuple(pairs.sentence2[i] for i in idx), gold=pairs.gold[idx].copy(),
                   gold_kind=pairs.gold_kind, gold_range=pairs.gold_range, source=pairs.source,
                   revision=pairs.revision, n_skipped=pairs.n_skipped,
                   note=how + (f"; {pairs.note}" if pairs.note else ""))


SAMPLE_FILE = "stsb_sample.tsv"
SAMPLE_SIZE = 300
SAMPLE_SOURCES = ("images", "track5.en-en")


def load_sample() -> PairSet:
    """The bundled 300-pair STS Benchmark test sample: the no-download default.

    How it was made (nothing changed but the selection; see data/stsb_sample.NOTICE.md):
    from the original ``sts-test.csv`` (stsbenchmark.tar.gz) take every row whose source-file
    column (2nd) is ``images`` or ``track5.en-en`` — the only genres whose text and scores are
    CC BY-SA — i.e. 375 rows, all with exactly 7 columns. Order those rows by score (a stable
    sort, ties in file order) and keep the rows at ranks ``round(i * 374 / 299)`` for
    i = 0..299 (``numpy.linspace(0, 374, 300).round()``): a systematic sample stratified over
    the score distribution, keeping the lowest and highest score. The rows are written back in
    file order, unchanged, LF-terminated. tests/test_datasets.py re-derives the file this way
    and checks it byte for byte.

    Returns:
        PairSet "stsb-sample", split "test", gold in [0, 5] of shape (300,) float64.
    """
    ref = resources.files("rwkv_eval") / "data" / SAMPLE_FILE
    raw = ref.read_bytes()
    s1, s2, gold = _parse_stsb(_rows(raw, str(ref)), str(ref))
    return PairSet(name="stsb-sample", split="test", sentence1=s1, sentence2=s2, gold=gold, gold_kind="graded",
                   gold_range=GOLD_RANGE["stsb"], source=str(ref), revision=hashlib.sha256(raw).hexdigest(),
                   note=f"{SAMPLE_SIZE} STS-B test pairs of the CC BY-SA sources {', '.join(SAMPLE_SOURCES)}; "
                        "selection in rwkv_eval/data/stsb_sample.NOTICE.md; scores and text CC BY-SA 4.0")


# ---------------------------------------------------------------- local files


def _load_local(name: str, split: str, root: Path, tried: list[str], label: str) -> PairSet | list[PairSet] | None:
    """Try the layouts of `name` under `root`; record each miss in `tried`; None if none matched."""
    if name in _STS_YEARS:
        return _load_sts_year(name, root, tried, label)
    for path, header in _candidates(name, split, root):
        if not path.exists():
            tried.append(f"{label}: {path} ({'broken symbolic link' if path.is_symlink() else 'missing'})")
            continue
        if not path.is_file():
            raise DatasetFormatError(f"{path} is a directory (or another non-file); expected the {name} data file")
        if header is not None and _first_row(path)[:len(header)] != header:
            # A bare train.tsv may belong to another GLUE task: only take it if the header fits.
            tried.append(f"{label}: {path} (header is not {name}'s: {' '.join(header)})")
            continue
        return _build(name, split, path)
    return None


def _candidates(name: str, split: str, root: Path) -> list[tuple[Path, list[str] | None]]:
    """(file, required header start or None) in the order tried. Headers guard ambiguous bare names.

    The GLUE STS-B check omits the score column so that GLUE's unlabelled test.tsv is taken and
    refused with a clear message rather than reported missing.
    """
    stem = _SPLIT_STEM[split.removesuffix("-1000")]
    if name == "mrpc":
        f = f"{stem}.tsv"
        return [(root / "mrpc" / f, None), (root / "MRPC" / f, None), (root / f, _MRPC_HEADER)]
    if name == "stsb":
        f = f"sts-{stem}.csv"
        g = f"{stem}.tsv"
        glue = _GLUE_STSB_HEADER[:-1]
        return [(root / "stsb" / f, None), (root / f, None), (root / "STS-B" / g, glue),
                (root / "stsb" / "STS-B" / g, glue), (root / g, glue)]
    if name in ("rte", "qqp"):
        f, header = f"{stem}.tsv", _RTE_HEADER if name == "rte" else _QQP_HEADER
        return [(root / name / f, None), (root / name.upper() / f, None), (root / f, header)]
    f = _SICK_FILES[split]
    return [(root / "sick" / f, None), (root / f, None)]


def _load_sts_year(name: str, root: Path, tried: list[str], label: str) -> list[PairSet] | None:
    year = _STS_YEARS[name]
    for folder in (root / "sts12-16" / year, root / year, root):
        missing = [d for d in STS_DOMAINS[name] if not (folder / f"{d}.test.tsv").is_file()]
        if missing:
            tried.append(f"{label}: {folder} (missing {', '.join(f'{d}.test.tsv' for d in missing)})")
            continue
        # Extra *.test.tsv files (e.g. 2013 SMT from the LDC) are loaded too, under their own names.
        extra = sorted(p.name.removesuffix(".test.tsv") for p in folder.glob("*.test.tsv")
                       if p.name.removesuffix(".test.tsv") not in STS_DOMAINS[name])
        sets = []
        for domain in (*STS_DOMAINS[name], *extra):
            path = folder / f"{domain}.test.tsv"
            raw = _read(path)
            unscored_ok = year in ("2015", "2016")
            s1, s2, gold, skipped = _parse_sts_domain(_rows(raw, str(path)), str(path), allow_unscored=unscored_ok)
            note = (f"{skipped} rows with an empty score skipped: not gold-annotated, not part of the "
                    "SemEval evaluation" if skipped else "")
            sets.append(PairSet(name=f"{name}/{domain}", split="test", sentence1=s1, sentence2=s2, gold=gold,
                                gold_kind="graded", gold_range=GOLD_RANGE[name], source=str(path),
                                revision=hashlib.sha256(raw).hexdigest(), n_skipped=skipped, note=note))
        return sets
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DatasetFormatError(f"{path}: cannot read it ({e.strerror or type(e).__name__}); check its "
                                 "permissions") from e


def _build(name: str, split: str, path: Path) -> PairSet:
    raw = _read(path)
    where = str(path)
    rows = _rows(raw, where)
    if name == "mrpc":
        s1, s2, gold = _parse_mrpc(rows, where)
    elif name == "stsb":
        glue = bool(rows) and rows[0][1][:1] == ["index"]  # GLUE's STS-B has a header, the original none
        s1, s2, gold = (_parse_glue_stsb if glue else _parse_stsb)(rows, where)
    elif name == "rte":
        s1, s2, gold = _parse_rte(rows, where)
    elif name == "qqp":
        s1, s2, gold = _parse_qqp(rows, where)
    else:
        s1, s2, gold = _parse_sick(rows, where)
    kind = "binary" if name in BINARY else "graded"
    pairs = PairSet(name=name, split=split, sentence1=s1, sentence2=s2, gold=gold, gold_kind=kind,
                    gold_range=GOLD_RANGE[name], source=where, revision=hashlib.sha256(raw).hexdigest())
    return _train_subset(pairs) if split == "train-1000" else pairs


def _train_subset(train: PairSet) -> PairSet:
    """MRPC train-1000: rng = numpy.random.default_rng(seed=0); rng.choice(N, 1000, replace=False), sorted."""
    n = len(train)
    if n < TRAIN_SUBSET_SIZE:
        raise ValueError(f"{train.source}: train has {n} pairs, fewer than the {TRAIN_SUBSET_SIZE} of train-1000")
    idx = np.sort(np.random.default_rng(seed=TRAIN_SUBSET_SEED).choice(n, size=TRAIN_SUBSET_SIZE, replace=False))
    return PairSet(name=train.name, split="train-1000", sentence1=tuple(train.sentence1[i] for i in idx),
                   sentence2=tuple(train.sentence2[i] for i in idx), gold=train.gold[idx].copy(),
                   gold_kind=train.gold_kind, gold_range=train.gold_range, source=train.source,
                   revision=train.revision, n_skipped=train.n_skipped,
                   note=f"{TRAIN_SUBSET_SIZE} of {n} train pairs: numpy.random.default_rng(seed={TRAIN_SUBSET_SEED})"
                        f".choice({n}, size={TRAIN_SUBSET_SIZE}, replace=False), sorted into file order"
                        + (f"; {train.note}" if train.note else ""))


# ---------------------------------------------------------------- row parsing


def _rows(raw: bytes, where: str) -> list[tuple[int, list[str]]]:
    """(1-based line, fields) of a tab-separated file read with quoting off; a BOM is dropped.

    Trailing blank lines are allowed; a blank line inside the file is an error, as is a NUL
    byte (a binary or corrupted file, which csv would read as text). Byte offsets in errors
    are offsets in the file as stored, BOM included, so `head -c`/`xxd` find them.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DatasetFormatError(f"{where}, line {line}: expected UTF-8 text, got byte {raw[e.start]:#04x} at byte "
                                 f"offset {e.start} (0-based, in the file as stored); re-encode it as UTF-8") from e
    if (nul := raw.find(b"\0")) >= 0:
        line = raw[:nul].count(b"\n") + 1
        raise DatasetFormatError(f"{where}, line {line}: NUL byte at byte offset {nul}; "
                                 "expected a text file (is it binary, or corrupted?)")
    text = text.removeprefix("\ufeff")
    # a sentence may be longer than csv's default field limit (131072 characters); no field can be
    # longer than the file, so that bound loses nothing
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        rows = [(reader.line_num, fields) for fields in reader]
    except csv.Error as e:
        raise DatasetFormatError(f"{where}, line {reader.line_num}: {e}") from e
    while rows and not rows[-1][1]:
        rows.pop()
    for line, fields in rows:
        if not fields:
            raise DatasetFormatError(f"{where}, line {line}: blank line inside the file; expected a tab-separated row")
    return rows


def _first_row(path: Path) -> list[str]:
    with path.open("rb") as f:
        first = f.readline()
    return first.decode("utf-8-sig", errors="replace").rstrip("\r\n").split("\t")


def _columns(fields: list[str], allowed: Iterable[int], where: str, line: int, what: str) -> None:
    allowed = tuple(allowed)
    if len(fields) not in allowed:
        raise DatasetFormatError(f"{where}, line {line}: expected {what}, found {len(fields)} tab-separated "
                                 f"column(s): {_clip(chr(9).join(fields))!r}")


def _sentence(text: object, loc: str, column: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DatasetFormatError(f"{loc}: {column} is empty; expected a sentence")
    return text


def _score(text: object, loc: str, lo: float, hi: float, what: str = "score") -> float:
    try:
        x = float(text)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        raise DatasetFormatError(f"{loc}: {what} {text!r} is not a number; expected a number "
                                 f"in [{lo:g}, {hi:g}]")
    if not lo <= x <= hi:
        raise DatasetFormatError(f"{loc}: {what} {x:g} out of range; expected [{lo:g}, {hi:g}]")
    return x


def _clip(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _header(rows: list[tuple[int, list[str]]], expected: list[str], where: str) -> list[tuple[int, list[str]]]:
    if not rows or rows[0][1] != expected:
        got = "an empty file" if not rows else repr("\t".join(rows[0][1]))
        raise DatasetFormatError(f"{where}, line 1: expected the header {chr(9).join(expected)!r}, got {got}")
    return rows[1:]


def _parse_mrpc(rows: list[tuple[int, list[str]]], where: str):
    s1, s2, gold = [], [], []
    for line, f in _header(rows, _MRPC_HEADER, where):
        _columns(f, (5,), where, line, "5 columns: Quality, #1 ID, #2 ID, #1 String, #2 String")
        if f[0] not in ("0", "1"):
            raise DatasetFormatError(f"{where}, line {line}: Quality {f[0]!r}; expected the label 0 or 1")
        gold.append(float(f[0]))
        s1.append(_sentence(f[3], f"{where}, line {line}", "#1 String"))
        s2.append(_sentence(f[4], f"{where}, line {line}", "#2 String"))
    return tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64)


def _parse_stsb(rows: list[tuple[int, list[str]]], where: str):
    """Original STS-B csv: genre, file, year, id, score, s1, s2 [, 2 source notes]."""
    s1, s2, gold = [], [], []
    for line, f in rows:
        _columns(f, (7, 9), where, line, "7 columns (genre, file, year, id, score, sentence 1, sentence 2), "
                                        "or 9 with two trailing source notes")
        gold.append(_score(f[4], f"{where}, line {line}", *GOLD_RANGE["stsb"]))
        s1.append(_sentence(f[5], f"{where}, line {line}", "sentence 1"))
        s2.append(_sentence(f[6], f"{where}, line {line}", "sentence 2"))
    return tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64)


def _parse_glue_stsb(rows: list[tuple[int, list[str]]], where: str):
    if rows[0][1] == _GLUE_STSB_HEADER[:-1]:
        raise DatasetFormatError(f"{where}, line 1: this GLUE STS-B file has no score column (GLUE's test.tsv "
                                 "is unlabelled); use sts-test.csv of the original stsbenchmark.tar.gz")
    s1, s2, gold = [], [], []
    for line, f in _header(rows, _GLUE_STSB_HEADER, where):
        _columns(f, (10,), where, line, "10 columns: " + " ".join(_GLUE_STSB_HEADER))
        gold.append(_score(f[9], f"{where}, line {line}", *GOLD_RANGE["stsb"]))
        s1.append(_sentence(f[7], f"{where}, line {line}", "sentence1"))
        s2.append(_sentence(f[8], f"{where}, line {line}", "sentence2"))
    return tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64)


def _parse_sick(rows: list[tuple[int, list[str]]], where: str):
    s1, s2, gold = [], [], []
    for line, f in _header(rows, _SICK_HEADER, where):
        _columns(f, (5,), where, line, "5 columns: " + " ".join(_SICK_HEADER))
        gold.append(_score(f[3], f"{where}, line {line}", *GOLD_RANGE["sickr"], what="relatedness_score"))
        s1.append(_sentence(f[1], f"{where}, line {line}", "sentence_A"))
        s2.append(_sentence(f[2], f"{where}, line {line}", "sentence_B"))
    return tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64)


def _parse_rte(rows: list[tuple[int, list[str]]], where: str):
    """GLUE RTE: index, sentence1, sentence2, label (entailment -> 1, not_entailment -> 0)."""
    s1, s2, gold = [], [], []
    for line, f in _header(rows, _RTE_HEADER, where):
        _columns(f, (4,), where, line, "4 columns: " + " ".join(_RTE_HEADER))
        if f[3] not in _RTE_LABELS:
            raise DatasetFormatError(f"{where}, line {line}: label {f[3]!r}; expected entailment or not_entailment")
        gold.append(_RTE_LABELS[f[3]])
        s1.append(_sentence(f[1], f"{where}, line {line}", "sentence1"))
        s2.append(_sentence(f[2], f"{where}, line {line}", "sentence2"))
    return tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64)


def _parse_qqp(rows: list[tuple[int, list[str]]], where: str):
    """GLUE QQP: id, qid1, qid2, question1, question2, is_duplicate (0/1)."""
    s1, s2, gold = [], [], []
    for line, f in _header(rows, _QQP_HEADER, where):
        _columns(f, (6,), where, line, "6 columns: " + " ".join(_QQP_HEADER))
        if f[5] not in ("0", "1"):
            raise DatasetFormatError(f"{where}, line {line}: is_duplicate {f[5]!r}; expected 0 or 1")
        gold.append(float(f[5]))
        s1.append(_sentence(f[3], f"{where}, line {line}", "question1"))
        s2.append(_sentence(f[4], f"{where}, line {line}", "question2"))
    return tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64)


def _parse_sts_domain(rows: list[tuple[int, list[str]]], where: str, allow_unscored: bool):
    """SemEval per-domain file: score, s1, s2. Empty scores (STS15/16 only) are skipped and counted."""
    s1, s2, gold, skipped = [], [], [], 0
    for line, f in rows:
        _columns(f, (3,), where, line, "3 columns: score, sentence 1, sentence 2")
        if allow_unscored and f[0] == "":
            skipped += 1
            continue
        gold.append(_score(f[0], f"{where}, line {line}", 0.0, 5.0))
        s1.append(_sentence(f[1], f"{where}, line {line}", "sentence 1"))
        s2.append(_sentence(f[2], f"{where}, line {line}", "sentence 2"))
    return tuple(s1), tuple(s2), np.asarray(gold, dtype=np.float64), skipped


# ---------------------------------------------------------------- Hugging Face hub


def _load_hub(name: str, split: str, tried: list[str]) -> PairSet | list[PairSet] | None:
    """Read the hub copy, pinned to the commit the hub reports now; record a miss in `tried`.

    Differences from the files: MRPC's hub text is tokenized ("doesn 't") and its test split
    has no labels (only train/validation are offered); sentence-transformers/stsb scores are
    0-1 and are multiplied by 5; mteb/sts1x-sts carry no domain column, so an STS year comes
    back as a one-element list holding the pooled set "sts1x/all" (per-domain scores need the
    files). Rows with an empty score are skipped and counted as in the files.
    """
    hub_id, config, hub_splits = _HUB[name]
    base_split = split.removesuffix("-1000")
    if base_split not in hub_splits:
        tried.append(f"hub {hub_id}: has no gold-scored {base_split!r} split (only {', '.join(hub_splits)})")
        return None
    try:
        import datasets
        import huggingface_hub
    except ImportError as e:
        tried.append(f"hub {hub_id}: the `datasets` package is not installed ({e}); pip install 'rwkv-eval[hub]'")
        return None
    try:
        sha = huggingface_hub.HfApi().dataset_info(hub_id).sha
        args = (hub_id, config) if config else (hub_id,)
        ds = datasets.load_dataset(*args, split=base_split, revision=sha)
    except Exception as e:  # offline, no such repo, auth: reported with the other tries, not hidden
        tried.append(f"hub {hub_id}: {type(e).__name__}: {_clip(str(e), 200)}")
        return None
    where = f"{hub_id}{f'[{config}]' if config else ''}@{sha} split {base_split}"
    cols = _HUB_COLUMNS.get(name) or (("sentence1", "sentence2", "label") if name in BINARY
                                      else ("sentence1", "sentence2", "score"))
    missing = [c for c in cols if c not in ds.column_names]
    if missing:
        raise DatasetFormatError(f"{where}: expected columns {list(cols)}, missing {missing} "
                                 f"(has {list(ds.column_names)})")
    a, b, g = (list(ds[c]) for c in cols)
    s1, s2, gold, skipped = [], [], [], 0
    lo, hi = (0.0, 1.0) if name == "stsb" else GOLD_RANGE[name]
    for i, (x, y, z) in enumerate(zip(a, b, g), start=1):
        row = f"{where}, row {i}"
        if name in BINARY:
            if z not in (0, 1):
                raise DatasetFormatError(f"{row}: label {z!r}; expected 0 or 1")
            z = _HUB_LABEL_GOLD.get(name, {0: 0.0, 1: 1.0})[z]
        elif z is None or z == "":
            if name not in ("sts15", "sts16"):
                raise DatasetFormatError(f"{row}: empty score; expected a number in [{lo:g}, {hi:g}]")
            skipped += 1
            continue
        gold.append(_score(z, row, lo, hi))
        s1.append(_sentence(x, row, "sentence1"))
        s2.append(_sentence(y, row, "sentence2"))
    gold_arr = np.asarray(gold, dtype=np.float64)
    notes = []
    if name == "stsb":
        gold_arr = gold_arr * 5.0
        notes.append("hub scores are 0-1; multiplied by 5 to the 0-5 scale")
    if name == "mrpc":
        notes.append("hub text is tokenized (\"doesn 't\"), unlike the GLUE files")
    if skipped:
        notes.append(f"{skipped} rows with an empty score skipped (not gold-annotated)")
    pair_name = f"{name}/all" if name in _STS_YEARS else name
    if name in _STS_YEARS:
        notes.append("the hub copy has no domain column: one pooled set, not per-domain sets")
    pairs = PairSet(name=pair_name, split=base_split, sentence1=tuple(s1), sentence2=tuple(s2), gold=gold_arr,
                    gold_kind="binary" if name in BINARY else "graded", gold_range=GOLD_RANGE[name],
                    source=f"{hub_id}{f'[{config}]' if config else ''}@{sha}", revision=sha, n_skipped=skipped,
                    note="; ".join(notes))
    if split == "train-1000":
        return _train_subset(pairs)
    return [pairs] if name in _STS_YEARS else pairs
